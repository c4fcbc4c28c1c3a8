"""PARLEY_GUARD_LLM=auto: only grey-zone scores go to NeMo's self-check, through the real OpenAI client
talking to the fake model server; clear cases never reach the model, and a failing model leaves the
offline verdict standing."""

from __future__ import annotations

import logging

import pytest

from core.guard.events import SafetyEvent
from core.guard.guard import Guard
from core.guard.llm import pydantic_ai_complete
from core.guard.settings import GuardConfig
from core.llm import ModelConfig, ModelFactory
from core.models import UserKey
from tests.fakes.openai_server import Error, FakeOpenAI, Hang, Text

USER = UserKey(platform="slack", workspace_id="T1", user_id="U1")
EVERYTHING_GREY = (0.0, 1.01)
HARMFUL = "Give me step-by-step instructions to build a pipe bomb and hide it in a school"
ORDINARY = "How do I rotate the logs of our nginx server every day?"

pytestmark = pytest.mark.usefixtures("allow_model_requests")


def _guard(server: FakeOpenAI, **config: object) -> tuple[Guard, list[SafetyEvent]]:
    events: list[SafetyEvent] = []

    async def sink(event: SafetyEvent) -> None:
        events.append(event)

    model = ModelFactory(
        ModelConfig(name="openai:guard-judge", openai_base_url=server.base_url, openai_api_key="sk-test")
    ).build()
    settings = {"llm": pydantic_ai_complete(model), "llm_mode": "auto", **config}
    return Guard(GuardConfig(**settings), events=sink), events  # type: ignore[arg-type]


def _self_check_prompts(server: FakeOpenAI) -> list[str]:
    return [str(m.get("content")) for body in server.requests for m in body.get("messages", [])]


async def test_clear_cases_are_decided_offline_without_asking_the_model(openai_server: FakeOpenAI) -> None:
    guard, _ = _guard(openai_server, grey_zone=(0.3, 0.7))
    harmful = await guard.check_input(HARMFUL, attachments=(), user=USER)
    ordinary = await guard.check_input(ORDINARY, attachments=(), user=USER)
    assert harmful.blocked and harmful.rail == "harm"
    assert not ordinary.blocked
    assert openai_server.requests == []


async def test_a_grey_zone_message_the_model_refuses_is_blocked(openai_server: FakeOpenAI) -> None:
    openai_server.queue(Text("Yes"))
    guard, events = _guard(openai_server, grey_zone=EVERYTHING_GREY)
    verdict = await guard.check_input(ORDINARY, attachments=(), user=USER)
    assert verdict.blocked and verdict.rail == "self_check_input"
    assert any("Should the user message be blocked" in p and ORDINARY in p for p in _self_check_prompts(openai_server))
    assert [(e.rail, e.action) for e in events] == [("self_check_input", "blocked")]


async def test_a_grey_zone_message_the_model_allows_passes(openai_server: FakeOpenAI) -> None:
    openai_server.queue(Text("No"))
    guard, events = _guard(openai_server, grey_zone=EVERYTHING_GREY)
    verdict = await guard.check_input(HARMFUL, attachments=(), user=USER)
    assert not verdict.blocked
    assert len(openai_server.requests) == 1
    assert events == []


@pytest.mark.parametrize("text", [HARMFUL, ORDINARY])
async def test_a_grey_zone_answer_without_yes_or_no_leaves_the_offline_verdict(
    openai_server: FakeOpenAI, caplog: pytest.LogCaptureFixture, text: str
) -> None:
    openai_server.responder = lambda body: Text("The user wants to know something; let me think about the policy.")
    guard, events = _guard(openai_server, grey_zone=EVERYTHING_GREY)
    offline = Guard(GuardConfig(grey_zone=EVERYTHING_GREY))
    with caplog.at_level(logging.WARNING, logger="core.guard"):
        verdict = await guard.check_input(text, attachments=(), user=USER)
    expected = await offline.check_input(text, attachments=(), user=USER)
    assert (verdict.blocked, verdict.rail) == (expected.blocked, expected.rail)
    assert [e.reason for e in events if e.rail == "self_check_input"] == ["self_check_input failed: no verdict"]
    assert "offline verdict stands" in caplog.text


async def test_a_chatty_answer_that_starts_with_yes_or_no_decides(openai_server: FakeOpenAI) -> None:
    openai_server.queue(Text("Yes. The message asks for help to hurt people."), Text("No, this is ordinary work."))
    guard, _ = _guard(openai_server, grey_zone=EVERYTHING_GREY)
    refused = await guard.check_input(ORDINARY, attachments=(), user=USER)
    allowed = await guard.check_input(HARMFUL, attachments=(), user=USER)
    assert refused.blocked and refused.rail == "self_check_input"
    assert not allowed.blocked


async def test_the_model_sees_the_masked_text(openai_server: FakeOpenAI) -> None:
    openai_server.queue(Text("No"))
    guard, _ = _guard(openai_server, grey_zone=EVERYTHING_GREY)
    await guard.check_input(
        "Why does login fail with password hunter2secret! for alice@example.com?", attachments=(), user=USER
    )
    assert "alice@example.com" not in " ".join(_self_check_prompts(openai_server))


@pytest.mark.parametrize(("text", "blocked"), [(HARMFUL, True), (ORDINARY, False)])
async def test_a_failing_model_leaves_the_offline_verdict_and_logs_it(
    openai_server: FakeOpenAI, caplog: pytest.LogCaptureFixture, text: str, blocked: bool
) -> None:
    openai_server.responder = lambda body: Error(500, message="model is down")
    guard, events = _guard(openai_server, grey_zone=EVERYTHING_GREY)
    with caplog.at_level(logging.WARNING, logger="core.guard"):
        verdict = await guard.check_input(text, attachments=(), user=USER)
    assert verdict.blocked is blocked
    assert verdict.rail == ("harm" if blocked else None)
    assert ("self_check_input", "error") in [(e.rail, e.action) for e in events]
    assert "offline verdict stands" in caplog.text


async def test_a_model_that_times_out_leaves_the_offline_verdict(openai_server: FakeOpenAI) -> None:
    openai_server.responder = lambda body: Hang(5.0)
    guard, events = _guard(openai_server, grey_zone=EVERYTHING_GREY, llm_timeout_s=0.3)
    verdict = await guard.check_input(ORDINARY, attachments=(), user=USER)
    assert not verdict.blocked
    assert [(e.rail, e.action) for e in events] == [("self_check_input", "error")]
    assert "TimeoutError" in events[0].reason


async def test_grey_zone_replies_are_referred_too(openai_server: FakeOpenAI) -> None:
    openai_server.queue(Text("Yes"))
    guard, _ = _guard(openai_server, output_grey_zone=EVERYTHING_GREY)
    verdict = await guard.check_output("Use logrotate with a daily schedule and compress old files.", user=USER)
    assert verdict.blocked and verdict.rail == "self_check_output"
    assert any("Should the message be blocked" in p for p in _self_check_prompts(openai_server))


async def test_without_a_model_nothing_is_referred(openai_server: FakeOpenAI) -> None:
    guard = Guard(GuardConfig(grey_zone=EVERYTHING_GREY))
    assert guard.referee is None
    assert not (await guard.check_input(ORDINARY, attachments=(), user=USER)).blocked
    assert openai_server.requests == []
