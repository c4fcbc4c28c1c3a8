"""GET and DELETE /v1/sessions/{id}: read or delete one conversation of the caller's workspace."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from adapters.api.deps import ApiState, KeyDep, StateDep
from adapters.api.errors import documented
from adapters.api.routes.chat import session_not_found, visible_to
from adapters.api.schemas import SESSION_ID, Deleted, SessionMessage, SessionOut
from core.apikeys import ApiKeyInfo
from core.sessions import Session, delete_session, find_session, session_messages

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])
MAX_PAGE = 500
"""The most messages one GET returns; a longer conversation is read page by page."""
SessionId = Annotated[str, Path(pattern=SESSION_ID, description="A session_id from /v1/chat.")]


@router.get("/{session_id}", response_model=SessionOut, responses=documented(401, 404, 422, 429))
async def get_session(
    session_id: SessionId,
    key: KeyDep,
    state: StateDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Newest messages to return.")] = MAX_PAGE,
    before: Annotated[int | None, Query(ge=1, description="Only messages older than this message id.")] = None,
) -> SessionOut:
    """One conversation, a page of its newest messages at a time (`older` names the next page's `before`)."""
    session = await _owned(state, key, session_id)
    messages, more = await session_messages(state.pool, session, limit=limit, before=before)
    return SessionOut(
        session_id=session.session_id,
        workspace_id=session.workspace_id,
        user_id=session.user_id,
        created_at=session.created_at,
        messages=[
            SessionMessage(id=m.id, role=m.role, content=m.content, turn_id=m.turn_id,  # type: ignore[arg-type]
                           created_at=m.created_at, interrupted=m.interrupted)
            for m in messages
        ],
        older=messages[0].id if more and messages else None,
    )


@router.delete("/{session_id}", response_model=Deleted, responses=documented(401, 404, 422, 429))
async def remove_session(session_id: SessionId, key: KeyDep, state: StateDep) -> Deleted:
    session = await _owned(state, key, session_id)
    return Deleted(counts=await delete_session(state.pool, session))


async def _owned(state: ApiState, key: ApiKeyInfo, session_id: str) -> Session:
    session = await find_session(state.pool, key.workspace_id, session_id)
    if session is None or not visible_to(key, session):
        raise session_not_found(session_id)
    return session
