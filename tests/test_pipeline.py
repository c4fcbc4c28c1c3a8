"""One turn end to end through the real pipeline, the fake model server and real Postgres."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from core.audit import Actor
from core.guard.masking import scrub
from core.models import Reply, UserKey
from core.output_rails import EMPTY_ANSWER
from core.pipeline import OPERATOR_FIXES, Pipeline
from core.seams import Verdict
from core.workspace import set_override
from tests.fakes.openai_server import BrokenStream, Error, FakeOpenAI, Hang, Text, ToolCalls, last_user_text
from tests.pipeline_helpers import RecordingSink, build_pipeline, message, settings_for

pytestmark = pytest.mark.usefixtures("allow_model_requests")
OPERATOR = Actor(who="operator", door="cli")


@pytest.fixture
def pipeline(pool: asyncpg.Pool, openai_server: FakeOpenAI) -> Pipeline:
    return build_pipeline(settings_for(openai_server), pool)


async def test_a_turn_answers_with_the_model_reply(pipeline: Pipeline, openai_server: FakeOpenAI) -> None:
    reply = await pipeline.run(message("hello there"))
    assert reply.text == "You said: hello there"
    assert reply.error is None and not reply.blocked
    assert reply.usage.input_tokens == 12 and reply.usage.output_tokens == 7


async def test_p15_p24_the_thread_history_goes_back_to_the_model(pipeline: Pipeline, openai_server: FakeOpenAI) -> None:
    first = message("my project is called Falcon")
    await pipeline.run(first)
    await pipeline.run(dataclasses.replace(first, text="what is my project called?", event_id=uuid.uuid4().hex))
    sent = openai_server.requests[-1]["messages"]
    assert [m["role"] for m in sent if m["role"] != "system"] == ["user", "assistant", "user"]
    assert "Falcon" in str(sent)


async def test_a_new_thread_starts_a_new_conversation(pipeline: Pipeline, openai_server: FakeOpenAI) -> None:
    first = message("remember Falcon", thread="A")
    await pipeline.run(first)
    await pipeline.run(dataclasses.replace(first, thread_id="B", text="hi", event_id=uuid.uuid4().hex))
    conversation = [m for m in openai_server.requests[-1]["messages"] if m["role"] != "system"]
    assert len(conversation) == 1 and "Falcon" not in str(conversation)


async def test_a_repeated_event_is_answered_once(pipeline: Pipeline, openai_server: FakeOpenAI) -> None:
    inbound = message("once please")
    first, second = await pipeline.run(inbound), await pipeline.run(inbound)
    assert not first.duplicate and second.duplicate
    assert len(openai_server.requests) == 1


async def test_a_turn_cancelled_mid_answer_is_closed_as_interrupted_at_once_and_its_event_left_open(
    pipeline: Pipeline, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    openai_server.queue(Hang(30))
    inbound = message("a long question")
    turn = asyncio.ensure_future(pipeline.run(inbound))
    while not await pool.fetchval("SELECT count(*) FROM turns WHERE event_id = $1", inbound.event_id):
        await asyncio.sleep(0.01)
    turn.cancel()
    with pytest.raises(asyncio.CancelledError):
        await turn
    row = await pool.fetchrow("SELECT status, error FROM turns WHERE event_id = $1", inbound.event_id)
    assert (row["status"], row["error"]) == ("error", "interrupted")
    assert await pool.fetchval(  # a platform's retry after a restart is still answered
        "SELECT finished_at IS NULL FROM processed_events WHERE event_id = $1", inbound.event_id
    )


async def test_p28_a_user_over_the_rate_limit_gets_a_clear_reply(pool: asyncpg.Pool, openai_server: FakeOpenAI) -> None:
    pipeline = build_pipeline(settings_for(openai_server, parley_rate_user_per_min=2), pool)
    workspace = f"w-{uuid.uuid4().hex[:8]}"
    replies = [await pipeline.run(message(f"m{i}", workspace=workspace)) for i in range(3)]
    assert [r.error for r in replies] == [None, None, "rate_limited"]
    assert "wait" in replies[2].text
    assert len(openai_server.requests) == 2


async def test_p3_usage_of_every_model_call_is_stored(
    pipeline: Pipeline, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    openai_server.queue(ToolCalls([("calculate", {"expression": "6*7"})]), Text("42", 30, 3))
    reply = await pipeline.run(message("what is 6*7"))
    rows = await pool.fetch(
        "SELECT input_tokens, output_tokens, model FROM usage WHERE turn_id = $1 ORDER BY id", reply.turn_id
    )
    assert [(r["input_tokens"], r["output_tokens"]) for r in rows] == [(12, 7), (30, 3)]
    assert {r["model"] for r in rows} == {"fake-model"}
    turn = await pool.fetchrow("SELECT input_tokens, output_tokens, latency_ms FROM turns WHERE id = $1", reply.turn_id)
    assert (turn["input_tokens"], turn["output_tokens"]) == (42, 10)


async def test_p36_the_total_latency_is_recorded(pipeline: Pipeline, pool: asyncpg.Pool) -> None:
    reply = await pipeline.run(message("hi"))
    assert reply.latency_ms > 0
    stored = await pool.fetchval("SELECT latency_ms FROM turns WHERE id = $1", reply.turn_id)
    assert stored is not None and stored > 0


async def test_p29_p30_tool_calls_are_reported_as_steps(pipeline: Pipeline, openai_server: FakeOpenAI) -> None:
    openai_server.queue(
        ToolCalls([("calculate", {"expression": "2+2"}), ("current_datetime", {"timezone": "Europe/Paris"})]),
        Text("done"),
    )
    reply = await pipeline.run(message("sum and time"))
    assert [s.tool for s in reply.steps] == ["calculate", "current_datetime"] or sorted(
        s.tool for s in reply.steps
    ) == ["calculate", "current_datetime"]
    calc = next(s for s in reply.steps if s.tool == "calculate")
    assert calc.ok and calc.result == "4" and calc.args == {"expression": "2+2"}
    assert all(s.duration_ms >= 0 for s in reply.steps)


def unreachable_pipeline(pool: asyncpg.Pool, server: FakeOpenAI) -> tuple[Pipeline, int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    settings = settings_for(server, openai_base_url=f"http://127.0.0.1:{port}/v1", parley_model_retries=0)
    return build_pipeline(settings, pool), port


async def test_an_unreachable_model_is_one_log_line_with_code_cause_turn_and_fix(
    pool: asyncpg.Pool, openai_server: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, port = unreachable_pipeline(pool, openai_server)
    with caplog.at_level(logging.INFO, logger="parley.pipeline"):
        reply = await pipeline.run(message("hi"))
    [line] = [
        r for r in caplog.records if r.name == "parley.pipeline" and r.levelno >= logging.WARNING
    ]
    assert line.getMessage() == (
        f"model_unreachable: connect to 127.0.0.1:{port} refused (turn {reply.turn_id}); "
        f"fix: {OPERATOR_FIXES['model_unreachable']}"
    )
    assert line.exc_info is None
    assert reply.error == "model_unreachable"
    assert "try again" in reply.text and "tell whoever runs Parley" in reply.text


async def test_the_traceback_of_a_failure_is_logged_at_debug(
    pool: asyncpg.Pool, openai_server: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline, _ = unreachable_pipeline(pool, openai_server)
    with caplog.at_level(logging.DEBUG, logger="parley.pipeline"):
        await pipeline.run(message("hi"))
    [line] = [
        r for r in caplog.records if r.name == "parley.pipeline" and r.levelno >= logging.WARNING
    ]
    assert line.exc_info is not None


async def test_p27_a_failing_tool_is_explained_to_the_model_and_the_turn_goes_on(
    pipeline: Pipeline, openai_server: FakeOpenAI
) -> None:
    openai_server.queue(ToolCalls([("current_datetime", {"timezone": "Mars/Olympus"})]))
    reply = await pipeline.run(message("time on mars"))
    assert reply.error is None
    assert not reply.steps[0].ok
    assert "unknown time zone" in reply.text


async def test_p5_p14_a_provider_that_keeps_failing_gets_a_clear_reply(
    pipeline: Pipeline, openai_server: FakeOpenAI, pool: asyncpg.Pool
) -> None:
    openai_server.queue(*[Error(429, retry_after=0)] * 3)
    reply = await pipeline.run(message("hi"))
    assert reply.error == "model_rate_limited"
    assert "rate-limiting" in reply.text
    status = await pool.fetchval("SELECT status FROM turns WHERE id = $1", reply.turn_id)
    assert status == "error"


async def test_a_broken_stream_is_retried_or_explained(pipeline: Pipeline, openai_server: FakeOpenAI) -> None:
    openai_server.queue(BrokenStream("partial ans"), BrokenStream("partial"), BrokenStream("p"))
    reply = await pipeline.run(message("hi"), RecordingSink())
    assert reply.error is not None
    assert "try again" in reply.text


async def test_streamed_deltas_add_up_to_the_reply(pipeline: Pipeline, openai_server: FakeOpenAI) -> None:
    openai_server.chunk_delay = 0.01
    openai_server.queue(Text("First sentence here. " * 20 + "The end."))
    sink = RecordingSink()
    reply = await pipeline.run(message("talk"), sink)
    assert "".join(sink.deltas) == reply.text
    assert len(sink.deltas) > 1
    assert sink.finished == [reply]


FENCED_ANSWER = "No, no. I'll keep it simple and to the point:\n<memory>Hi, I'm Sam. What's 17% of 2340?</memory>"
SHOWN_ANSWER = "No, no. I'll keep it simple and to the point:\nHi, I'm Sam. What's 17% of 2340?"


@pytest.mark.parametrize("streams", [False, True], ids=["finished", "streamed"])
async def test_a_reply_echoing_a_fence_tag_reaches_the_person_and_the_history_without_it(
    pipeline: Pipeline, pool: asyncpg.Pool, openai_server: FakeOpenAI, streams: bool
) -> None:
    openai_server.chunk_delay = 0.01
    openai_server.queue(Text(FENCED_ANSWER + " " + "x" * 200))  # long enough to stream before it ends
    sink = RecordingSink(streams=streams)
    reply = await pipeline.run(message("and in euros?"), sink)
    assert reply.text == SHOWN_ANSWER + " " + "x" * 200
    assert "".join(sink.deltas) == (reply.text if streams else "")
    stored = await pool.fetchval(
        "SELECT content FROM messages WHERE turn_id = $1 AND role = 'assistant'", reply.turn_id
    )
    assert stored == reply.text


async def test_a_reply_of_only_fence_tags_is_an_empty_answer_turn_the_history_never_holds(
    pipeline: Pipeline, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    openai_server.queue(Text("<memory>\n</memory>"))
    reply = await pipeline.run(message("hi"), RecordingSink(streams=False))
    assert (reply.text, reply.error) == (EMPTY_ANSWER, "model_empty")
    turn = await pool.fetchrow("SELECT status, error FROM turns WHERE id = $1", reply.turn_id)
    assert (turn["status"], turn["error"]) == ("error", "model_empty")
    assert not await pool.fetchval(
        "SELECT count(*) FROM messages WHERE turn_id = $1 AND role = 'assistant'", reply.turn_id
    )


class BlockWord:
    """A guard that blocks any text containing a word: enough to test where rails sit."""

    def __init__(self, word: str) -> None:
        self.word = word

    async def check_input(
        self, text: str, *, attachments: Sequence[str], user: UserKey, threshold: float | None = None
    ) -> Verdict:
        blocked = self.word in text or any(self.word in a for a in attachments)
        return Verdict(
            blocked=blocked,
            text=text,
            rail="test-input" if blocked else None,
            message="I can't help with that." if blocked else None,
        )

    async def check_output(self, text: str, *, user: UserKey, request: Verdict | None = None) -> Verdict:
        blocked = self.word.upper() in text
        return Verdict(
            blocked=blocked,
            text=text,
            rail="test-output" if blocked else None,
            message="That answer was withheld." if blocked else None,
        )


async def test_p6_a_blocked_input_never_reaches_the_model(pool: asyncpg.Pool, openai_server: FakeOpenAI) -> None:
    from bot.app import Seams
    from core.seams import NoMedia, NoMemory

    pipeline = build_pipeline(
        settings_for(openai_server), pool, seams=Seams(media=NoMedia(), guard=BlockWord("forbidden"), memory=NoMemory())
    )
    reply = await pipeline.run(message("tell me the forbidden thing"))
    assert reply.blocked and reply.block_rail == "test-input"
    assert reply.text == "I can't help with that."
    assert openai_server.requests == []
    history = await pool.fetchval("SELECT count(*) FROM messages WHERE turn_id = $1", reply.turn_id)
    assert history == 0


async def test_p6_a_blocked_reply_is_never_shown_even_while_streaming(
    pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    from bot.app import Seams
    from core.seams import NoMedia, NoMemory

    pipeline = build_pipeline(
        settings_for(openai_server), pool, seams=Seams(media=NoMedia(), guard=BlockWord("secret"), memory=NoMemory())
    )
    openai_server.chunk_delay = 0.01
    openai_server.queue(Text("Fine start. " * 20 + "Now the SECRET part."))
    sink = RecordingSink()
    reply = await pipeline.run(message("go"), sink)
    assert reply.blocked and reply.text == "That answer was withheld."
    assert "SECRET" not in "".join(sink.deltas)


async def test_p20_a_workspace_system_prompt_overrides_the_default(
    pipeline: Pipeline, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    inbound = message("hi")
    await set_override(pool, inbound.user.workspace, "system_prompt", "You are Ahab's helper in $channel.", by=OPERATOR)
    await pipeline.run(inbound)
    system = str(openai_server.requests[-1]["messages"][0])
    assert "You are Ahab's helper in #C1." in system


async def test_p4_workspace_model_settings_reach_the_provider(
    pipeline: Pipeline, pool: asyncpg.Pool, openai_server: FakeOpenAI
) -> None:
    inbound = message("hi")
    await set_override(pool, inbound.user.workspace, "temperature", 0.15, by=OPERATOR)
    await pipeline.run(inbound)
    assert openai_server.requests[-1]["temperature"] == 0.15


async def test_p22_dynamic_facts_are_in_the_prompt(pipeline: Pipeline, openai_server: FakeOpenAI) -> None:
    await pipeline.run(message("hi", user_name="Ada", channel_name="general"))
    system = str(openai_server.requests[-1]["messages"][0])
    assert "Ada" in system and "#general" in system and "UTC" in system


async def test_p39_a_repeated_request_is_answered_from_the_cache(pool: asyncpg.Pool, openai_server: FakeOpenAI) -> None:
    from bot.app import Seams
    from core.seams import NoGuard, NoMedia, NoMemory

    seams = Seams(media=NoMedia(), guard=NoGuard(), memory=NoMemory())
    pipeline = build_pipeline(settings_for(openai_server, parley_cache_ttl_s=60), pool, seams=seams)
    workspace = f"w-{uuid.uuid4().hex[:8]}"
    first = await pipeline.run(message("cache me", workspace=workspace, thread="x1"))
    second = await pipeline.run(message("cache me", workspace=workspace, thread="x2"))
    assert first.text == second.text == "You said: cache me"
    # Counted by content: the session's fake server may also hear an earlier test's background work.
    assert sum("cache me" in str(r["messages"]) for r in openai_server.requests) == 1
    assert pipeline.cache_stats.hits == 1 and pipeline.cache_stats.hit_rate == 0.5


async def test_a_missing_model_answers_with_the_configuration_help(pool: asyncpg.Pool) -> None:
    from bot.settings import Settings

    pipeline = build_pipeline(Settings(_env_file=None), pool)  # type: ignore[call-arg]
    reply = await pipeline.run(message("hi"))
    assert reply.error == "model_not_configured"
    assert "PARLEY_MODEL" in reply.text


async def test_a_database_outage_gives_a_degraded_reply_not_a_crash(openai_server: FakeOpenAI, pg_uri: str) -> None:
    from core.store.pool import create_pool

    broken = await create_pool(pg_uri, max_size=2)
    pipeline = build_pipeline(settings_for(openai_server), broken)
    await broken.close()
    reply = await pipeline.run(message("hi"))
    assert reply.error is not None
    assert "database" in reply.text or "try again" in reply.text


@given(text=st.text(min_size=1, max_size=200).filter(lambda t: t.replace("\x00", "").strip()))
@example(text="0@0.AA")
async def test_p13_p14_any_text_gives_a_well_formed_reply(
    pool: asyncpg.Pool, fake_openai: FakeOpenAI, text: str
) -> None:
    fake_openai.reset()
    pipeline = build_pipeline(settings_for(fake_openai), pool)
    reply = await pipeline.run(message(text))
    assert isinstance(reply, Reply) and isinstance(reply.text, str) and reply.text
    assert reply.error is None
    assert last_user_text(fake_openai.requests[-1]) == scrub(text.replace("\x00", ""))  # "0@0.AA" goes as [EMAIL]


async def test_p54_swapping_the_provider_keeps_the_turn_working(pool: asyncpg.Pool) -> None:
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("from a function model")])

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        yield "from a function "
        yield "model"

    from bot.settings import Settings

    pipeline = build_pipeline(Settings(_env_file=None, parley_model="test"), pool)  # type: ignore[call-arg]
    pipeline.model = FunctionModel(answer, stream_function=stream)
    reply = await pipeline.run(message("hi"))
    assert reply.text == "from a function model"


async def test_p8_p19_secrets_in_attachments_never_reach_the_model(
    pipeline: Pipeline, openai_server: FakeOpenAI
) -> None:
    from core.models import Attachment

    note = Attachment(name="creds.txt", data=b"deploy key sk-proj-abcdefghijklmnopqrstuvwx1234 mail ops@example.com")
    reply = await pipeline.run(message("what is in the file?", attachments=(note,)))
    sent = str(openai_server.requests[-1]["messages"])
    assert "sk-proj-abcdefghijklmnopqrstuvwx1234" not in sent and "ops@example.com" not in sent
    assert "sk-proj" not in str(reply.attachments) and "ops@example.com" not in str(reply.attachments)


async def test_turns_beyond_the_concurrency_limit_wait_their_turn_and_are_all_answered(pool: asyncpg.Pool) -> None:
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    from bot.settings import Settings

    running, most = 0, 0

    async def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.05)
        running -= 1
        return ModelResponse(parts=[TextPart("done")])

    settings = Settings(_env_file=None, parley_model="test", parley_max_concurrent_turns=2)  # type: ignore[call-arg]
    pipeline = build_pipeline(settings, pool)
    pipeline.model = FunctionModel(answer)
    replies = await asyncio.gather(*(pipeline.run(message(f"question {i}")) for i in range(6)))
    assert [r.text for r in replies] == ["done"] * 6
    assert most == 2


async def test_a_reply_nobody_streams_is_asked_for_in_one_plain_request(
    pool: asyncpg.Pool, fake_openai: FakeOpenAI
) -> None:
    fake_openai.reset()
    pipeline = build_pipeline(settings_for(fake_openai), pool)
    reply = await pipeline.run(message("no stream please"))
    assert reply.text == "You said: no stream please"
    assert not fake_openai.requests[-1].get("stream")
