"""Secrets and personal data replaced by tags before text is stored, logged or sent to a model.

Memory, logging and the input/output rails all call `mask_sensitive` (or `scrub`), so one set of
detectors decides what counts as sensitive. Detectors return spans; overlapping spans are resolved
once (the earliest, then the longest wins) and replaced right to left, so a tag is never re-matched.
Card numbers must pass the Luhn check and IBANs their mod-97 checksum, which keeps ordinary
numbers (years, prices, order ids) readable.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from stdnum import iban as stdnum_iban
from stdnum import luhn

SECRET = "SECRET"
EMAIL = "EMAIL"
PHONE = "PHONE"
CARD = "CARD"
IBAN = "IBAN"
KINDS: tuple[str, ...] = (SECRET, EMAIL, PHONE, CARD, IBAN)


@dataclass(frozen=True, kw_only=True, slots=True)
class Masked:
    """A text with its sensitive parts replaced by tags such as `[EMAIL]`."""

    text: str
    kinds: tuple[str, ...]
    """The kinds that were masked, each once, in order of first appearance."""

    @property
    def changed(self) -> bool:
        return bool(self.kinds)


def mask_sensitive(text: str) -> Masked:
    """Replace every detected secret or piece of personal data in `text` by its tag."""
    spans = _resolve(s for detect in _DETECTORS for s in detect(text))
    if not spans:
        return Masked(text=text, kinds=())
    out: list[str] = []
    pos = 0
    kinds: list[str] = []
    for span in spans:
        out.append(text[pos : span.start])
        out.append(f"[{span.kind}]")
        pos = span.end
        if span.kind not in kinds:
            kinds.append(span.kind)
    out.append(text[pos:])
    return Masked(text="".join(out), kinds=tuple(kinds))


def scrub(text: str) -> str:
    """`mask_sensitive(text).text`: the shorthand for logs and stored memories."""
    return mask_sensitive(text).text


@dataclass(frozen=True, kw_only=True, slots=True)
class _Span:
    start: int
    end: int
    kind: str


def _resolve(spans: Iterator[_Span]) -> list[_Span]:
    """Non-overlapping spans, left to right; at one start the longest wins."""
    chosen: list[_Span] = []
    end = -1
    for span in sorted(spans, key=lambda s: (s.start, -(s.end - s.start))):
        if span.start >= end:
            chosen.append(span)
            end = span.end
        elif span.end > end and chosen:
            last = chosen[-1]
            chosen[-1] = _Span(start=last.start, end=span.end, kind=last.kind)
            end = span.end
    return chosen


# --- secrets -------------------------------------------------------------------------------------

_SECRET_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        r"(?<![A-Za-z0-9_-])sk-(?:[A-Za-z0-9]+-)*[A-Za-z0-9_-]{16,}",  # OpenAI, Anthropic sk-ant-...
        r"(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9-]{8,}",  # Slack tokens
        r"(?<![A-Za-z0-9])xapp-[A-Za-z0-9-]{8,}",  # Slack app-level tokens
        r"(?<![A-Za-z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}(?![A-Za-z0-9])",  # AWS key ids
        r"(?<![A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{30,}",  # GitHub tokens
        r"(?<![A-Za-z0-9])github_pat_[A-Za-z0-9_]{20,}",
        r"(?<![A-Za-z0-9])glpat-[A-Za-z0-9_-]{20,}",  # GitLab
        r"(?<![A-Za-z0-9])AIza[0-9A-Za-z_-]{35}",  # Google API keys
        r"(?<![A-Za-z0-9])[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}",  # Stripe
        r"(?<![A-Za-z0-9])hf_[A-Za-z0-9]{30,}",  # Hugging Face
        r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JWT
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
    )
)

# Value after a credential-looking keyword: the keyword stays readable, the value is masked.
_KEYWORD = (
    r"(?:pass(?:word|wd|phrase)?|pwd|secret|client[_ -]?secret|api[_ -]?key|apikey|access[_ -]?key"
    r"|secret[_ -]?key|private[_ -]?key|(?:auth|access|refresh|bearer|api|bot|session)?[_ -]?token"
    r"|credentials?|aws_secret_access_key|passcode|pin)"
)
_ASSIGNED = re.compile(
    rf"(?i)(?<![A-Za-z0-9]){_KEYWORD}[\"']?\s*(?::|=|=>|:=)\s*"
    r"(?:\"(?P<dq>[^\"\n]+)\"|'(?P<sq>[^'\n]+)'|(?P<bare>[^\s,;\"'<>]+))"
)
# "my password is hunter2": only when the value looks like one (holds a digit or a symbol).
_STATED = re.compile(
    rf"(?i)(?<![A-Za-z0-9]){_KEYWORD}\s+(?:is|was|=)\s+[\"'`]?"
    r"(?P<value>(?=[^\s\"'`]*[0-9!@#$%^&*_+=~?])[^\s\"'`,;]{4,}?)[\"'`]?(?=[\s,;.!?]*(?:\s|$))"
)
_TAG = re.compile(r"\[[A-Z]+\]")
_BEARER = re.compile(r"(?i)(?<![A-Za-z0-9])(?:bearer|basic|token)\s+(?P<value>[A-Za-z0-9._~+/=-]{16,})")
_URL_CREDENTIALS = re.compile(r"[a-z][a-z0-9+.-]*://[^\s:/@]+:(?P<value>[^\s@/]+)@")
# Long random-looking strings (mixed case and digits, no spaces): most leaked tokens look like this.
_HIGH_ENTROPY = re.compile(r"(?<![A-Za-z0-9_+=-])[A-Za-z0-9_+=-]{32,}(?![A-Za-z0-9_+=-])")


def _secrets(text: str) -> Iterator[_Span]:
    for pattern in _SECRET_PATTERNS:
        for m in pattern.finditer(text):
            yield _Span(start=m.start(), end=m.end(), kind=SECRET)
    for m in _ASSIGNED.finditer(text):
        group = next(g for g in ("dq", "sq", "bare") if m.group(g) is not None)
        if not _TAG.fullmatch(m.group(group)):
            yield _Span(start=m.start(group), end=m.end(group), kind=SECRET)
    for pattern in (_STATED, _BEARER, _URL_CREDENTIALS):
        for m in pattern.finditer(text):
            yield _Span(start=m.start("value"), end=m.end("value"), kind=SECRET)
    for m in _HIGH_ENTROPY.finditer(text):
        token = m.group()
        if any(c.isupper() for c in token) and any(c.islower() for c in token) and any(c.isdigit() for c in token):
            yield _Span(start=m.start(), end=m.end(), kind=SECRET)


# --- personal data -------------------------------------------------------------------------------

_EMAIL_RE = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}"
)


def _emails(text: str) -> Iterator[_Span]:
    for m in _EMAIL_RE.finditer(text):
        yield _Span(start=m.start(), end=m.end(), kind=EMAIL)


# International numbers (+CC ...), North-American (415) 555-0123 / 415-555-0123 / 415.555.0123,
# and trunk-prefixed national numbers written in groups (020 7946 0958, 0151-123-4567).
_PHONE_RES: tuple[re.Pattern[str], ...] = (
    re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,6}(?![\w])"),
    re.compile(r"(?<![\w(])(?:\(\d{3}\)\s?|\d{3}[.-])\d{3}[.-]\d{4}(?![\w])"),
    re.compile(r"(?<![\w+.,-])0\d{2,4}[ /-]\d{3,4}[ -]\d{3,4}(?![\w.,-]?\d)"),
)


def _phones(text: str) -> Iterator[_Span]:
    for pattern in _PHONE_RES:
        for m in pattern.finditer(text):
            number = m.group()
            while sum(c.isdigit() for c in number) > 15 and _LAST_GROUP.search(number):
                number = _LAST_GROUP.sub("", number)
            if 8 <= sum(c.isdigit() for c in number) <= 15:
                yield _Span(start=m.start(), end=m.start() + len(number), kind=PHONE)


_LAST_GROUP = re.compile(r"[ .-]?\(?\d+\)?$")


# Runs of digit groups joined by single spaces or dashes. A card is a window of whole groups written
# the way cards are (13-19 digits in one block, 4-4-4-x groups, or Amex/Diners 4-6-5 / 4-6-4) with
# one separator throughout, with an issuer's prefix, that passes Luhn.
_DIGIT_RUN = re.compile(r"(?<![\w.,€$£¥])\d+(?:[ -]\d+)*(?![\w])")
_GROUP = re.compile(r"\d+")


def _cards(text: str) -> Iterator[_Span]:
    for run in _DIGIT_RUN.finditer(text):
        groups = [(run.start() + g.start(), run.start() + g.end(), g.group()) for g in _GROUP.finditer(run.group())]
        i = 0
        while i < len(groups):
            last = next((j for j in range(len(groups) - 1, i - 1, -1) if _is_card(text, groups[i : j + 1])), None)
            if last is None:
                i += 1
                continue
            yield _Span(start=groups[i][0], end=groups[last][1], kind=CARD)
            i = last + 1


def _is_card(text: str, groups: list[tuple[int, int, str]]) -> bool:
    digits = "".join(g[2] for g in groups)
    if not 13 <= len(digits) <= 19:
        return False
    separators = {text[a[1]] for a, _ in itertools.pairwise(groups)}
    lengths = [len(g[2]) for g in groups]
    shaped = (
        len(groups) == 1
        or (all(n == 4 for n in lengths[:-1]) and 1 <= lengths[-1] <= 4)
        or lengths in ([4, 6, 5], [4, 6, 4])
    )
    return shaped and len(separators) <= 1 and _issuer_prefix(digits) and luhn.is_valid(digits)


def _issuer_prefix(digits: str) -> bool:
    """Card numbers start 3-6 (Amex, Visa, Mastercard, Discover, ...) or 2221-2720 (Mastercard)."""
    return digits[0] in "3456" or 2221 <= int(digits[:4]) <= 2720


# Two letters, two check digits, then 11-30 letters/digits, optionally in space-separated groups.
_IBAN_RUN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,32}(?![a-z0-9])")


def _ibans(text: str) -> Iterator[_Span]:
    for m in _IBAN_RUN.finditer(text):
        candidate = m.group()
        for end in range(len(candidate), 14, -1):
            if candidate[end - 1] == " ":
                continue
            if stdnum_iban.is_valid(candidate[:end]):
                yield _Span(start=m.start(), end=m.start() + end, kind=IBAN)
                break


_DETECTORS: tuple[Callable[[str], Iterator[_Span]], ...] = (_secrets, _emails, _ibans, _cards, _phones)
