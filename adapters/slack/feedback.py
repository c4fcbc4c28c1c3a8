"""Slack's native feedback buttons under every answer, and their clicks as ratings. Pure: no client, no database.

The buttons are a `context_actions` block holding one `feedback_buttons` element (slack_sdk's own
model classes build them). A click arrives as a `block_actions` interaction whose action carries the
clicked button's `value`; it rates the turn of the message it sits under, like a 👍/👎 reaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import Block, ContextActionsBlock, FeedbackButtonObject, FeedbackButtonsElement

FEEDBACK_ACTION = "parley_feedback"
FEEDBACK_SOURCE = "slack_feedback_button"
"""How a click is labelled in the feedback store (reactions are labelled with their emoji)."""
SCORES: dict[str, int] = {"positive_feedback": 1, "negative_feedback": -1}
THANKS: dict[int, str] = {
    1: "Thanks! I noted that this answer helped.",
    -1: "Thanks, I noted that this answer did not help. Tell me in the thread what was missing.",
}


def feedback_blocks() -> list[Block]:
    """The 👍/👎 buttons Slack shows under an AI answer."""
    buttons = FeedbackButtonsElement(
        action_id=FEEDBACK_ACTION,
        positive_button=FeedbackButtonObject(
            text="👍", value="positive_feedback", accessibility_label="This answer helped"
        ),
        negative_button=FeedbackButtonObject(
            text="👎", value="negative_feedback", accessibility_label="This answer did not help"
        ),
    )
    return [ContextActionsBlock(elements=[buttons])]


@dataclass(frozen=True, kw_only=True, slots=True)
class FeedbackClick:
    """A click on the feedback buttons under one of Parley's messages."""

    team_id: str
    channel_id: str
    ts: str
    """The message the buttons belong to."""
    user_id: str
    score: int


def parse_feedback_click(body: Mapping[str, Any], *, team_id: str) -> FeedbackClick | None:
    """A `block_actions` payload from Parley's feedback buttons; None for any other action or shape."""
    action = next(
        (a for a in body.get("actions") or () if isinstance(a, Mapping) and a.get("action_id") == FEEDBACK_ACTION),
        None,
    )
    score = SCORES.get(str(action.get("value"))) if action is not None else None
    container = _object(body, "container")
    ts = container.get("message_ts") or _object(body, "message").get("ts")
    channel_id = container.get("channel_id") or _object(body, "channel").get("id")
    user_id = _object(body, "user").get("id")
    if score is None or not ts or not channel_id or not user_id:
        return None
    return FeedbackClick(team_id=team_id, channel_id=str(channel_id), ts=str(ts), user_id=str(user_id), score=score)


def _object(body: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = body.get(key)
    return value if isinstance(value, Mapping) else {}
