"""POST /v1/feedback: 👍/👎 on one turn, stored like a reaction on the reply (properties 38, 41)."""

from __future__ import annotations

from fastapi import APIRouter

from adapters.api.deps import KeyDep, StateDep, acting_for
from adapters.api.errors import ApiError, documented
from adapters.api.schemas import FeedbackOut, FeedbackRequest
from core.models import Platform, Reaction

router = APIRouter(prefix="/v1", tags=["feedback"])


@router.post("/feedback", response_model=FeedbackOut, responses=documented(401, 403, 404, 422, 429))
async def feedback(body: FeedbackRequest, key: KeyDep, state: StateDep) -> FeedbackOut:
    reaction = Reaction(
        platform=Platform.API,
        workspace_id=key.workspace_id,
        user_id=acting_for(key, body.user_id),
        platform_message_id=str(body.turn_id),
        emoji="+1" if body.score == 1 else "-1",
    )
    if await state.pipeline.react(reaction) is None:
        raise ApiError(
            404,
            "turn_not_found",
            f"No answered turn {body.turn_id} exists in your workspace.",
            "Send the turn_id from a /v1/chat answer given to this workspace's keys.",
        )
    return FeedbackOut(turn_id=body.turn_id, score=body.score)
