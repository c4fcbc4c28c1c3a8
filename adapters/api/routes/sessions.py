"""GET and DELETE /v1/sessions/{id}: read or delete one conversation of the caller's workspace."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Path, Query

from adapters.api.deps import ApiState, KeyDep, StateDep
from adapters.api.errors import documented
from adapters.api.routes.chat import session_not_found, visible_to
from adapters.api.schemas import SESSION_ID, Deleted, SessionMessage, SessionOut
from core.apikeys import ApiKeyInfo
from core.models import Platform, WorkspaceKey
from core.sessions import Message, Session, delete_session, find_session, session_messages
from core.store.tenancy import scoped

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
    cut = await interrupted_turns(state.pool, session, messages)
    return SessionOut(
        session_id=session.session_id,
        workspace_id=session.workspace_id,
        user_id=session.user_id,
        created_at=session.created_at,
        messages=[
            SessionMessage(id=m.id, role=m.role, content=m.content, turn_id=m.turn_id,  # type: ignore[arg-type]
                           created_at=m.created_at, interrupted=m.role == "user" and m.turn_id in cut)
            for m in messages
        ],
        older=messages[0].id if more and messages else None,
    )


@router.delete("/{session_id}", response_model=Deleted, responses=documented(401, 404, 422, 429))
async def remove_session(session_id: SessionId, key: KeyDep, state: StateDep) -> Deleted:
    session = await _owned(state, key, session_id)
    return Deleted(counts=await delete_session(state.pool, session))


async def interrupted_turns(pool: asyncpg.Pool, session: Session, messages: Sequence[Message]) -> set[int]:
    """The turns among the user messages' whose server stopped before answering: closed as `interrupted` by the
    next start, or still open by an instance that is gone (as `core.turns.start_turn` tells them)."""
    turn_ids = [m.turn_id for m in messages if m.role == "user" and m.turn_id is not None]
    if not turn_ids:
        return set()
    rows = await scoped(pool, WorkspaceKey(platform=Platform.API, workspace_id=session.workspace_id)).fetch(
        """SELECT id FROM turns
           WHERE platform = $1 AND workspace_id = $2 AND id = ANY($3::bigint[])
             AND ((status = 'error' AND error = 'interrupted')
                  OR (status = 'started' AND instance IS NOT NULL AND NOT parley_instance_alive(instance)))""",
        Platform.API.value,
        session.workspace_id,
        turn_ids,
    )
    return {row["id"] for row in rows}


async def _owned(state: ApiState, key: ApiKeyInfo, session_id: str) -> Session:
    session = await find_session(state.pool, key.workspace_id, session_id)
    if session is None or not visible_to(key, session):
        raise session_not_found(session_id)
    return session
