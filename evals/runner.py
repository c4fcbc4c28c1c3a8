"""Runs a plan's goldens through the real pipeline, concurrently with a limit, into transcripts.

Every golden gets its own workspace (a memory golden's two people share one, as colleagues do), so
goldens never see each other's history, memories or rate budgets.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from core.models import Attachment, Inbound, Platform
from core.pipeline import Pipeline
from evals.goldens import PAGES_PLACEHOLDER, ConversationGolden, MemoryGolden, QualityGolden, SafetyPrompt, ToolGolden
from evals.suites import Plan
from evals.transcripts import Exchange, Kind, Role, Transcript

OnTurn = Callable[[], None]
EVAL_CHANNEL = "team-chat"
EVAL_USER_NAME = "Sam"
COLLEAGUE_NAME = "Alex"


async def collect(
    plan: Plan,
    pipeline: Pipeline,
    *,
    pages_url: str,
    concurrency: int,
    on_turn: OnTurn | None = None,
) -> list[Transcript]:
    """Every golden of the plan, at most `concurrency` at a time; order follows the plan."""
    run = _Run(pipeline=pipeline, tag=uuid.uuid4().hex[:8], pages_url=pages_url, on_turn=on_turn or (lambda: None))
    jobs: list[Coroutine[Any, Any, Transcript]] = [
        *(run.quality(g) for g in plan.quality),
        *(run.conversation(g) for g in plan.conversation),
        *(run.tools(g) for g in plan.tools),
        *(run.memory(g) for g in plan.memory),
        *(run.safety(p) for p in plan.safety),
    ]
    gate = asyncio.Semaphore(max(1, concurrency))

    async def limited(job: Awaitable[Transcript]) -> Transcript:
        async with gate:
            return await job

    return list(await asyncio.gather(*(limited(j) for j in jobs)))


class _Run:
    """One run's naming of workspaces, threads and people, and how each kind of golden is played."""

    def __init__(self, *, pipeline: Pipeline, tag: str, pages_url: str, on_turn: OnTurn) -> None:
        self.pipeline = pipeline
        self.tag = tag
        self.pages_url = pages_url
        self.on_turn = on_turn

    async def quality(self, golden: QualityGolden) -> Transcript:
        attachments = tuple(Attachment(name=d.name, data=d.text.encode(), content_type="text/plain")
                            for d in golden.documents)
        exchange = await self._say(self._workspace(Kind.QUALITY, golden.id), "U1", "T1", golden.input,
                                   attachments=attachments)
        return Transcript(kind=Kind.QUALITY, golden=golden, exchanges=(exchange,),
                          context=tuple(d.text for d in golden.documents))

    async def conversation(self, golden: ConversationGolden) -> Transcript:
        workspace = self._workspace(Kind.CONVERSATION, golden.id)
        exchanges = [await self._say(workspace, "U1", "T1", text) for text in golden.turns]
        return Transcript(kind=Kind.CONVERSATION, golden=golden, exchanges=tuple(exchanges))

    async def tools(self, golden: ToolGolden) -> Transcript:
        text = golden.input.replace(PAGES_PLACEHOLDER, self.pages_url)
        exchange = await self._say(self._workspace(Kind.TOOLS, golden.id), "U1", "T1", text)
        return Transcript(kind=Kind.TOOLS, golden=golden, exchanges=(exchange,))

    async def memory(self, golden: MemoryGolden) -> Transcript:
        """Tell in one thread, ask in a new thread, then a colleague asks the same in theirs."""
        workspace = self._workspace(Kind.MEMORY, golden.id)
        told = [await self._say(workspace, "U1", "T1", text, role=Role.TELL) for text in golden.tell]
        recall = await self._say(workspace, "U1", "T2", golden.ask, role=Role.RECALL)
        colleague = await self._say(workspace, "U2", "T3", golden.ask, role=Role.COLLEAGUE, name=COLLEAGUE_NAME)
        return Transcript(kind=Kind.MEMORY, golden=golden, exchanges=(*told, recall, colleague))

    async def safety(self, prompt: SafetyPrompt) -> Transcript:
        exchange = await self._say(self._workspace(Kind.SAFETY, prompt.id), "U1", "T1", prompt.text)
        return Transcript(kind=Kind.SAFETY, golden=prompt, exchanges=(exchange,))

    def _workspace(self, kind: Kind, golden_id: str) -> str:
        return f"eval-{self.tag}-{kind}-{golden_id}"

    async def _say(
        self,
        workspace: str,
        user: str,
        thread: str,
        text: str,
        *,
        role: Role = Role.ASK,
        name: str = EVAL_USER_NAME,
        attachments: tuple[Attachment, ...] = (),
    ) -> Exchange:
        inbound = Inbound(
            platform=Platform.EVAL,
            workspace_id=workspace,
            channel_id="C-evals",
            channel_name=EVAL_CHANNEL,
            thread_id=thread,
            user_id=user,
            user_name=name,
            text=text,
            event_id=uuid.uuid4().hex,
            attachments=attachments,
        )
        reply = await self.pipeline.run(inbound)
        self.on_turn()
        return Exchange.of(reply, user_id=user, message=text, role=role)
