"""The output rails between a streaming model and the sink: what is checked, and when."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from core.models import Reply, ToolProgress, UserKey
from core.output_rails import EMPTY_ANSWER, EMPTY_REPLY, MAX_CHECK_STEP, STREAM_CHECK_CHARS, RailedSink
from core.seams import Verdict

USER = UserKey(platform="console", workspace_id="W1", user_id="U1")


@dataclass
class CountingGuard:
    """Passes every text and records what the output rails were asked to check."""

    checked: list[str] = field(default_factory=list)
    requests: list[Verdict | None] = field(default_factory=list)

    async def check_input(
        self, text: str, *, attachments: Sequence[str], user: UserKey, threshold: float | None = None
    ) -> Verdict:
        return Verdict(blocked=False, text=text)

    async def check_output(self, text: str, *, user: UserKey, request: Verdict | None = None) -> Verdict:
        self.checked.append(text)
        self.requests.append(request)
        return Verdict(blocked=False, text=text)


@dataclass
class StreamSink:
    streams: bool = True
    deltas: list[str] = field(default_factory=list)

    async def delta(self, text: str) -> None:
        self.deltas.append(text)

    async def status(self, text: str) -> None:
        return None

    async def tool(self, progress: ToolProgress) -> None:
        return None

    async def finish(self, reply: Reply) -> Sequence[str]:
        return []


async def stream(
    reply: str, guard: CountingGuard, sink: StreamSink, *, step: int = 16, request: Verdict | None = None
) -> Verdict:
    rails = RailedSink(sink, guard, USER, request=request)
    for end in range(step, len(reply) + step, step):
        await rails.draft(reply[:end])
    return await rails.final(reply)


async def test_a_short_reply_is_checked_once_when_it_is_complete() -> None:
    guard, sink = CountingGuard(), StreamSink()
    await stream("x" * (STREAM_CHECK_CHARS - 1), guard, sink)
    assert guard.checked == ["x" * (STREAM_CHECK_CHARS - 1)]


async def test_every_check_of_a_reply_carries_the_request_it_answers() -> None:
    guard, sink = CountingGuard(), StreamSink()
    request = Verdict(blocked=False, text="Why did Germany invade Poland?", harm_score=0.01)
    await stream("w" * 1000, guard, sink, request=request)
    assert len(guard.requests) > 1
    assert all(r is request for r in guard.requests)


async def test_the_first_text_of_a_reply_shows_after_the_first_step() -> None:
    guard, sink = CountingGuard(), StreamSink()
    rails = RailedSink(sink, guard, USER)
    await rails.draft("y" * STREAM_CHECK_CHARS)
    assert sink.deltas == ["y" * STREAM_CHECK_CHARS]


async def test_a_long_reply_is_checked_at_steps_that_grow_with_it_up_to_a_bound() -> None:
    guard, sink = CountingGuard(), StreamSink()
    reply = "z" * 6000
    await stream(reply, guard, sink)
    lengths = [len(text) for text in guard.checked]
    steps = [b - a for a, b in zip([0, *lengths], lengths, strict=False)]
    assert len(guard.checked) <= 16  # 38 at a fixed step of 160 characters
    assert all(STREAM_CHECK_CHARS <= s <= MAX_CHECK_STEP + 16 for s in steps[:-1])
    assert steps[-2] > steps[0]
    assert "".join(sink.deltas) == reply


async def test_a_fence_tag_split_across_drafts_never_reaches_the_sink() -> None:
    guard, sink = CountingGuard(), StreamSink()
    rails = RailedSink(sink, guard, USER, check_every=1)
    reply = "Keep it simple:\n<memory said=\"today\">Hi, I'm Sam.</memory> Done."
    for end in range(1, len(reply) + 1):
        await rails.draft(reply[:end])
    verdict = await rails.final(reply)
    assert verdict.text == "Keep it simple:\nHi, I'm Sam. Done."
    assert "".join(sink.deltas) == verdict.text
    assert not any("<" in delta for delta in sink.deltas)
    assert not any("<" in text for text in guard.checked)


@pytest.mark.parametrize("reply", ["<memory></memory>", "<note said=\"today\">\n</note>\n", " \n "])
async def test_a_reply_that_leaves_nothing_to_read_says_the_answer_was_empty(reply: str) -> None:
    sink = StreamSink()
    verdict = await stream(reply, CountingGuard(), sink, step=1)
    assert (verdict.blocked, verdict.text, verdict.rail) == (False, EMPTY_ANSWER, EMPTY_REPLY)
    assert sink.deltas == [EMPTY_ANSWER]
