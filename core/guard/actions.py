"""The custom NeMo actions behind Parley's rails, each returning a NeMo `RailOutcome`.

The heavy work (one MiniLM forward pass per text, shared with memory, cached and batched across
concurrent turns by `core.encoder.SharedEncoder`) runs off the event loop. Every action goes through
`_run`, which applies the failure policy: an action that raises becomes a block (fail closed) or,
where the operator chose 'allow', a pass that the Guard logs as an 'error' event.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
from nemoguardrails.actions.rail_outcome import RailOutcome, TransformTarget

from core.encoder import WIDTH
from core.guard.bias import bias_score
from core.guard.categories import CategoryModel
from core.guard.harm import HarmClassifier
from core.guard.jailbreak import scan_all
from core.guard.masking import mask_sensitive, scrub
from core.guard.policy import PolicyStore, WorkspacePolicy, best_match
from core.guard.reply_rule import ReplyRule
from core.guard.self_check import NoVerdict
from core.guard.sentences import message_score, split_sentences, whole_counts
from core.guard.settings import GuardConfig

if TYPE_CHECKING:
    from core.encoder import SharedEncoder, TextVectors
    from core.guard.head import InputHead

log = logging.getLogger(__name__)

CACHE_SIZE = 1024
CHUNK_CHARS = 400
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n{2,}")


class RailActions:
    """The rails' logic, bound to one model, classifier and policy store."""

    def __init__(
        self,
        *,
        config: GuardConfig,
        encoder: SharedEncoder,
        classifier: HarmClassifier,
        head: InputHead | None,
        categories: CategoryModel,
        executor: ThreadPoolExecutor,
    ) -> None:
        self.config = config
        self._encoder = encoder
        self._classifier = classifier
        self._head = head
        """The input rail's scorer where configured; None: the SVM scores messages too."""
        self._categories = categories
        self._executor = executor
        self.policies = PolicyStore(config.policy_dir, lambda texts: encoder.encode_now(texts).sentence)
        shipped = (head.threshold, head.grey) if head is not None else (classifier.threshold, classifier.grey)
        self.harm_threshold = config.harm_threshold if config.harm_threshold is not None else shipped[0]
        self.grey_zone = config.grey_zone if config.grey_zone is not None else shipped[1]
        self.sentence_gate = classifier.sentence_gate if head is None else self.grey_zone[0]
        """Where a message's whole text starts to count (`message_score`); the head keeps its grey zone's edge."""
        self.output_threshold = (
            config.output_harm_threshold if config.output_harm_threshold is not None else classifier.output_threshold
        )
        self.output_grey_zone = (
            config.output_grey_zone if config.output_grey_zone is not None else classifier.output_grey
        )
        self.reply_rule = ReplyRule.load(config.reply_rule) if config.reply_rule is not None and head is None else None
        """The request-aware reply cut; fitted on the SVM's request scores, so not applied to the head's."""

    def actions(self) -> dict[str, Callable[..., Awaitable[RailOutcome]]]:
        """Name -> action, as the Colang flows call them."""
        return {
            "parley_mask": self.parley_mask,
            "parley_jailbreak": self.parley_jailbreak,
            "parley_policy": self.parley_policy,
            "parley_harm_input": self.parley_harm_input,
            "parley_leak": self.parley_leak,
            "parley_harm_output": self.parley_harm_output,
            "parley_bias": self.parley_bias,
        }

    # --- input rails -----------------------------------------------------------------------------

    async def parley_mask(self, text: str | None = None) -> RailOutcome:
        async def run() -> RailOutcome:
            masked = mask_sensitive(text or "")
            if not masked.changed:
                return RailOutcome.allow(metadata={"rail": "mask"})
            return RailOutcome.transform(
                [(TransformTarget.USER_MESSAGE, masked.text)],
                reason="masked " + ", ".join(masked.kinds),
                metadata={"rail": "mask", "kinds": list(masked.kinds)},
            )

        return await self._run("mask", run)

    async def parley_jailbreak(self, text: str | None = None, context: dict[str, Any] | None = None) -> RailOutcome:
        async def run() -> RailOutcome:
            attachments: Sequence[str] = (context or {}).get("attachments") or ()
            finding = scan_all(text or "", attachments)
            metadata = {"rail": "jailbreak", "score": finding.score}
            if finding.score >= self.config.jailbreak_threshold:
                reason = f"{', '.join(finding.matched)} in {finding.where}"
                return RailOutcome.block(reason=reason, metadata=metadata)
            return RailOutcome.allow(metadata=metadata)

        return await self._run("jailbreak", run)

    async def parley_policy(self, text: str | None = None, context: dict[str, Any] | None = None) -> RailOutcome:
        async def run() -> RailOutcome:
            policy = await self._policy(context)
            if not policy.blocked or not text or not text.strip():
                return RailOutcome.allow(metadata={"rail": "policy"})
            vector = (await self._encode_one(text)).sentence
            blocked = best_match(vector, policy.blocked, policy.threshold)
            if blocked:
                return RailOutcome.block(
                    reason=f"blocked topic '{blocked.name}'",
                    metadata={"rail": "policy", "score": blocked.similarity, "message": blocked.message},
                )
            return RailOutcome.allow(metadata={"rail": "policy"})

        return await self._run("policy", run)

    async def parley_harm_input(self, text: str | None = None, context: dict[str, Any] | None = None) -> RailOutcome:
        async def run() -> RailOutcome:
            if not text or not text.strip():
                return RailOutcome.allow(metadata={"rail": "harm", "score": 0.0})
            # Scored as the model will see it: a pasted key or address is masked first, so it is not
            # what makes a request read as an attack ("my key is sk-..." scored 0.93 unmasked, 0.45 masked).
            # Each sentence is scored too, so ordinary text around a harmful ask cannot hide it.
            masked = scrub(text)
            pieces = split_sentences(masked)
            texts = [masked, *pieces] if len(pieces) > 1 else [masked]
            vectors = await self._encoder.vectors(texts)
            # The whole of a message of several sentences is scored only where its score can count (a
            # sentence is suspect): a message's ordinary sentences spare a classifier pass over the whole.
            sentences = await self._input_scores(vectors[1:])
            whole = (await self._input_scores(vectors[:1]))[0] if whole_counts(sentences, self.sentence_gate) else None
            score, piece = message_score(whole, sentences, self.sentence_gate)
            vector = vectors[piece + 1].sentence
            policy = await self._policy(context)
            threshold = next(
                t
                for t in ((context or {}).get("harm_threshold"), policy.harm_threshold, self.harm_threshold)
                if t is not None
            )
            metadata: dict[str, Any] = {"rail": "harm", "score": round(score, 4), "threshold": threshold}
            if score < min(threshold, self.grey_zone[0]):
                return RailOutcome.allow(metadata=metadata)
            metadata["category"] = self._categories.predict(vector)
            if score < threshold:
                return RailOutcome.allow(metadata=metadata)
            allowed = best_match(vector, policy.allowed, policy.threshold) if policy.allowed else None
            if allowed:
                return RailOutcome.allow(
                    reason=f"allowed topic '{allowed.name}'", metadata={**metadata, "allowed": allowed.name}
                )
            return RailOutcome.block(reason=f"harmful request ({metadata['category']})", metadata=metadata)

        return await self._run("harm", run)

    async def _policy(self, context: dict[str, Any] | None) -> WorkspacePolicy:
        workspace = str((context or {}).get("workspace_id") or "")
        recent = self.policies.recent(workspace)
        if recent is not None:
            return recent
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.policies.for_workspace, workspace)

    # --- output rails ----------------------------------------------------------------------------

    async def parley_leak(self, text: str | None = None) -> RailOutcome:
        async def run() -> RailOutcome:
            masked = mask_sensitive(text or "")
            if not masked.changed:
                return RailOutcome.allow(metadata={"rail": "leak"})
            reason = "sensitive data in reply: " + ", ".join(masked.kinds)
            metadata = {"rail": "leak", "score": 1.0, "kinds": list(masked.kinds)}
            if self.config.leak_action == "block":
                return RailOutcome.block(reason=reason, metadata=metadata)
            return RailOutcome.transform([(TransformTarget.BOT_MESSAGE, masked.text)], reason=reason, metadata=metadata)

        return await self._run("leak", run)

    async def parley_harm_output(self, text: str | None = None, context: dict[str, Any] | None = None) -> RailOutcome:
        async def run() -> RailOutcome:
            chunks = reply_chunks(text or "")
            if not chunks:
                return RailOutcome.allow(metadata={"rail": "harm_output", "score": 0.0})
            vectors = await self._encoder.vectors(chunks)
            scores = self._classifier.score(np.stack([v.layers for v in vectors]))
            worst = int(np.argmax(scores))
            score = round(float(scores[worst]), 4)
            cut = await self._reply_cut((context or {}).get("request"), vectors)
            metadata = {"rail": "harm_output", "score": score, "threshold": cut}
            if score >= cut:
                return RailOutcome.block(reason="harmful content in reply", metadata=metadata)
            return RailOutcome.allow(metadata=metadata)

        return await self._run("harm_output", run)

    async def parley_bias(self, text: str | None = None) -> RailOutcome:
        async def run() -> RailOutcome:
            finding = bias_score(text or "")
            metadata = {"rail": "bias", "score": finding.score}
            if finding.score >= self.config.bias_threshold:
                return RailOutcome.block(reason="generalisation about a protected group", metadata=metadata)
            return RailOutcome.allow(metadata=metadata)

        return await self._run("bias", run)

    # --- NeMo self-check (PARLEY_GUARD_LLM=on) ---------------------------------------------------

    def llm_actions(self) -> dict[str, Callable[..., Awaitable[RailOutcome]]]:
        from nemoguardrails.library.self_check.input_check.actions import self_check_input
        from nemoguardrails.library.self_check.output_check.actions import self_check_output

        return {
            "parley_self_check_input": self._self_check(
                "self_check_input", "the model's self-check flagged the message", self_check_input
            ),
            "parley_self_check_output": self._self_check(
                "self_check_output", "the model's self-check flagged the reply", self_check_output
            ),
        }

    def _self_check(
        self, rail: str, reason: str, check: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[RailOutcome]]:
        """NeMo's self-check `check` as an action under Parley's timeout and failure policy, its outcome
        labelled as `rail`. NeMo fills the parameters by name, so the signature is NeMo's own."""

        async def action(
            llms: dict[str, Any],
            llm_task_manager: Any,
            context: dict[str, Any] | None = None,
            events: list[dict[str, Any]] | None = None,
            llm: Any = None,
            config: Any = None,
        ) -> RailOutcome:
            async def run() -> RailOutcome:
                try:
                    outcome = await asyncio.wait_for(
                        check(
                            llms=llms,
                            llm_task_manager=llm_task_manager,
                            context=context,
                            events=events,
                            llm=llm,
                            config=config,
                        ),
                        self.config.llm_timeout_s + 1,
                    )
                except NoVerdict as exc:
                    log.warning("guard rail %s: %s; the offline verdict stands", rail, exc)
                    return RailOutcome.allow(
                        reason=f"{rail}: no verdict", metadata={"rail": rail, "error": "no verdict"}
                    )
                return _labelled(outcome, rail, reason)

            return await self._run(rail, run)

        return action

    # --- helpers ---------------------------------------------------------------------------------

    async def _run(self, rail: str, body: Callable[[], Awaitable[RailOutcome]]) -> RailOutcome:
        """Run one rail's body under the failure policy."""
        try:
            return await body()
        except Exception as exc:
            cause = _root_cause(exc)
            log.warning("guard rail %s failed: %s", rail, cause, exc_info=exc)
            reason = f"{rail} rail failed: {cause}"
            metadata = {"rail": rail, "error": cause}
            if self.config.failure(rail) == "allow":
                return RailOutcome.allow(reason=reason, metadata=metadata)
            return RailOutcome.failure(reason=reason, metadata=metadata)

    async def _reply_cut(self, request: dict[str, Any] | None, chunks: Sequence[TextVectors]) -> float:
        """The reply cut for this turn: the shipped one, or the request-aware rule's where the request's
        harm score is known (the request's vectors are usually cached from its input check)."""
        if self.reply_rule is None or not request or request.get("score") is None or not request.get("text"):
            return self.output_threshold
        asked = (await self._encode_one(request["text"])).sentence
        relevance = max(float(c.sentence @ asked) for c in chunks)
        return self.reply_rule.cut(self.output_threshold, float(request["score"]), relevance)

    async def _encode_one(self, text: str) -> TextVectors:
        (vectors,) = await self._encoder.vectors([text])
        return vectors

    async def _input_scores(self, pieces: Sequence[TextVectors]) -> list[float]:
        """The harm scores of a message's pieces: the fine-tuned head over each one's layer-1 states
        (five layers of work, off the event loop), or, where no head is configured, the SVM's in one call
        (about 0.4 ms a piece: `HarmClassifier.decision` takes a few rows one by one)."""
        if not pieces:
            return []
        if self._head is None:
            return [float(s) for s in self._classifier.score(np.stack([v.layers for v in pieces]))]
        loop = asyncio.get_running_loop()
        head = self._head
        return [
            await loop.run_in_executor(self._executor, head.score, v.tokens, v.layers[:WIDTH]) for v in pieces
        ]


def _root_cause(exc: BaseException) -> str:
    """The innermost exception's type name (NeMo wraps model errors in LLMCallException)."""
    while exc.__cause__ is not None and not isinstance(exc.__cause__, asyncio.CancelledError):
        exc = exc.__cause__
    return type(exc).__name__


def _labelled(outcome: RailOutcome, rail: str, reason: str) -> RailOutcome:
    """NeMo's own outcome with Parley's rail name and a reason attached."""
    if outcome.is_blocked:
        return RailOutcome.block(reason=outcome.reason or reason, metadata={"rail": rail, "score": 1.0})
    return RailOutcome.allow(metadata={"rail": rail, "score": 0.0})


def reply_chunks(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """A reply cut at sentence ends into pieces of about `size` characters, for the output harm check."""
    chunks: list[str] = []
    current = ""
    for sentence in (s.strip() for s in _SENTENCE_END.split(text)):
        if not sentence:
            continue
        if current and len(current) + len(sentence) + 1 > size:
            chunks.append(current)
            current = ""
        current = f"{current} {sentence}".strip()
        while len(current) > size:
            chunks.append(current[:size])
            current = current[size:]
    if current:
        chunks.append(current)
    return chunks
