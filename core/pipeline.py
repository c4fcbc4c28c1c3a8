"""One turn, start to end: dedupe, rate limit, media, input rails, context, agent, output rails, persist,
deliver.

The turn owns its delivery: an adapter passes a `ReplySink` (core/sink.py), the reply streams into it
through the output rails (core/output_rails.py), and the platform messages it ends up in are recorded
for the turn (core/deliveries.py). Every stage is a span. An error anywhere becomes a clear reply to the
person and a logged event; the process keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
import logfire
from opentelemetry import trace
from pydantic_ai.exceptions import (
    AgentRunError,
    ModelAPIError,
    ModelHTTPError,
    ModelTimeoutError,
    UsageLimitExceeded,
    UserError,
)
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import Model
from pydantic_ai.settings import ModelSettings

from core import context as ctx
from core import deliveries, limits, metrics, turns
from core.agent import TurnDeps
from core.cache import CacheStats, CachingModel, PostgresCacheStore
from core.feedback import record_reaction, score_of
from core.guard.masking import scrub_off_loop
from core.knowledge import Knowledge
from core.llm import ModelFactory, ModelNotConfigured
from core.memory.history import to_model_messages
from core.models import AttachmentText, Inbound, Reaction, Reply, Usage, WorkspaceKey
from core.outbox import RETRYABLE, Outbox
from core.output_rails import EMPTY_REPLY, RailedSink
from core.prompts import PromptTemplate, load_template
from core.ratelimit import Budget, turn_budgets
from core.seams import GuardSeam, KnownFact, MediaSeam, MemoryHit, MemorySeam, Profile, Verdict
from core.sink import THINKING, ReplySink
from core.store.instance import Instance
from core.tool_loop import run_tool_loop
from core.tools.registry import ToolRegistry
from core.workspace import WorkspaceOverrides, overrides_of

log = logging.getLogger("parley.pipeline")
AfterTurn = Callable[[Inbound, Reply, Sequence[str]], object]
DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, ConnectionError)


@dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    """The turn's knobs. Their defaults live once, in bot/settings.py (`Settings`); bot/app.py passes them all."""

    model_name: str | None
    model_settings: ModelSettings
    history_messages: int
    memory_k: int
    system_prompt: str | None
    """An operator's system prompt for every workspace; a workspace override wins over it."""
    rate_user_per_min: int
    rate_workspace_per_min: int
    cache_ttl_s: int
    turn_timeout_s: float
    max_concurrent_turns: int
    """Turns worked on at once; later ones wait their turn. An event loop given more than it can run
    serves everyone late, acknowledgements included (Slack wants its ack within 3 s)."""
    allow_private_urls: bool
    missing_model_help: str
    model_notice: str | None
    """A caveat people are shown beside the model's name (the local demo model's)."""
    media_timeout_s: float = 300.0
    vision: bool = False


@dataclass
class Pipeline:
    config: PipelineConfig
    pool: asyncpg.Pool
    model: Model | None
    registry: ToolRegistry
    media: MediaSeam
    guard: GuardSeam
    memory: MemorySeam
    knowledge: Knowledge = field(default_factory=lambda: Knowledge(None))
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    cache_stats: CacheStats = field(default_factory=CacheStats)
    outbox: Outbox = field(default_factory=Outbox)
    after_turn: AfterTurn | None = None
    """Called once a turn is stored (online quality scoring); must return at once."""
    instance: Instance | None = None
    """This process's lock in the database: claims record it, so a retry after a crash can take over."""
    models: ModelFactory | None = None
    """The process's one factory: builds the models that channel or workspace settings name."""

    def __post_init__(self) -> None:
        self.template: PromptTemplate = load_template("system")
        self._admission = asyncio.Semaphore(self.config.max_concurrent_turns)
        self._named: dict[str, Model] = {}

    # -- public entry points -----------------------------------------------------------------
    async def run(self, inbound: Inbound, sink: ReplySink | None = None) -> Reply:
        """Answer one message and deliver the answer through `sink`. Never raises for anything a person or
        a provider can cause; what the sink itself raises (the platform refused a write) reaches the caller.

        Without a sink nobody reads the reply before it is complete (evaluations, tests): it is not streamed.
        A duplicate event is not delivered at all."""
        started = time.perf_counter()
        async with self._admission:
            reply = await self._run(inbound, sink, started)
            if sink is not None and not reply.duplicate:
                await self._deliver(inbound, reply, sink)
            return reply

    async def _deliver(self, inbound: Inbound, reply: Reply, sink: ReplySink) -> None:
        """Show the reply and record which platform messages carry it (a reaction on any of them rates the turn)."""
        with logfire.span("deliver"):
            message_ids = await sink.finish(reply)
            if reply.turn_id is None or not message_ids:
                return
            try:
                await deliveries.record(self.pool, inbound, turn_id=reply.turn_id, message_ids=message_ids)
            except DB_ERRORS as exc:
                log.warning(
                    "reply delivered but not recorded (%s): reactions to it will not find the turn",
                    type(exc).__name__, extra=_context(inbound),
                )

    async def _run(self, inbound: Inbound, sink: ReplySink | None, started: float) -> Reply:
        with logfire.span("turn", platform=inbound.platform, workspace=inbound.workspace_id) as span:
            try:
                reply = await asyncio.wait_for(self._turn(inbound, sink, started), self.config.turn_timeout_s)
            except asyncio.CancelledError:
                # Stopped mid-turn (Ctrl-C in the chat, a shutdown): closed now as the next start would close it,
                # not left open until then; the message shows as unanswered, and sending it again answers it.
                await asyncio.shield(self._close(inbound, turns.close_interrupted(self.pool, inbound)))
                raise
            except ModelNotConfigured as exc:
                reply = self._failure(inbound, "model_not_configured", str(exc))
            except TimeoutError:
                reply = self._failure(inbound, "timeout", "That took too long and I stopped. Please try again.")
            except asyncpg.DiskFullError as exc:
                _log_failure("storage_full", describe_error(exc), exc, inbound)
                reply = self._failure(
                    inbound,
                    "storage_full",
                    "My database's disk is full, so I can't store anything and can't answer safely right now. "
                    "Please try again later; whoever runs Parley needs to free some space.",
                )
            except DB_ERRORS as exc:
                _log_failure("database_unavailable", describe_error(exc), exc, inbound)
                reply = self._failure(
                    inbound,
                    "database_unavailable",
                    "I can't reach my database right now, so I can't answer safely. "
                    "Please try again in a minute.",
                )
            except Exception as exc:
                _log_failure("internal_error", describe_error(exc), exc, inbound)
                reply = self._failure(
                    inbound,
                    "internal_error",
                    f"Something went wrong on my side ({type(exc).__name__}). Please try again; if it happens "
                    "again, tell whoever runs Parley (their log says internal_error).",
                )
            if reply.error and reply.turn_id is None:
                await self._close(inbound, turns.finish_event(self.pool, inbound, error=reply.error))
            if not reply.latency_ms:
                reply = replace(reply, latency_ms=_elapsed_ms(started))
            latency = reply.latency_ms
            span.set_attribute("latency_ms", reply.latency_ms)
            outcome = (
                "duplicate" if reply.duplicate else
                "error" if reply.error else "blocked" if reply.blocked else "answered"
            )
            metrics.TURNS.labels(inbound.platform, outcome).inc()
            metrics.TURN_LATENCY.labels(inbound.platform).observe(latency / 1000)
            if reply.error:
                metrics.ERRORS.labels(reply.error).inc()
            log.info("turn done", extra={**_context(inbound), "outcome": outcome, "latency_ms": reply.latency_ms})
            return reply

    def _budgets(self, inbound: Inbound) -> list[Budget]:
        return turn_budgets(
            platform=inbound.platform,
            workspace_id=inbound.workspace_id,
            user_id=inbound.user_id,
            per_user=self.config.rate_user_per_min,
            per_workspace=self.config.rate_workspace_per_min,
        )

    def _owner(self) -> int | None:
        return self.instance.number if self.instance is not None else None

    async def _close(self, inbound: Inbound, closing: Awaitable[None]) -> None:
        """Run `closing` (core.turns closing the event's turn); a database away is logged, not raised: the next start
        closes a turn left open."""
        try:
            await closing
        except DB_ERRORS as exc:
            log.warning("could not close the turn of event %s: %s", inbound.event_id, type(exc).__name__)

    async def react(self, reaction: Reaction) -> int | None:
        """Store a rating; while the database is away it waits in the outbox instead of being lost."""
        score = score_of(reaction.emoji)
        if score is None:
            return None
        try:
            turn_id = await record_reaction(self.pool, reaction)
        except RETRYABLE:
            log.warning("database unavailable; feedback queued", extra=_reaction_context(reaction))
            self.outbox.add(lambda: record_reaction(self.pool, reaction))
            return None
        if turn_id is not None and not reaction.removed:
            metrics.FEEDBACK.labels(str(score)).inc()
        return turn_id

    # -- the turn ----------------------------------------------------------------------------
    async def _turn(self, inbound: Inbound, sink: ReplySink | None, started: float) -> Reply:
        inbound = replace(inbound, text=inbound.text.replace("\x00", ""))
        with _stage("dedupe"):
            claim = await turns.claim_turn(
                self.pool,
                inbound.user.workspace,
                inbound.event_id,
                owner=self._owner(),
                budgets=self._budgets(inbound),
                channel_id=inbound.channel_id,
                user_id=inbound.user_id,
                thread_id=inbound.thread_id,
                history=self.config.history_messages,
                now=self.now(),
                hold_s=self.config.turn_timeout_s,
            )
            if not claim.claimed:
                return Reply(text="", thread_id=inbound.thread_id, duplicate=True)
        wait = claim.wait_s
        if wait:
            return self._failure(
                inbound,
                "rate_limited",
                f"You're sending messages faster than I can answer. Please wait {wait:.0f} s and try again.",
            )
        overrides = overrides_of(claim.layers)
        if not inbound.text.strip() and not inbound.attachments:
            # Nothing to answer (say, only files that could not be downloaded): the adapter's notes are the reply.
            return Reply(text="", thread_id=inbound.thread_id, error="empty_message")
        spend = limits.decide(claim.standings, self.now())
        if spend.refusal:
            return self._failure(inbound, "spend_limit", spend.refusal)
        if sink is not None:
            await sink.status(THINKING)
        with _stage("media", count=len(inbound.attachments)):
            attachments = (
                await asyncio.wait_for(self.media.extract(inbound.attachments), self.config.media_timeout_s)
                if inbound.attachments
                else []
            )
            attachments = [replace(a, text=await scrub_off_loop(a.text)) if a.text else a for a in attachments]
        # Context is read while the input rails run, and the turn starts once they let the message through;
        # refused, the reads are abandoned and nothing is stored.
        opening: asyncio.Future[tuple[str, str | None]] = asyncio.get_running_loop().create_future()
        reading = asyncio.ensure_future(self._open_turn(inbound, await scrub_off_loop(inbound.text), opening))
        try:
            with _stage("input_rails"):
                verdict = await self.guard.check_input(
                    inbound.text,
                    attachments=[a.text for a in attachments if a.text],
                    user=inbound.user,
                    threshold=overrides.guard_threshold,
                )
            model_name, model = self._model_for(overrides.model)
            if model is None and not verdict.blocked:
                raise ModelNotConfigured(self.config.missing_model_help)
        except BaseException:
            await _abandon(reading)
            raise
        if verdict.blocked:
            await _abandon(reading)
            metrics.GUARD_BLOCKS_PIPELINE.labels("input").inc()
            return await self._blocked(inbound, verdict, attachments)
        assert model is not None  # checked with the verdict above

        opening.set_result((verdict.text, model_name))
        with _stage("context"):
            (turn_id, message_id), (profile, memories, known) = await reading
            earlier = to_model_messages(list(claim.history))
            memories = memories if overrides.memory is not False else []
            known = known if overrides.memory is not False else []
            instructions = self._instructions(inbound, verdict.text, overrides, profile, memories, known)
            prompt = ctx.build_user_content(verdict.text, attachments, vision=self.config.vision)
        deps = TurnDeps(
            user=inbound.user,
            conversation=inbound.conversation,
            pool=self.pool,
            allow_private_urls=self.config.allow_private_urls,
            on_tool=sink.tool if sink is not None else None,
        )
        rails = RailedSink(sink, self.guard, inbound.user, request=verdict)
        try:
            with _stage("agent"):
                text, messages = await self._run_agent(
                    prompt,
                    history=earlier,
                    instructions=instructions,
                    settings={**self.config.model_settings, **overrides.model_settings},  # type: ignore[typeddict-item]
                    tools=overrides.tools,
                    deps=deps,
                    rails=rails,
                    workspace=inbound.user.workspace,
                    model=model,
                )
        except AgentRunError as exc:
            code, cause = model_failure(exc)
            _log_failure(code, cause, exc, inbound, turn_id=turn_id)
            failed = Reply(
                text=explain_model_error(exc), thread_id=inbound.thread_id, turn_id=turn_id,
                error=code, attachments=tuple(attachments),
            )
            await turns.finish_turn(self.pool, inbound, turn_id=turn_id, reply=failed, calls=[], trace_id=_trace_id())
            return failed
        calls = _model_calls(messages)
        usage = Usage(
            input_tokens=sum(c.input_tokens for c in calls),
            output_tokens=sum(c.output_tokens for c in calls),
            requests=len(calls),
            cost_usd=turns.total_cost(calls),
        )
        metrics.TOKENS.labels("input").inc(usage.input_tokens)
        metrics.TOKENS.labels("output").inc(usage.output_tokens)
        if usage.cost_usd:
            metrics.COST.inc(usage.cost_usd)
        with _stage("output_rails"):
            out = await rails.final(text)
        reply = Reply(
            text=out.text,
            thread_id=inbound.thread_id,
            turn_id=turn_id,
            steps=tuple(deps.steps),
            usage=usage,
            attachments=tuple(attachments),
        )
        if out.blocked:
            metrics.GUARD_BLOCKS_PIPELINE.labels("output").inc()
            reply = replace(reply, text=out.message or _KIND_REFUSAL, blocked=True, block_rail=out.rail)
        elif out.rail == EMPTY_REPLY:  # an error turn: the history keeps no answer the model never gave
            log.warning("model_empty: the model's answer held nothing to show (turn %s)", turn_id,
                        extra={**_context(inbound), "error": "model_empty", "turn_id": turn_id})
            reply = replace(reply, error="model_empty")
        elif self._wants_voice(inbound, profile, overrides):
            reply = await self._with_voice(reply)
        reply = replace(reply, latency_ms=_elapsed_ms(started))
        remembering = overrides.memory is not False
        with _stage("persist"):
            # The reply, its usage and totals and the message's memory row: one statement, stored together or not
            # at all (a crash before it loses the turn's answer, never half of it).
            row = (
                await self.memory.memory_row(inbound.user, verdict.text, message_id=message_id)
                if remembering
                else None
            )
            known_now = await turns.finish_turn(
                self.pool, inbound, turn_id=turn_id, reply=reply, calls=calls, trace_id=_trace_id(), memory=row
            )
        if remembering:
            try:
                await self.memory.learn(
                    inbound.user, verdict.text, message_id=message_id, channel_id=inbound.channel_id,
                    is_dm=inbound.is_dm, known=known_now,
                )
            except DB_ERRORS as exc:  # the answer is stored and goes out; only what it states goes unlearned
                log.warning("turn %s stored, but its facts not learned (%s)", turn_id, type(exc).__name__,
                            extra=_context(inbound))
        if spend.warning and not reply.blocked:
            # After storing: the note is for the person, not part of the conversation the model sees again;
            # the sink's `finish` shows the final text, so it reaches a streamed reply too.
            reply = replace(reply, text=f"{reply.text}\n\n_{spend.warning}_")
        if self.after_turn is not None:
            self.after_turn(inbound, reply, [m.content for m in memories] + [a.text for a in attachments if a.text])
        return reply

    async def _open_turn(
        self, inbound: Inbound, masked: str, opening: asyncio.Future[tuple[str, str | None]]
    ) -> tuple[tuple[int, int], tuple[Profile, list[MemoryHit], Sequence[KnownFact]]]:
        """The person's context (facts, profile and recall, after the message's encoder pass), then the turn's
        start once the input rails pass the message (the message as they pass it, and the model, from `opening`):
        two statements that name their tenant themselves, each a transaction of its own (migration 0038). No
        connection waits in a transaction for the rails, however long a grey-zone message's self-check takes. The
        thread's history came with the claim. Returns (turn id, message id) and (profile, memories, facts)."""
        known, profile, memories = await self.memory.context(
            inbound.user, masked, k=self.config.memory_k, channel_id=inbound.channel_id, is_dm=inbound.is_dm
        )
        started = await self._start(inbound, await opening)
        return started, (profile, memories, known)

    async def _start(self, inbound: Inbound, passed: tuple[str, str | None]) -> tuple[int, int]:
        """The turn's start, with the message as the input rails passed it and the model it goes to."""
        text, model_name = passed
        return await turns.start_turn(self.pool, inbound, text=text, model=model_name, instance=self._owner())

    def _instructions(
        self,
        inbound: Inbound,
        text: str,
        overrides: WorkspaceOverrides,
        profile: Profile,
        memories: list[Any],
        known: Sequence[KnownFact],
    ) -> str:
        facts = ctx.Facts(
            now=self.now(),
            timezone=profile.timezone,
            platform=inbound.platform,
            workspace=inbound.workspace_id,
            channel=inbound.channel_name or inbound.channel_id,
            user_name=profile.display_name or inbound.user_name or inbound.user_id,
            is_dm=inbound.is_dm,
            viewing=inbound.viewing_channel,
        )
        values = ctx.template_values(facts)
        custom = overrides.system_prompt or self.config.system_prompt
        system = (
            PromptTemplate.parse("workspace", custom, frozenset(values)).render(values)
            if custom
            else self.template.render(values)
        )
        knowledge = ctx.select_knowledge(
            text, self.knowledge.chunks_for(inbound.workspace_id), ctx.KNOWLEDGE_BUDGET_CHARS
        )
        return ctx.build_instructions(
            system_prompt=system,
            profile=profile,
            facts=known,
            memories=memories,
            knowledge=knowledge,
            notices=ctx.memory_notices(text, is_dm=inbound.is_dm),
        )

    async def _run_agent(
        self,
        prompt: str | list[Any],
        *,
        history: list[ModelMessage],
        instructions: str,
        settings: ModelSettings,
        tools: list[str] | None,
        deps: TurnDeps,
        rails: RailedSink,
        workspace: WorkspaceKey,
        model: Model,
    ) -> tuple[str, list[ModelMessage]]:
        """Run the turn's tool loop (core/tool_loop.py): streamed into `rails` when someone reads the reply as it
        is written, else plain requests. With the cache on, a hit answers either way (and streams its stored
        text); the cache key holds the model's name, so channels on different models never share an answer."""
        toolsets = self.registry.toolsets_for(tools)
        caching = self.config.cache_ttl_s > 0
        if caching:
            model = CachingModel(
                model, PostgresCacheStore(self.pool, workspace, self.config.cache_ttl_s), self.cache_stats
            )
        hits = self.cache_stats.hits
        output, messages = await run_tool_loop(
            model, prompt, history=history, instructions=instructions, settings=settings, toolsets=toolsets,
            deps=deps, on_text=rails.draft if rails.sink is not None else None,
        )
        if caching:
            metrics.CACHE.labels("hit" if self.cache_stats.hits > hits else "miss").inc()
        return output, messages

    async def _blocked(self, inbound: Inbound, verdict: Verdict, attachments: list[AttachmentText]) -> Reply:
        """A refused message: the turn is recorded, the text never reaches a model or the history."""
        turn_id = await turns.record_blocked(self.pool, inbound, rail=verdict.rail)
        return Reply(
            text=verdict.message or _KIND_REFUSAL,
            thread_id=inbound.thread_id,
            blocked=True,
            block_rail=verdict.rail,
            turn_id=turn_id,
            attachments=tuple(attachments),
        )

    def _model_for(self, name: str | None) -> tuple[str | None, Model | None]:
        """The model a channel's or workspace's `model` setting names (built once per name by the process's
        one factory, so its breaker and HTTP pool are shared), else the configured one."""
        if name is None or self.models is None or name == self.config.model_name:
            return self.config.model_name, self.model
        if name not in self._named:
            try:
                self._named[name] = self.models.build(name)
            except (UserError, ImportError) as exc:
                log.warning("the model setting %s cannot be built: %s", name, type(exc).__name__)
                raise ModelNotConfigured(_unusable_channel_model(name, exc)) from exc
        return name, self._named[name]

    def _wants_voice(self, inbound: Inbound, profile: Profile, overrides: WorkspaceOverrides) -> bool:
        """The request's choice, else the person's, else the channel's or workspace's setting."""
        if inbound.voice_reply is not None:
            return inbound.voice_reply
        return profile.voice_replies or bool(overrides.voice_replies)

    async def _with_voice(self, reply: Reply) -> Reply:
        try:
            with _stage("speak"):
                audio, fmt = await asyncio.wait_for(self.media.speak(reply.text), self.config.media_timeout_s)
        except Exception as exc:
            log.warning("text-to-speech failed: %s", type(exc).__name__)
            return reply
        return replace(reply, audio=audio, audio_format=fmt)

    def _failure(self, inbound: Inbound, code: str, text: str) -> Reply:
        return Reply(text=text, thread_id=inbound.thread_id, error=code)


def _unusable_channel_model(name: str, exc: BaseException) -> str:
    """A channel's or workspace's `model` setting that cannot run in this process (no key for its
    provider, or its SDK not installed): what a person can do, without the SDK's own advice."""
    why = (
        "its provider's library is not installed" if isinstance(exc, ImportError)
        else "its provider has no API key here"
    )
    return (
        f"This channel is set to use the model {name}, which can't run here: {why}. Ask whoever runs Parley "
        "to set it up, or to unset the channel's `model` setting."
    )


_KIND_REFUSAL = "Sorry, I can't help with that one. If you think this is a mistake, try rephrasing."


def explain_model_error(exc: BaseException) -> str:
    """A sentence a person understands for a provider failure, saying whether to retry or to tell
    an operator (seed property 53)."""
    if isinstance(exc, ModelNotConfigured):
        return str(exc)
    code, _ = model_failure(exc)
    return _MODEL_REPLIES.get(code, _MODEL_REPLIES["model_failed"])


_OPERATOR = "tell whoever runs Parley (their log says {code})."
_MODEL_REPLIES = {
    "model_rate_limited": "The AI provider is rate-limiting me right now, even after retries. "
    "Please try again in a minute.",
    "model_auth_failed": "The AI provider refused my API key, so retrying won't help: "
    + _OPERATOR.format(code="model_auth_failed"),
    "model_not_found": "The AI provider doesn't know the model I'm set up to use, so retrying won't help: "
    + _OPERATOR.format(code="model_not_found"),
    "model_server_error": "The AI provider is having trouble (server error), even after retries. "
    "Please try again soon.",
    "model_rejected": "The AI provider rejected this request. Please rephrase or shorten it; if it keeps "
    "happening, " + _OPERATOR.format(code="model_rejected"),
    "model_usage_limit": "This request needed more model calls than I'm allowed for one message. "
    "Please ask for less at once.",
    "model_timeout": "The AI model took too long to answer. Please try again.",
    "model_unreachable": "I couldn't reach the AI model. Please try again in a few minutes; if it keeps "
    "happening, " + _OPERATOR.format(code="model_unreachable"),
    "model_failed": "The AI model failed to produce an answer. Please try again; if it keeps happening, "
    + _OPERATOR.format(code="model_failed"),
}


OPERATOR_FIXES = {
    "model_unreachable": "start the model server or correct OPENAI_BASE_URL / the provider's address",
    "model_auth_failed": "set a valid API key for the provider (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...)",
    "model_not_found": "correct the model name in PARLEY_MODEL (the provider lists the ones it serves)",
    "model_rate_limited": "wait, or raise the provider account's limits",
    "model_timeout": "check the model server's load, or raise PARLEY_MODEL_TIMEOUT",
    "model_server_error": "check the provider's status page or the model server's log",
    "database_unavailable": "check that Postgres is up and DATABASE_URL points at it (`parley doctor`)",
    "storage_full": "free space on the disk that holds the database (PARLEY_DATA_DIR for the embedded one: "
    "`df -h`); turns work again as soon as there is room, without a restart",
    "internal_error": "run with PARLEY_LOG_LEVEL=DEBUG for the traceback and report it",
}
"""What the operator does about each failure code; the log line ends with it."""


def model_failure(exc: BaseException) -> tuple[str, str]:
    """An error code and the cause an operator acts on, e.g. `model_unreachable`,
    `connect to 127.0.0.1:11434 refused`."""
    if isinstance(exc, ModelHTTPError):
        status = exc.status_code
        code = (
            "model_rate_limited" if status == 429 else
            "model_auth_failed" if status in (401, 403) else
            "model_not_found" if status == 404 else
            "model_server_error" if status >= 500 else "model_rejected"
        )
        return code, f"{exc.model_name} answered HTTP {status}: {describe_error(exc.body or exc.message)}"
    if isinstance(exc, UsageLimitExceeded):
        return "model_usage_limit", str(exc)
    if isinstance(exc, ModelTimeoutError):
        return "model_timeout", f"{exc.model_name}: {_transport_cause(exc) or exc.message}"
    if isinstance(exc, ModelAPIError):
        return "model_unreachable", _transport_cause(exc) or f"{exc.model_name}: {exc.message}"
    return "model_failed", describe_error(exc)


def _transport_cause(exc: BaseException) -> str | None:
    """'connect to HOST:PORT refused' from the transport errors under a provider error, when there are any."""
    chain = list(_chain(exc))
    urls = [url for e in chain if (url := getattr(getattr(e, "_request", None), "url", None)) is not None]
    address = f"{urls[0].host}:{urls[0].port or (443 if urls[0].scheme == 'https' else 80)}" if urls else None
    refused = any(isinstance(e, ConnectionRefusedError) for e in chain)
    os_error = next((e for e in chain if isinstance(e, OSError) and not isinstance(e, TimeoutError)), None)
    if address is None and os_error is None:
        return None
    what = "refused" if refused else f"failed ({describe_error(os_error or exc.__cause__ or exc)})"
    return f"connect to {address or 'the model server'} {what}"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes and contexts, and the members of exception groups among them."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack += [e for e in (current.__cause__, current.__context__) if e is not None]
        if isinstance(current, BaseExceptionGroup):
            stack += list(current.exceptions)


def describe_error(value: object) -> str:
    """One line, at most 300 characters: what an operator reads next to the error code."""
    if isinstance(value, BaseException):
        text = f"{type(value).__name__}: {value}" if str(value) else type(value).__name__
    else:
        text = str(value)
    return " ".join(text.split())[:300]


def _log_failure(code: str, cause: str, exc: BaseException, inbound: Inbound, *, turn_id: int | None = None) -> None:
    """One log line an operator acts on; the traceback only at DEBUG, where someone asked for it."""
    fix = OPERATOR_FIXES.get(code)
    log.error(
        "%s: %s (turn %s)%s", code, cause, turn_id if turn_id is not None else "not started",
        f"; fix: {fix}" if fix else "",
        exc_info=exc if log.isEnabledFor(logging.DEBUG) else None,
        extra={**_context(inbound), "error": code, "turn_id": turn_id},
    )


def _model_calls(messages: list[ModelMessage]) -> list[turns.ModelCall]:
    calls = []
    for message in messages:
        if isinstance(message, ModelResponse):
            try:
                cost: float | None = float(message.cost().total_price)
            except Exception:
                cost = None
            calls.append(
                turns.ModelCall(
                    model=message.model_name or "unknown",
                    input_tokens=message.usage.input_tokens,
                    output_tokens=message.usage.output_tokens,
                    cost_usd=cost,
                )
            )
    return calls


async def _abandon(task: asyncio.Future[Any]) -> None:
    """Cancel speculative work and wait for it to stop, whatever it raised."""
    task.cancel()
    with contextlib.suppress(BaseException):
        await task


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _stage(name: str, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
    """A span for one stage of the turn where the turn's span is recorded, else nothing: an unrecorded
    span still cost 17 µs of logfire's bookkeeping (its caller's stack read, attributes checked), nine a
    turn, for a trace nobody reads; its trace id, which log lines and the stored turn carry, is the
    turn's span's either way."""
    if trace.get_current_span().is_recording():
        return logfire.span(name, **attributes)
    return contextlib.nullcontext()


def _trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def _reaction_context(reaction: Reaction) -> dict[str, str]:
    return {"platform": reaction.platform, "workspace": reaction.workspace_id}


def _context(inbound: Inbound) -> dict[str, str]:
    return {
        "platform": inbound.platform,
        "workspace": inbound.workspace_id,
        "channel": inbound.channel_id,
        "event_id": inbound.event_id,
    }

