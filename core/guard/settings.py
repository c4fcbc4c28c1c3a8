"""What a Guard is configured with: thresholds, failure policy, messages. No environment reading here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.guard.engine import EngineChoice
from core.guard.harm import DEFAULT_WEIGHTS
from core.guard.llm import Complete

OnError = Literal["block", "allow"]
LeakAction = Literal["mask", "block"]

INPUT_RAILS: tuple[str, ...] = ("mask", "jailbreak", "policy", "harm", "self_check_input")
OUTPUT_RAILS: tuple[str, ...] = ("leak", "harm_output", "bias", "self_check_output")


@dataclass(frozen=True, kw_only=True, slots=True)
class Messages:
    """The short, kind words a person sees instead of an answer."""

    harm: str = "Sorry, I can't help with that. If I've misread you, try rephrasing what you need."
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
    harm_threshold: float | None = None
    """Input cut on the classifier's score; None: the calibrated threshold shipped with the weights."""
    output_harm_threshold: float = 0.9
    """Replies are longer and explain things, so the output cut is stricter than the input one."""
    jailbreak_threshold: float = 0.5
    bias_threshold: float = 0.6
    leak_action: LeakAction = "mask"
    on_error: Mapping[str, OnError] = field(default_factory=dict)
    """Per rail: 'block' (the default: fail closed) or 'allow'. Key 'nemo' covers the engine itself."""
    llm: Complete | None = None
    """With a function here the NeMo self-check rails run too (PARLEY_GUARD_LLM=on and a model)."""
    llm_timeout_s: float = 10.0
    engine: EngineChoice = "auto"
    """'auto': plain rails skip the Colang runtime (core/guard/engine.py); 'nemo': always LLMRails."""
    messages: Messages = field(default_factory=Messages)

    def failure(self, rail: str) -> OnError:
        return self.on_error.get(rail, "block")
