"""ReplyWriter against the fake Slack with a hand-driven clock: streaming, its fallbacks and expiry."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse as SlackResponse

from adapters.slack.delivery import DeliveryOptions, Destination, ReplyWriter, refused_method
from adapters.slack.pacing import ChannelPacer
from tests.fakes.slack_api import FakeSlack, Workspace


@dataclass
class Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def workspace(fake_slack: FakeSlack) -> Workspace:
    return fake_slack.add_workspace()


def writer(
    fake: FakeSlack, workspace: Workspace, clock: Clock, *, thread_ts: str | None = "100.000001", **options: object
) -> tuple[ReplyWriter, str]:
    channel = f"C{uuid.uuid4().hex[:9].upper()}"
    client = AsyncWebClient(token=workspace.token, base_url=fake.base_url)
    destination = Destination(channel_id=channel, thread_ts=thread_ts, team_id=workspace.team_id, user_id="UALICE")
    settings = DeliveryOptions(stream_buffer_chars=1, **options)  # type: ignore[arg-type]
    return ReplyWriter(client, destination, pacer=ChannelPacer(1000), options=settings, clock=clock), channel


def methods(fake: FakeSlack, channel: str) -> list[str]:
    return [c.method for c in list(fake.calls) if c.args.get("channel") == channel]


async def test_a_streamed_reply_is_started_appended_and_stopped(fake_slack: FakeSlack, workspace: Workspace) -> None:
    clock = Clock()
    reply, channel = writer(fake_slack, workspace, clock)
    await reply.on_delta("Hello ")
    await reply.on_delta("world.")
    delivered = await reply.finish("Hello world.")
    assert methods(fake_slack, channel) == ["chat.startStream", "chat.appendStream", "chat.stopStream"]
    [message] = fake_slack.posted(channel)
    assert (message.text, message.streaming, delivered.ts) == ("Hello world.", False, (message.ts,))


async def test_a_stream_older_than_the_limit_is_finished_with_chat_update(
    fake_slack: FakeSlack, workspace: Workspace
) -> None:
    clock = Clock()
    reply, channel = writer(fake_slack, workspace, clock, stream_max_age_s=300)
    await reply.on_delta("part one, ")
    clock.now = 301
    await reply.on_delta("part two.")
    delivered = await reply.finish("part one, part two.")
    assert methods(fake_slack, channel) == ["chat.startStream", "chat.update"]
    [message] = fake_slack.posted(channel)
    assert message.text == "part one, part two." and delivered.ts == (message.ts,)


async def test_a_reply_blocked_after_streaming_replaces_what_was_shown(
    fake_slack: FakeSlack, workspace: Workspace
) -> None:
    reply, channel = writer(fake_slack, workspace, Clock())
    await reply.on_delta("Here is how to ")
    await reply.finish("Sorry, I can't help with that one.")
    assert methods(fake_slack, channel) == ["chat.startStream", "chat.stopStream", "chat.update"]
    assert [m.text for m in fake_slack.posted(channel)] == ["Sorry, I can't help with that one."]


async def test_a_note_after_the_stream_is_appended_when_it_stops(fake_slack: FakeSlack, workspace: Workspace) -> None:
    reply, channel = writer(fake_slack, workspace, Clock())
    await reply.on_delta("Answer.")
    await reply.finish("Answer.\n\n_I couldn't read `x.bin`: unsupported file type._")
    assert methods(fake_slack, channel) == ["chat.startStream", "chat.stopStream"]
    assert fake_slack.posted(channel)[0].text.endswith("unsupported file type._")


async def test_refused_streaming_falls_back_to_paced_chat_update(fake_slack: FakeSlack, workspace: Workspace) -> None:
    clock = Clock()
    reply, channel = writer(fake_slack, workspace, clock)
    fake_slack.streaming_supported = False
    try:
        await reply.on_delta("one. ")
        clock.now = 0.5
        await reply.on_delta("two. ")
        clock.now = 1.2
        await reply.on_delta("three.")
        await reply.finish("one. two. three.")
    finally:
        fake_slack.streaming_supported = True
    assert methods(fake_slack, channel) == ["chat.startStream", "chat.postMessage", "chat.update", "chat.update"]
    assert [m.text for m in fake_slack.posted(channel)] == ["one. two. three."]


async def test_a_top_level_reply_is_posted_then_edited(fake_slack: FakeSlack, workspace: Workspace) -> None:
    reply, channel = writer(fake_slack, workspace, Clock(), thread_ts=None)
    await reply.on_delta("Hi **there**")
    await reply.finish("Hi **there**, friend.")
    assert methods(fake_slack, channel) == ["chat.postMessage", "chat.update"]
    [message] = fake_slack.posted(channel)
    assert (message.text, message.thread_ts) == ("Hi *there*, friend.", None)


async def test_a_reply_too_long_to_stream_is_split_when_it_finishes(
    fake_slack: FakeSlack, workspace: Workspace
) -> None:
    reply, channel = writer(fake_slack, workspace, Clock(), limit=300)
    text = "\n\n".join(f"Paragraph {i}: " + "words " * 30 for i in range(4))
    for start in range(0, len(text), 50):
        await reply.on_delta(text[start : start + 50])
    delivered = await reply.finish(text)
    messages = fake_slack.posted(channel)
    assert len(delivered.ts) == len(messages) == 4
    assert [m.text.split(":")[0] for m in messages] == [f"Paragraph {i}" for i in range(4)]
    assert not any(m.streaming for m in messages)


async def test_nothing_streamed_posts_the_chunks(fake_slack: FakeSlack, workspace: Workspace) -> None:
    reply, channel = writer(fake_slack, workspace, Clock())
    delivered = await reply.finish("The model is not configured.")
    assert methods(fake_slack, channel) == ["chat.postMessage"]
    assert len(delivered.ts) == 1


def test_a_refusal_is_logged_under_the_method_slack_refused() -> None:
    response = SlackResponse(client=None, http_verb="POST", api_url="https://slack.com/api/chat.startStream",
                             req_args={}, data={"ok": False, "error": "not_allowed"}, headers={}, status_code=200)
    assert refused_method(SlackApiError("refused", response)) == "chat.startStream"
