"""What a Guard is configured with: thresholds, failure policy, messages. No environment reading here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.guard.engine import EngineChoice
from core.guard.harm import DEFAULT_WEIGHTS
from core.guard.llm import Complete
from core.guard.reply_rule import DEFAULT_REPLY_RULE

OnError = Literal["block", "allow"]
LeakAction = Literal["mask", "block"]
LlmMode = Literal["auto", "on"]
"""With a model: 'auto' asks it only about grey-zone scores, 'on' runs its self-check on every message."""

INPUT_RAILS: tuple[str, ...] = ("mask", "jailbreak", "policy", "harm", "self_check_input")
OUTPUT_RAILS: tuple[str, ...] = ("leak", "harm_output", "bias", "self_check_output")


@dataclass(frozen=True, kw_only=True, slots=True)
class Messages:
    """The short, kind words a person sees instead of an answer."""

    harm: str = (
        "Sorry, I can't help with that: it reads as a request for operational help with {category}. "
        "If I've misread you (you're defending a system, writing fiction, studying history, or it's "
        "ordinary work jargon), say what it's for and ask again in your own words."
    )
    """`{category}` is the kind of harm the request looked like (core/guard/categories.py)."""
    jailbreak: str = (
        "I can't follow instructions that try to change how I work, but I'm glad to help with the question itself."
    )
    policy: str = "That topic is off-limits in this workspace. I'm happy to help with something else."
    output: str = (
        "Sorry, I wrote an answer but it didn't pass my safety checks, so I won't show it. "
        "Could you rephrase or ask something else?"
    )
    leak: str = "Sorry, my answer contained sensitive data, so I won't show it. Could you ask in another way?"
    error: str = "Sorry, I couldn't check that safely just now, so I won't answer it. Please try again in a moment."


@dataclass(frozen=True, kw_only=True, slots=True)
class GuardConfig:
    """Everything a Guard needs, passed in explicitly by the composition root."""

    policy_dir: Path | None = None
    """Where workspace policy files live (usually PARLEY_KNOWLEDGE_DIR); None: no workspace topics."""
    harm_weights: Path = DEFAULT_WEIGHTS
    """The SVM over frozen MiniLM features: the reply rail's classifier (and the input rail's without a head)."""
    head_weights: Path | None = None
    """The fine-tuned input head (`DEFAULT_HEAD`) to score messages with; None (the default): the SVM
    scores them. Opt-in: on validation it refuses fewer safe prompts than the SVM at about the same
    harmful recall, for twice the CPU per message (docs/guardrails.md, rounds 6 and 7)."""
    harm_threshold: float | None = None
    """Input cut on the message score; None: the threshold chosen on dev and shipped with the weights.
    A workspace's policy.yml can set its own (`harm_threshold:`)."""
    grey_zone: tuple[float, float] | None = None
    """Input scores in [low, high) go to the model when llm_mode is 'auto'; None: the shipped zone."""
    output_harm_threshold: float | None = None
    """Cut on a reply's worst chunk; None: the cut shipped with the weights, chosen on model replies."""
    output_grey_zone: tuple[float, float] | None = None
    """Reply chunks scoring in [low, high) go to the model when llm_mode is 'auto'; None: the shipped zone."""
    reply_rule: Path | None = DEFAULT_REPLY_RULE
    """The request-aware reply cut (core/guard/reply_rule.py), fitted on dev replies with the shipped SVM's
    request scores; None: a reply's cut ignores its request. Not applied when the head scores messages."""
    jailbreak_threshold: float = 0.5
    bias_threshold: float = 0.6
    leak_action: LeakAction = "mask"
    on_error: Mapping[str, OnError] = field(default_factory=dict)
    """Per rail: 'block' (the default: fail closed) or 'allow'. Key 'nemo' covers the engine itself."""
    llm: Complete | None = None
    """With a function here NeMo's self-check rails run through it (PARLEY_GUARD_LLM auto or on)."""
    llm_mode: LlmMode = "auto"
    llm_timeout_s: float = 10.0
    engine: EngineChoice = "auto"
    """'auto': plain rails skip the Colang runtime (core/guard/engine.py); 'nemo': always LLMRails."""
    messages: Messages = field(default_factory=Messages)

    def failure(self, rail: str) -> OnError:
        return self.on_error.get(rail, "block")
