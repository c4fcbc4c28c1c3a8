"""Which channel a person is viewing in the agent view, and when a turn reads it. Pure functions."""

from __future__ import annotations

import pytest

from adapters.slack.viewing import asks_about_channel, channel_transcript, viewed_channel


def test_the_viewed_channel_comes_from_either_experiences_event() -> None:
    entity = {"type": "slack#/types/channel_id", "value": "C0123ABCD"}
    assert viewed_channel({"type": "app_context_changed", "context": {"entities": [entity]}}) == "C0123ABCD"
    assert viewed_channel({"type": "message", "app_context": {"entities": [entity]}}) == "C0123ABCD"
    legacy = {"assistant_thread": {"context": {"channel_id": "G0123ABCD"}}}
    assert viewed_channel({"type": "assistant_thread_context_changed", **legacy}) == "G0123ABCD"


def test_a_context_without_a_channel_or_with_a_malformed_one_names_none() -> None:
    assert viewed_channel({"context": {"entities": [{"type": "slack#/types/user_id", "value": "U1"}]}}) is None
    assert viewed_channel({"context": {"entities": [{"type": "slack#/types/channel_id", "value": "<!here>"}]}}) is None
    assert viewed_channel({"context": "nonsense", "assistant_thread": []}) is None


@pytest.mark.parametrize(
    ("text", "about"),
    [("Summarise this channel", True), ("what's new in here?", True), ("catch me up on the conversation", True),
     ("what is a channel?", False), ("here is my file", False)],
)
def test_questions_about_this_channel_are_recognised(text: str, about: bool) -> None:
    assert asks_about_channel(text) is about


def test_the_channel_transcript_is_oldest_first_and_skips_bots_and_joins() -> None:
    newest_first = [
        {"user": "U2", "text": "second  line"},
        {"user": "U9", "bot_id": "B1", "text": "a bot"},
        {"user": "U3", "subtype": "channel_join", "text": "joined"},
        {"user": "U1", "text": "first"},
    ]
    assert channel_transcript(newest_first) == "U1: first\nU2: second line"


def test_asking_about_the_channel_stays_linear_on_hostile_text() -> None:
    assert not asks_about_channel("this " * 20_000 + "channe")
