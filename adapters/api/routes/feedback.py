"""POST /v1/feedback: 👍/👎 on one turn, stored like a reaction on the reply (properties 38, 41)."""

from __future__ import annotations

from fastapi import APIRouter

from adapters.api.deps import ApiState, KeyDep, StateDep, acting_for
from adapters.api.errors import ApiError, documented
from adapters.api.schemas import FeedbackOut, FeedbackRequest
from core.apikeys import ApiKeyInfo
from core.feedback import turn_owner
from core.models import Platform, Reaction, WorkspaceKey

router = APIRouter(prefix="/v1", tags=["feedback"])


@router.post("/feedback", response_model=FeedbackOut, responses=documented(401, 403, 404, 422, 429))
async def feedback(body: FeedbackRequest, key: KeyDep, state: StateDep) -> FeedbackOut:
    user_id = acting_for(key, body.user_id)
    if not await _rateable(state, key, body.turn_id):
        raise _no_such_turn(body.turn_id)
    reaction = Reaction(
        platform=Platform.API,
        workspace_id=key.workspace_id,
        user_id=user_id,
        platform_message_id=str(body.turn_id),
        emoji="+1" if body.score == 1 else "-1",
    )
    if await state.pipeline.react(reaction) is None:
        raise _no_such_turn(body.turn_id)
    return FeedbackOut(turn_id=body.turn_id, score=body.score)


async def _rateable(state: ApiState, key: ApiKeyInfo, turn_id: int) -> bool:
    """Whether `key` may rate the turn: any of its workspace's, or only its own person's for a key bound to one
    (turn ids count up, so another person's are easy to guess; they do not exist for it)."""
    if key.user_id is None:
        return True
    workspace = WorkspaceKey(platform=Platform.API, workspace_id=key.workspace_id)
    return await turn_owner(state.pool, workspace, turn_id) == key.user_id


def _no_such_turn(turn_id: int) -> ApiError:
    return ApiError(
        404,
        "turn_not_found",
        f"No answered turn {turn_id} exists in your workspace.",
        "Send the turn_id from a /v1/chat answer given to this workspace's keys.",
    )
