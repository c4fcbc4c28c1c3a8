"""Jailbreak and prompt-injection patterns, in the message and in attachment text.

NeMo's own jailbreak heuristics need a GPT-2 perplexity model that cannot be downloaded here, so this
rail is a set of weighted patterns over normalised text (NFKC, zero-width characters removed, spaces
collapsed): instructions to drop the rules, role-play overrides (DAN, "developer mode"), fake system
or chat-template messages, requests for the hidden prompt, and notes addressed to an AI inside a
document. Weights combine as independent evidence: 1 - prod(1 - w).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

_ZERO_WIDTH = re.compile("[\u200b-\u200f\u2060\ufeff\u00ad]")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, kw_only=True, slots=True)
class Pattern:
    name: str
    regex: re.Pattern[str]
    weight: float


@dataclass(frozen=True, kw_only=True, slots=True)
class JailbreakFinding:
    """The combined score and the names of the patterns that matched."""

    score: float
    matched: tuple[str, ...]
    where: str = "message"
    """'message' or 'attachment N' (1-based)."""


def _p(name: str, regex: str, weight: float, *, case: bool = False) -> Pattern:
    flags = re.MULTILINE if case else re.IGNORECASE | re.MULTILINE
    return Pattern(name=name, regex=re.compile(regex, flags), weight=weight)


_RULES = (
    r"(?:instructions?|rules|guidelines|prompts?|directives?|directions|polic(?:y|ies)|programming"
    r"|constraints|restrictions|guardrails|training|filters?|ethics|principles)"
)
_DROP = r"(?:ignore|disregard|forget|override|bypass|skip|drop|abandon|discard|neglect|set aside)"
_QUALIFIER = r"(?:previous|prior|above|earlier|preceding|original|initial|system|your|safety|ethical|content|old)"
_LIMITS = (
    r"(?:restrictions|filters?|censorship|limits|limitations|rules|guidelines|ethic(?:s|al guidelines)"
    r"|moral(?:s|ity)|content polic(?:y|ies)|safety (?:filters?|guidelines|rules))"
)
_H = r"[^\S\n]"
"""Whitespace within a line, for line-anchored patterns: runs that could cross newlines took cubic time on a
message of blank lines (2,000 newlines: 155 s of one core, holding the GIL)."""
_AI = r"(?:AI|LLM|language model|assistant|chatbot|GPT|ChatGPT|Claude|Parley|bot|model)"

PATTERNS: tuple[Pattern, ...] = (
    _p(
        "ignore_instructions",
        rf"\b{_DROP}\b(?:\s+\w+){{0,3}}?\s+(?:all\s+)?(?:of\s+)?(?:the\s+|my\s+)?(?:{_QUALIFIER}\s+){{1,3}}{_RULES}\b",
        0.9,
    ),
    _p(
        "ignore_everything",
        r"\b(?:forget|ignore|disregard)\s+(?:about\s+)?(?:everything|all|anything)\s+"
        r"(?:you(?:'ve| have)? (?:been|were) told"
        r"|(?:written |said )?above|before this|I said before|previously said|that came before)",
        0.8,
    ),
    _p(
        "new_instructions",
        r"\b(?:new|updated|real|true|actual)\s+(?:system\s+)?instructions\s*(?::|follow\b|are\b)",
        0.5,
    ),
    _p(
        "no_restrictions",
        rf"\b(?:without|no|free (?:of|from)|with no|ignoring)\s+(?:any\s+|all\s+|your\s+)?{_LIMITS}\b",
        0.4,
    ),
    _p("dan", r"\b(?:DAN|STAN|BetterDAN|AntiGPT|DevMode)\b", 0.5, case=True),
    _p("do_anything_now", r"\bdo anything now\b", 0.7),
    _p("jailbreak_word", r"\bjail-?break(?:ed|ing)?\b|\bjail-?broken\b", 0.3),
    _p("developer_mode", r"\b(?:developer|god|sudo|unrestricted|evil|unfiltered|uncensored|opposite)\s+mode\b", 0.3),
    _p(
        "roleplay_override",
        r"\b(?:you are now|you're now|act as|acting as|pretend (?:to be|you are|you're)|role-?play as"
        r"|from now on,? you)"
        r"[^.\n]{0,80}?\b(?:no|without|never|doesn't|does not|don't|free from|not bound by|ignores?)\b[^.\n]{0,30}?"
        r"\b(?:rules|restrictions|filters?|limits|ethics|morals|guidelines|refuses?|policies|censorship)",
        0.8,
    ),
    _p(
        "unrestricted_persona",
        r"\b(?:you are|you're|act as|pretend to be|role-?play as|become)\s+(?:now\s+)?(?:an?\s+)?"
        r"(?:unrestricted|unfiltered|uncensored|amoral|evil|jailbroken|unaligned)\s+"
        rf"(?:{_AI}|version|character|persona)",
        0.8,
    ),
    _p(
        "never_refuse",
        r"\b(?:never|don't|do not|must not|cannot|can't|won't) (?:ever )?"
        r"(?:refuse|decline|say (?:no|you can't)|add (?:any )?warnings?)\b",
        0.4,
    ),
    _p("stay_in_character", r"\b(?:stay|remain|keep) in character\b|\bbreak(?:ing)? character\b", 0.3),
    _p(
        "reveal_prompt",
        r"\b(?:reveal|print|show|repeat|output|leak|tell me|display|dump|give me|what (?:is|are))\b(?:\s+\w+){0,3}?\s+"
        r"(?:(?:your|the) system prompt|(?:your|the) (?:initial|hidden|secret|original) (?:prompt|instructions)"
        r"|pre-?prompt|instructions you were given|your (?:system )?instructions)",
        0.7,
    ),
    _p(
        "chat_template",
        r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id)\|>|<<\s*/?SYS\s*>>|\[/?INST\]",
        0.4,
    ),
    _p("chat_template_system", r"<\|im_start\|>\s*system|<\|system\|>|<<SYS>>|<\|start_header_id\|>\s*system", 0.9),
    _p(
        "fake_system_message",
        rf"^{_H}*(?:#+{_H}*|\[|\(|\*\*|<)?{_H}*(?:system|admin|administrator|developer|operator|openai|anthropic)"
        rf"(?:{_H}+(?:message|prompt|override|notice|instruction|update))?{_H}*(?:\]|\)|\*\*|>)?{_H}*:{_H}*"
        r"(?=.*\b(?:you|your|assistant|ignore|must|now|rules|instructions|respond|answer|mode|allowed|restrictions)\b)",
        0.75,
    ),
    _p("fake_role_json", r"[\"']role[\"']\s*:\s*[\"']system[\"']", 0.75),
    _p(
        "override_safety",
        r"\b(?:disable|turn off|deactivate|remove|bypass|circumvent|override|ignore)\s+(?:all\s+)?(?:of\s+)?your\s+"
        r"(?:safety|content|moderation|ethical)?\s*"
        r"(?:filters?|guardrails|safeguards|safety|moderation|censorship|restrictions|alignment)\b",
        0.7,
    ),
    _p(
        "addressed_to_ai",
        r"\b(?:if you are|if you're|attention|note to|dear|hey|message for|instructions for|to the)\s+"
        rf"(?:an?\s+|the\s+|any\s+)?{_AI}s?\b"
        r"[^\n]{0,100}?\b(?:ignore|instead|must|do not|don't|tell|say|send|reply|respond|output|forward"
        r"|include|recommend)\b",
        0.7,
    ),
    _p(
        "hypothetical_no_rules",
        r"\b(?:hypothetical(?:ly)?|fictional|imaginary)\b[^.\n]{0,60}\b(?:no|without)\s+"
        r"(?:rules|restrictions|laws|ethics|filters)\b",
        0.35,
    ),
)

THRESHOLD = 0.5


def normalise(text: str) -> str:
    """NFKC, no zero-width characters, single spaces (newlines kept for line-anchored patterns)."""
    text = unicodedata.normalize("NFKC", text)
    text = _ZERO_WIDTH.sub("", text)
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.splitlines())


def scan(text: str) -> JailbreakFinding:
    """Score one text; 0 when nothing matched."""
    clean = normalise(text)
    matched = [p for p in PATTERNS if p.regex.search(clean)]
    remaining = 1.0
    for p in matched:
        remaining *= 1.0 - p.weight
    return JailbreakFinding(score=round(1.0 - remaining, 4), matched=tuple(p.name for p in matched))


def scan_all(text: str, attachments: Sequence[str]) -> JailbreakFinding:
    """The highest-scoring of the message and each attachment's text."""
    best = scan(text)
    for i, attachment in enumerate(attachments, start=1):
        finding = scan(attachment)
        if finding.score > best.score:
            best = JailbreakFinding(score=finding.score, matched=finding.matched, where=f"attachment {i}")
    return best
