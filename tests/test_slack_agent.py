"""Slack's agent messaging experience end to end: the manifest, suggested prompts, task cards while a tool
runs, and the native feedback buttons, through signed requests, the real Bolt app and slack_sdk client
against the fake Slack (which checks chunks and blocks with slack_sdk's own model classes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from adapters.slack.app import BOT_SCOPES
from adapters.slack.feedback import FEEDBACK_ACTION, FEEDBACK_SOURCE
from adapters.slack.handlers import SUGGESTED_PROMPTS
from core.feedback import list_feedback
from tests.fakes.openai_server import FakeOpenAI, Text, ToolCalls
from tests.fakes.slack_api import FakeSlack, Message, mention, message
from tests.test_slack_e2e import ACK_LIMIT_S, Harness, channel_id, running

MANIFEST = Path(__file__).parent.parent / "adapters" / "slack" / "manifest.yml"
AGENT_EVENTS = {"app_home_opened", "app_context_changed", "message.im", "app_mention"}

pytestmark = pytest.mark.usefixtures("allow_model_requests")


@pytest.fixture
async def slack(fake_slack: FakeSlack, pool: asyncpg.Pool, openai_server: FakeOpenAI) -> AsyncIterator[Harness]:
    async with running(fake_slack, pool, openai_server) as harness:
        yield harness


# -- the manifest -------------------------------------------------------------------------------
class Prompt(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=75)
    message: str = Field(min_length=1)


class AgentView(BaseModel):
    """`features.agent_view` as Slack documents it for the agent messaging experience."""

    model_config = ConfigDict(extra="forbid")
    agent_description: str = Field(min_length=1, max_length=500)
    suggested_prompts: list[Prompt] = Field(default_factory=list, max_length=4)


class Features(BaseModel):
    model_config = ConfigDict(extra="allow")
    agent_view: AgentView


def manifest() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(MANIFEST.read_text())
    return loaded


def test_manifest_declares_the_agent_view_instead_of_the_assistant_view() -> None:
    features = manifest()["features"]
    view = Features.model_validate(features).agent_view
    assert "assistant_view" not in features, "an app can declare one messaging experience"
    prompts = [p.model_dump() for p in view.suggested_prompts]
    assert prompts == list(SUGGESTED_PROMPTS)


def test_manifest_subscribes_to_the_agent_events_with_the_scopes_they_need() -> None:
    settings = manifest()["settings"]
    events = set(settings["event_subscriptions"]["bot_events"])
    scopes = manifest()["oauth_config"]["scopes"]["bot"]
    assert events >= AGENT_EVENTS
    assert "assistant_thread_started" not in events
    assert {"assistant:write", "im:history", "app_mentions:read", "channels:read", "channels:history"} <= set(scopes)
    assert sorted(scopes) == sorted(BOT_SCOPES), "OAuth installs ask for the manifest's scopes"
    assert settings["interactivity"]["is_enabled"], "feedback buttons are interactions"


# -- opening the Messages tab ---------------------------------------------------------------------
async def test_opening_the_messages_tab_offers_suggested_prompts(slack: Harness) -> None:
    channel = "D" + channel_id()[1:]
    opened = {"type": "app_home_opened", "user": "UALICE", "channel": channel, "tab": "messages",
              "event_ts": slack.ts()}
    sent = await slack.sender.event(slack.workspace, opened)
    assert sent.response.status_code == 200
    await slack.settle()
    [call] = [c.args for c in slack.fake.calls_to("assistant.threads.setSuggestedPrompts")
              if c.args["channel_id"] == channel]
    assert call["prompts"] == list(SUGGESTED_PROMPTS)
    assert not [c for c in slack.fake.calls_to("views.publish") if c.args.get("user_id") == "UALICE"]


# -- task cards -----------------------------------------------------------------------------------
def tool_turn(model: FakeOpenAI) -> None:
    model.queue(
        ToolCalls([("calculate", {"expression": "6*7"})]),
        ToolCalls([("fetch_url", {"url": "http://127.0.0.1:9/notes"})]),
        Text("It is 42."),
    )


async def answered_with_tools(slack: Harness) -> Message:
    """A mention answered after a calculation and a (refused) fetch: the streamed reply."""
    channel, ts = channel_id(), slack.ts()
    tool_turn(slack.model)
    await slack.sender.event(slack.workspace, mention(slack.workspace, channel=channel, user="UALICE",
                                                      text="what is 6*7?", ts=ts))
    await slack.settle()
    [reply] = [m for m in slack.fake.posted(channel) if m.chunks]
    return reply


async def test_a_tool_call_streams_as_a_task_card_from_pending_to_complete(slack: Harness) -> None:
    reply = await answered_with_tools(slack)
    assert reply.text == "It is 42."
    tasks = [c for c in reply.chunks if c["type"] == "task_update"]
    calculate = [c for c in tasks if c["title"] == "Calculate"]
    assert [c["status"] for c in calculate] == ["pending", "in_progress", "complete"]
    assert calculate[-1]["output"] == "42" and calculate[-1]["details"] == "expression: 6*7"
    assert len({c["id"] for c in tasks}) == 2, "each call is one card"


async def test_a_failed_fetch_is_an_error_card_with_its_url_as_source_in_a_plan(slack: Harness) -> None:
    reply = await answered_with_tools(slack)
    fetch = [c for c in reply.chunks if c["type"] == "task_update" and c["title"] == "Fetch url"]
    assert fetch[-1]["status"] == "error" and "fetch_url tool failed" in fetch[-1]["output"]
    assert fetch[-1]["sources"] == [{"type": "url", "url": "http://127.0.0.1:9/notes", "text": "127.0.0.1"}]
    plans = [c["title"] for c in reply.chunks if c["type"] == "plan_update"]
    assert plans == ["2 steps: calculate, fetch url"]


async def test_a_workspace_refusing_chunks_still_gets_the_streamed_text(slack: Harness) -> None:
    channel, ts = channel_id(), slack.ts()
    tool_turn(slack.model)
    slack.fake.chunks_supported = False
    try:
        await slack.sender.event(slack.workspace, mention(slack.workspace, channel=channel, user="UALICE",
                                                          text="what is 6*7?", ts=ts))
        await slack.settle()
    finally:
        slack.fake.chunks_supported = True
    assert slack.thread(channel, ts) == ["It is 42."]
    assert [m.chunks for m in slack.fake.posted(channel)] == [[]]


async def test_a_dm_thread_status_names_the_tool_in_use(slack: Harness) -> None:
    channel, ts = "D" + channel_id()[1:], slack.ts()
    tool_turn(slack.model)
    await slack.sender.event(slack.workspace, message(channel=channel, user="UALICE", text="what is 6*7?", ts=ts,
                                                      channel_type="im"))
    await slack.settle()
    statuses = [c.args["status"] for c in slack.fake.calls_to("assistant.threads.setStatus")
                if c.args["channel_id"] == channel]
    assert statuses == ["is thinking…", "is using calculate…", "is using fetch url…"]


# -- feedback buttons -------------------------------------------------------------------------------
def click(slack: Harness, reply: Message, *, user: str, value: str) -> dict[str, Any]:
    """A `block_actions` payload as Slack sends it for a feedback button."""
    return {
        "type": "block_actions",
        "team": {"id": slack.workspace.team_id, "domain": "fake"},
        "user": {"id": user, "username": "person", "team_id": slack.workspace.team_id},
        "api_app_id": "AFAKEAPP",
        "token": "legacy",
        "container": {"type": "message", "message_ts": reply.ts, "channel_id": reply.channel, "is_ephemeral": False},
        "trigger_id": uuid.uuid4().hex,
        "channel": {"id": reply.channel, "name": "general"},
        "message": {"type": "message", "ts": reply.ts, "text": reply.text, "blocks": reply.blocks},
        "response_url": f"{slack.fake.url}/respond/{uuid.uuid4().hex[:8]}",
        "actions": [{
            "type": "feedback_buttons", "action_id": FEEDBACK_ACTION, "block_id": reply.blocks[-1].get("block_id", "b"),
            "value": value, "text": {"type": "plain_text", "text": "👍" if value.startswith("pos") else "👎"},
            "action_ts": f"{datetime.now(UTC).timestamp():.6f}",
        }],
    }


async def rated_reply(slack: Harness) -> Message:
    channel, ts = channel_id(), slack.ts()
    await slack.sender.event(slack.workspace, mention(slack.workspace, channel=channel, user="UALICE",
                                                      text="rate me", ts=ts))
    await slack.settle()
    [reply] = [m for m in slack.fake.posted(channel) if m.thread_ts == ts]
    return reply


async def test_every_answer_carries_the_feedback_buttons(slack: Harness) -> None:
    reply = await rated_reply(slack)
    [actions] = [b for b in reply.blocks if b["type"] == "context_actions"]
    [buttons] = actions["elements"]
    assert (buttons["type"], buttons["action_id"]) == ("feedback_buttons", FEEDBACK_ACTION)
    assert (buttons["positive_button"]["value"], buttons["negative_button"]["value"]) == (
        "positive_feedback", "negative_feedback")


async def test_a_feedback_click_is_acked_stored_confirmed_and_a_second_click_changes_it(
    slack: Harness, pg_uri: str
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    reply = await rated_reply(slack)
    sent = await slack.sender.action(click(slack, reply, user="UBOB", value="positive_feedback"))
    assert sent.response.status_code == 200 and sent.elapsed_s < ACK_LIMIT_S
    await slack.settle()
    assert await ratings(slack.pool, slack, since) == [("UBOB", 1, FEEDBACK_SOURCE)]
    assert slack.fake.responses[-1]["response_type"] == "ephemeral"
    assert "helped" in slack.fake.responses[-1]["text"]

    await slack.sender.action(click(slack, reply, user="UBOB", value="negative_feedback"))
    await slack.settle()
    assert await ratings(slack.pool, slack, since) == [("UBOB", -1, FEEDBACK_SOURCE)]

    listed = subprocess.run(
        [sys.executable, "-m", "bot", "feedback", "list", "--json", "--since", "1d"],
        capture_output=True, text=True, timeout=90,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}, "DATABASE_URL": pg_uri},
    )
    assert listed.returncode == 0, listed.stderr
    mine = [r for r in json.loads(listed.stdout) if r["workspace_id"] == slack.workspace.team_id]
    assert [(r["user_id"], r["score"], r["source"]) for r in mine] == [("UBOB", -1, FEEDBACK_SOURCE)]


async def test_a_click_on_a_message_parley_did_not_record_stores_nothing_and_says_so(slack: Harness) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    stranger = Message(channel=channel_id(), ts=slack.ts(), thread_ts=None, text="old", blocks=[{"type": "x"}])
    await slack.sender.action(click(slack, stranger, user="UBOB", value="positive_feedback"))
    await slack.settle()
    assert await ratings(slack.pool, slack, since) == []
    assert "couldn't find" in slack.fake.responses[-1]["text"]


async def ratings(pool: asyncpg.Pool, slack: Harness, since: datetime) -> list[tuple[str, int, str]]:
    rows = await list_feedback(pool, since)
    return [(r.user_id, r.score, r.source) for r in rows if r.workspace_id == slack.workspace.team_id]



# -- the channel being viewed -----------------------------------------------------------------------
def context_changed(user: str, viewed: str) -> dict[str, Any]:
    return {
        "type": "app_context_changed",
        "user": user,
        "context": {"entities": [{"type": "slack#/types/channel_id", "value": viewed}]},
        "event_ts": f"{datetime.now(UTC).timestamp():.6f}",
    }


async def views(slack: Harness, user: str, channel: str) -> None:
    """`user` opens `channel` with Parley's panel beside it; a message follows once the view is noted (seconds
    later in Slack; the event is claimed in Postgres before it is noted, so a message sent at once may pass it)."""
    await slack.sender.event(slack.workspace, context_changed(user, channel))
    await slack.settle()


def prompt_of(model: FakeOpenAI) -> str:
    return json.dumps(model.requests[-1]["messages"])


async def test_asking_about_this_channel_reads_the_viewed_channels_recent_messages(slack: Harness) -> None:
    viewed, dm = channel_id(), "D" + channel_id()[1:]
    slack.fake.add_channel(viewed, "launch-plan", [("UCAROL", "We ship on Friday."), ("UDAN", "Docs are late.")])
    await views(slack, "UALICE", viewed)
    await slack.sender.event(slack.workspace, message(channel=dm, user="UALICE", text="Summarise this channel",
                                                      ts=slack.ts(), channel_type="im"))
    await slack.settle()
    prompt = prompt_of(slack.model)
    assert "#launch-plan" in prompt
    assert "UCAROL: We ship on Friday.\\nUDAN: Docs are late." in prompt, "oldest first, as untrusted data"
    assert [c.args["channel"] for c in slack.fake.calls_to("conversations.history")][-1] == viewed


async def test_other_questions_get_the_viewed_channels_name_only(slack: Harness) -> None:
    viewed, dm = channel_id(), "D" + channel_id()[1:]
    slack.fake.add_channel(viewed, "random", [("UCAROL", "lunch?")])
    await views(slack, "UALICE", viewed)
    await slack.sender.event(slack.workspace, message(channel=dm, user="UALICE", text="What is 2+2?",
                                                      ts=slack.ts(), channel_type="im"))
    await slack.settle()
    assert "#random" in prompt_of(slack.model) and "lunch?" not in prompt_of(slack.model)
    assert viewed not in [c.args["channel"] for c in slack.fake.calls_to("conversations.history")]


async def test_a_viewed_channel_parley_cannot_read_leaves_the_turn_as_it_was(slack: Harness) -> None:
    dm = "D" + channel_id()[1:]
    await views(slack, "UALICE", channel_id())
    await slack.sender.event(slack.workspace, message(channel=dm, user="UALICE", text="Summarise this channel",
                                                      ts=slack.ts(), channel_type="im"))
    await slack.settle()
    assert slack.thread(dm, None) == [] and len(slack.fake.posted(dm)) == 1
    assert "viewing" not in prompt_of(slack.model)
