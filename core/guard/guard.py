"""The Guard: Parley's input and output rails on NeMo Guardrails, as the pipeline's GuardSeam.

NeMo's configuration (config.yml and rails.co in `config/`) says which rails run; an engine
(core/guard/engine.py) runs one stage's rails and returns every rail's `RailOutcome`, from which the
Guard reads the blocking rail, its reason and score. The custom actions do the work on the one shared
MiniLM. No language model is called unless `GuardConfig.llm` is set; then `llm_mode` says when:

- 'on': NeMo's self-check rails run on every message and reply, beside the offline rails;
- 'auto': the offline rails decide clear cases; only a harm score inside the grey zone (between two
  calibrated thresholds) is referred to NeMo's self-check, whose answer then decides. Should the model
  fail or time out, the offline verdict stands and the failure is logged as an 'error' event.

    guard = Guard(GuardConfig(policy_dir=..., llm=complete_or_None), events=pool_sink(pool))
    await guard.warm()
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from nemoguardrails.actions.rail_outcome import RailOutcome

from core.guard.actions import RailActions
from core.guard.categories import ILLEGAL, CategoryModel
from core.guard.engine import NemoEngine, RailEngine, select_engine
from core.guard.events import Action, EventSink, SafetyEvent, Stage, count, make_event
from core.guard.harm import HarmClassifier
from core.guard.llm import CompletionLLM
from core.guard.masking import scrub
from core.guard.settings import GuardConfig
from core.models import UserKey
from core.seams import Verdict

if TYPE_CHECKING:
    from core.guard.head import InputHead

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "config"
MODEL_PLACEHOLDER = "__BUNDLED_MINILM__"
DEDUPE_S = 60.0


SelfCheck = Literal["none", "with", "only"]


def build_rails_config(*, embeddings_model: Path, llm: bool | SelfCheck) -> Any:
    """The NeMo RailsConfig from `config/`, with this install's MiniLM path filled in.

    `llm`: 'none' (or False) the offline rails; 'with' (or True) NeMo's self-check rails after them;
    'only' the self-check rails alone (what the 'auto' cascade refers grey-zone texts to)."""
    from nemoguardrails import RailsConfig

    self_check: SelfCheck = "with" if llm is True else "none" if llm is False else llm
    raw = yaml.safe_load((CONFIG_DIR / "config.yml").read_text())
    for model in raw.get("models", []):
        if model.get("model") == MODEL_PLACEHOLDER:
            model["model"] = str(embeddings_model)
    colang = (CONFIG_DIR / "rails.co").read_text()
    if self_check != "none":
        extra = yaml.safe_load((CONFIG_DIR / "llm.yml").read_text())
        for stage in ("input", "output"):
            before = raw["rails"][stage]["flows"] if self_check == "with" else []
            raw["rails"][stage]["flows"] = before + extra["rails"][stage]["flows"]
        raw["prompts"] = extra["prompts"]
        colang += "\n" + (CONFIG_DIR / "llm.co").read_text()
    return RailsConfig.from_content(colang_content=colang, yaml_content=yaml.safe_dump(raw))


@cache
def load_classifier(path: Path) -> HarmClassifier:
    """The classifier weights, read once per process and path."""
    return HarmClassifier.load(path)


@cache
def load_head(path: Path) -> InputHead:
    """The input head's weights, read once per process and path (about 35 MB as float32). Imported here:
    the head needs scipy, which a guard without it should not pay for at start-up (~140 ms)."""
    from core.guard.head import InputHead

    return InputHead.load(path)


@cache
def load_categories() -> CategoryModel:
    """The kind-of-harm model, read once per process."""
    return CategoryModel.load()


@dataclass(frozen=True, kw_only=True, slots=True)
class RailResult:
    """One rail's outcome as read from NeMo's activation log."""

    rail: str
    decision: str
    reason: str | None
    score: float
    failed: bool
    metadata: dict[str, Any]
    transformed: str | None = None
    """The rewritten text of a transform (masking)."""


class Guard:
    """Implements core.seams.GuardSeam. Build once per process, then `await warm()`."""

    def __init__(self, config: GuardConfig, *, events: EventSink | None = None) -> None:
        from core.embeddings import bundled_model_path
        from core.encoder import shared_encoder

        self.config = config
        self._events = events
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="guard")
        encoder = shared_encoder()
        if config.head_weights is not None:
            encoder.keep_tokens = True  # the head runs on layer 1's token states
        self.actions = RailActions(
            config=config,
            encoder=encoder,
            classifier=load_classifier(config.harm_weights),
            head=load_head(config.head_weights) if config.head_weights is not None else None,
            categories=load_categories(),
            executor=self._executor,
        )
        llm = CompletionLLM(config.llm, timeout_s=config.llm_timeout_s) if config.llm else None
        every = llm is not None and config.llm_mode == "on"
        actions = self.actions.actions() | (self.actions.llm_actions() if every else {})
        self.engine: RailEngine = select_engine(
            build_rails_config(embeddings_model=bundled_model_path(), llm=every),
            llm=llm if every else None,
            actions=actions,
            choice=config.engine,
        )
        self.referee: RailEngine | None = None
        """NeMo's self-check alone, asked about grey-zone scores (llm_mode 'auto')."""
        if llm is not None and not every:
            self.referee = NemoEngine(
                build_rails_config(embeddings_model=bundled_model_path(), llm="only"),
                llm=llm,
                actions=self.actions.llm_actions(),
            )
        self._recent: OrderedDict[tuple[str, ...], float] = OrderedDict()

    async def warm(self) -> None:
        """Run every rail once so the first real message pays no start-up cost."""
        user = UserKey(platform="console", workspace_id="warmup", user_id="warmup")
        sink, self._events = self._events, None
        try:
            await self._run("input", "How do I rotate a log file?", (), user)
            await self._run("output", "Use logrotate with a daily schedule.", (), user)
        finally:
            self._events = sink

    def close(self) -> None:
        """Stop the guard's worker threads (at shutdown)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def check_input(
        self, text: str, *, attachments: Sequence[str], user: UserKey, threshold: float | None = None
    ) -> Verdict:
        """Mask, then block jailbreaks, workspace-blocked topics and harmful requests; `threshold` is a
        channel's or workspace's cut on the harmful-request score (None: the policy's, else the calibrated one)."""
        return await self._check("input", text, attachments, user, threshold)

    async def check_output(self, text: str, *, user: UserKey, request: Verdict | None = None) -> Verdict:
        """Mask or block leaked secrets, block harmful content and biased generalisations. `request`, the
        input verdict of the message this answers, lets the harm rail weigh the reply with it
        (core/guard/reply_rule.py)."""
        evidence = None
        if request is not None and not request.blocked and request.harm_score is not None:
            evidence = {"score": request.harm_score, "text": request.text}
        return await self._check("output", text, (), user, request=evidence)

    # --- internals -------------------------------------------------------------------------------

    async def _check(
        self,
        stage: Stage,
        text: str,
        attachments: Sequence[str],
        user: UserKey,
        threshold: float | None = None,
        request: dict[str, Any] | None = None,
    ) -> Verdict:
        try:
            results = await self._run(stage, text, attachments, user, threshold=threshold, request=request)
        except Exception as exc:
            log.warning("guard engine failed on %s: %s", stage, type(exc).__name__, exc_info=exc)
            return await self._engine_failure(stage, text, user, exc)
        if self.referee is not None:
            results = await self._refer(stage, text, attachments, user, results)
        verdict = self._verdict(stage, text, results)
        await self._record(stage, text, verdict, results, user)
        return verdict

    async def _run(
        self,
        stage: Stage,
        text: str,
        attachments: Sequence[str],
        user: UserKey,
        engine: RailEngine | None = None,
        threshold: float | None = None,
        request: dict[str, Any] | None = None,
    ) -> list[RailResult]:
        context = {
            "platform": user.platform,
            "workspace_id": user.workspace_id,
            "attachments": list(attachments),
            "harm_threshold": threshold,
            "request": request,
        }
        return [_result(outcome) for outcome in await (engine or self.engine).outcomes(stage, text, context)]

    async def _refer(
        self, stage: Stage, text: str, attachments: Sequence[str], user: UserKey, results: list[RailResult]
    ) -> list[RailResult]:
        """The 'auto' cascade: a grey-zone harm score is decided by NeMo's self-check through the model.

        Only the harm rails' own verdicts are referred (a jailbreak, policy, leak or bias block stands),
        the model sees the masked text, and a failing model leaves the offline results as they were."""
        harm = next((r for r in results if r.rail in ("harm", "harm_output")), None)
        other_block = any(r.decision == "block" and r.rail not in ("harm", "harm_output") for r in results)
        low, high = self.actions.grey_zone if stage == "input" else self.actions.output_grey_zone
        if harm is None or other_block or harm.failed or not low <= harm.score < high:
            return results
        masked = next((r.transformed for r in results if r.decision == "transform" and r.transformed), text)
        rail = f"self_check_{stage}"
        try:
            referred = await self._run(stage, masked, attachments, user, self.referee)
        except Exception as exc:
            referred = [_error_result(rail, type(exc).__name__)]
        answer = next((r for r in referred if r.rail == rail), None) or _error_result(rail, "no answer")
        if answer.failed or "error" in answer.metadata:
            cause = answer.metadata.get("error", answer.reason)
            log.warning("guard model check failed on a grey-zone %s (%s); the offline verdict stands", stage, cause)
            return [*results, _error_result(rail, str(cause))]
        kept = [r for r in results if r is not harm]
        decided = replace(harm, decision="allow", metadata={**harm.metadata, "referred": answer.decision})
        if answer.decision == "block":
            category = harm.metadata.get("category")
            reason = "the model's self-check confirmed a grey-zone score" + (f" ({category})" if category else "")
            return [
                *kept,
                decided,
                replace(answer, score=harm.score, reason=reason, metadata={**harm.metadata, **answer.metadata}),
            ]
        return [*kept, decided]

    def _verdict(self, stage: Stage, text: str, results: list[RailResult]) -> Verdict:
        messages = self.config.messages
        blocking = next((r for r in results if r.decision == "block"), None)
        masked = next((r for r in results if r.decision == "transform"), None)
        carried = masked.transformed if masked and masked.transformed is not None else text
        if blocking is None:
            main = next((r for r in results if r.rail in ("harm", "harm_output")), None)
            scored = main is not None and not main.failed and "error" not in main.metadata
            return Verdict(
                blocked=False,
                text=carried,
                rail=masked.rail if masked else None,
                reason=masked.reason if masked else None,
                score=main.score if main else 0.0,
                harm_score=main.score if main is not None and scored else None,
            )
        if blocking.failed:
            message = messages.error
        elif stage == "output":
            message = messages.leak if blocking.rail == "leak" else messages.output
        elif blocking.rail == "jailbreak":
            message = messages.jailbreak
        elif blocking.rail == "policy":
            message = blocking.metadata.get("message") or messages.policy
        else:
            message = messages.harm.format(category=blocking.metadata.get("category") or ILLEGAL)
        return Verdict(
            blocked=True,
            # A block can stop the rails before masking has reported, so mask here as well.
            text=scrub(carried) if stage == "input" else message,
            rail=blocking.rail,
            reason=blocking.reason,
            score=blocking.score,
            message=message,
        )

    async def _record(
        self, stage: Stage, text: str, verdict: Verdict, results: list[RailResult], user: UserKey
    ) -> None:
        events: list[SafetyEvent] = []
        for r in results:
            action: Action
            if r.decision == "transform":
                action = "masked"
            elif r.decision == "block":
                action = "blocked"
            elif "error" in r.metadata:
                action = "error"
            else:
                continue
            events.append(
                make_event(
                    user=user,
                    stage=stage,
                    rail=r.rail,
                    action=action,
                    reason=r.reason or r.rail,
                    text=text,
                    score=r.score,
                )
            )
        for event in events:
            await self._emit(event)

    async def _engine_failure(self, stage: Stage, text: str, user: UserKey, exc: Exception) -> Verdict:
        reason = f"guard engine failed: {type(exc).__name__}"
        masked = scrub(text)
        if self.config.failure("nemo") == "allow":
            await self._emit(
                make_event(user=user, stage=stage, rail="nemo", action="error", reason=reason, text=text, score=0.0)
            )
            return Verdict(blocked=False, text=masked, rail="nemo", reason=reason)
        await self._emit(
            make_event(user=user, stage=stage, rail="nemo", action="blocked", reason=reason, text=text, score=1.0)
        )
        message = self.config.messages.error
        return Verdict(
            blocked=True,
            text=masked if stage == "input" else message,
            rail="nemo",
            reason=reason,
            score=1.0,
            message=message,
        )

    async def _emit(self, event: SafetyEvent) -> None:
        """Count always; store unless the same activation was stored moments ago (streamed replies)."""
        count(event)
        key = (
            event.user.platform,
            event.user.workspace_id,
            event.user.user_id,
            event.stage,
            event.rail,
            event.action,
            event.reason,
        )
        now = time.monotonic()
        seen = self._recent.get(key)
        self._recent[key] = now
        self._recent.move_to_end(key)
        while len(self._recent) > 1024:
            self._recent.popitem(last=False)
        if self._events is None or (event.action == "masked" and seen is not None and now - seen < DEDUPE_S):
            return
        try:
            await self._events(event)
        except Exception as exc:
            log.error("could not store guard event for rail %s: %s", event.rail, type(exc).__name__, exc_info=exc)


def _error_result(rail: str, cause: str) -> RailResult:
    """A rail that could not decide, passed through (the Guard records it as an 'error' event)."""
    return RailResult(
        rail=rail,
        decision="allow",
        reason=f"{rail} failed: {cause}",
        score=0.0,
        failed=False,
        metadata={"rail": rail, "error": cause},
    )


def _result(outcome: RailOutcome) -> RailResult:
    metadata = dict(outcome.metadata)
    return RailResult(
        rail=str(metadata.get("rail", "unknown")),
        decision=outcome.decision.value,
        reason=outcome.reason,
        score=float(metadata.get("score", 1.0 if outcome.is_blocked else 0.0)),
        failed=bool(outcome.failed),
        metadata=metadata,
        transformed=next(iter(outcome.transform_text.values()), None),
    )
