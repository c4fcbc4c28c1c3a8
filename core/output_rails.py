"""The output rails between the model's stream and a `ReplySink`: text reaches the sink only once
the rails have passed it, so a blocked reply is never shown (stage 7 of a turn, docs/architecture.md).

While the model streams, the text so far is checked once `check_every` new characters have come, or
half as many as were checked already where that is more (up to `MAX_CHECK_STEP`), and what passed is
forwarded; `final` checks the whole reply (once: reusing the last check when it already covered exactly
this text) and sends what is still missing. Once a check blocks, nothing more is sent.

What the rails check and pass on is the reply without the fence tags a model echoed from its prompt
(core/fencing.py): a person never sees that markup, streamed or finished, and the stored reply is the text
they saw. While streaming, a trailing `<...` that may still become such a tag waits until it is decided.
A reply that leaves nothing to read (only such tags, or only whitespace) passes as `EMPTY_ANSWER`, its
verdict naming the rail `EMPTY_REPLY`: sent as it was, it reached a person as an empty message (Slack's
and Discord's placeholder, an empty API reply, a blank line in the terminal).

Every check reads the whole text so far (the leak and bias rails scan it, the harm rail encodes its
unfinished last chunk again), so with a fixed step a long reply's checking grew with its square: a
3,000-character reply was checked 18 times while streaming at 160 characters a step, and is checked 8
times with the step growing. The first text still shows after `check_every` characters.
"""

from __future__ import annotations

from core.fencing import without_fence_tags
from core.models import UserKey
from core.seams import GuardSeam, Verdict
from core.sink import ReplySink

STREAM_CHECK_CHARS = 160
MAX_CHECK_STEP = 480
"""The most new characters a streaming check waits for: a model writing 100 characters a second still shows
new text every 5 s."""
EMPTY_REPLY = "empty_reply"
"""The rail a verdict names when the model's reply left nothing to show (`Verdict.rail`)."""
EMPTY_ANSWER = "The AI model's answer was empty. Please try again."


class RailedSink:
    """Streams text through `guard.check_output` into `sink` (None, or a sink that does not stream: only
    `final` checks); `request`, the input verdict of the message being answered, goes with every check."""

    def __init__(
        self,
        sink: ReplySink | None,
        guard: GuardSeam,
        user: UserKey,
        *,
        request: Verdict | None = None,
        check_every: int = STREAM_CHECK_CHARS,
    ) -> None:
        self.sink = sink if sink is not None and sink.streams else None
        self.guard = guard
        self.user = user
        self.request = request
        self.check_every = check_every
        self._sent = ""
        self._checked = ""
        self._last: Verdict | None = None

    async def draft(self, text: str) -> None:
        """The reply so far (the whole text, not a delta)."""
        if self.sink is None or (self._last is not None and self._last.blocked):
            return
        text = without_fence_tags(text, writing=True)
        if len(text) - len(self._checked) >= self._step():
            self._last, self._checked = await self._check(text), text
            await self._forward(self._last)

    async def _check(self, text: str) -> Verdict:
        return await self.guard.check_output(text, user=self.user, request=self.request)

    def _step(self) -> int:
        """New characters the next streaming check waits for."""
        return max(self.check_every, min(len(self._checked) // 2, MAX_CHECK_STEP))

    async def final(self, text: str) -> Verdict:
        """The rails' verdict on the whole reply; a passed reply's rest goes to the sink."""
        text = without_fence_tags(text)
        if not text.strip():
            self._last = Verdict(blocked=False, text=EMPTY_ANSWER, rail=EMPTY_REPLY, reason="nothing to show")
        elif self._last is None or not (self._last.blocked or self._checked == text):
            self._last, self._checked = await self._check(text), text
        await self._forward(self._last)
        return self._last

    async def _forward(self, verdict: Verdict) -> None:
        """Send what the rails passed beyond what was sent; a masked rewrite of sent text waits for `finish`."""
        if self.sink is None or verdict.blocked or not verdict.text.startswith(self._sent):
            return
        if verdict.text != self._sent:
            await self.sink.delta(verdict.text[len(self._sent):])
            self._sent = verdict.text
