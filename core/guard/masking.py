"""Secrets and personal data replaced by tags before text is stored, logged or sent to a model.

Memory, logging and the input/output rails all call `mask_sensitive` (or `scrub`), so one set of
detectors decides what counts as sensitive. Detectors return spans; overlapping spans are resolved
once (the earliest, then the longest wins) and replaced right to left, so a tag is never re-matched.
Card numbers must pass the Luhn check, IBANs their mod-97 checksum and SSNs the SSA's ranges, which
keeps ordinary numbers (years, prices, order ids) readable.

Every detector is linear in the length of the text, whatever the text: logs and chat messages are
attacker input. Each pattern can start only at the left edge of a run it could match (a
lookbehind), its repetitions are possessive where nothing after them needs to give characters back,
and work beyond one regex pass looks at a bounded window (a card is at most 19 digits, a value
follows its keyword within a few dozen characters). `tests/test_guard_masking.py` checks the ratio of
the time for 1 MB and 100 KB of near-misses; `benchmarks/masking.py` measures the throughput.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import multiprocessing
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from stdnum import iban as stdnum_iban
from stdnum import luhn

SECRET = "SECRET"
EMAIL = "EMAIL"
PHONE = "PHONE"
CARD = "CARD"
IBAN = "IBAN"
SSN = "SSN"
KINDS: tuple[str, ...] = (SECRET, EMAIL, PHONE, CARD, IBAN, SSN)
OFF_LOOP_CHARS = 16_384
"""Texts longer than this are masked in a worker thread by `scrub_off_loop`: a few milliseconds."""
OFF_PROCESS_CHARS = 262_144
"""Texts longer than this are masked in a worker process: Python's regular expressions hold the GIL for a
whole scan, so in a thread the longest scan of a long text would still stop the event loop."""


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
    """Replace every detected secret or piece of personal data in `text` by its tag.

    A turn masks its message five times (the pipeline, the harm rail, recall, storing), about 65 µs each
    for a 140-character message: short texts' results are kept (they are immutable), long ones are not."""
    if len(text) <= OFF_LOOP_CHARS:
        return _mask_short(text)
    return _mask(text)


@functools.lru_cache(maxsize=256)
def _mask_short(text: str) -> Masked:
    return _mask(text)


def _mask(text: str) -> Masked:
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


async def scrub_off_loop(text: str) -> str:
    """`scrub` for a coroutine: long texts go to a worker thread, very long ones to a worker process, so
    other requests keep being served."""
    if len(text) <= OFF_LOOP_CHARS:
        return scrub(text)
    if len(text) <= OFF_PROCESS_CHARS:
        return await asyncio.to_thread(scrub, text)
    try:
        return await asyncio.get_running_loop().run_in_executor(_masking_process(), scrub, text)
    except BrokenProcessPool:  # the worker died (killed for memory): a new one next time, a thread now
        _masking_process.cache_clear()
        return await asyncio.to_thread(scrub, text)


@functools.cache
def _masking_process() -> ProcessPoolExecutor:
    """One worker process, started on first need (spawned: it imports this module alone, not the server)."""
    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))


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

# One alternation, one pass over the text: each token kind has its own literal prefix.
_SECRET_TOKENS = re.compile(
    "|".join(
        f"(?:{p})"
        for p in (
            r"(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]{16,}+",  # OpenAI, Anthropic sk-ant-...
            r"(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9-]{8,}+",  # Slack tokens
            r"(?<![A-Za-z0-9])xapp-[A-Za-z0-9-]{8,}+",  # Slack app-level tokens
            r"(?<![A-Za-z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}(?![A-Za-z0-9])",  # AWS key ids
            r"(?<![A-Za-z0-9])gh[pousr]_[A-Za-z0-9]{30,}+",  # GitHub tokens
            r"(?<![A-Za-z0-9])github_pat_[A-Za-z0-9_]{20,}+",
            r"(?<![A-Za-z0-9])glpat-[A-Za-z0-9_-]{20,}+",  # GitLab
            r"(?<![A-Za-z0-9])AIza[0-9A-Za-z_-]{35}",  # Google API keys
            r"(?<![A-Za-z0-9])[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}+",  # Stripe
            r"(?<![A-Za-z0-9])hf_[A-Za-z0-9]{30,}+",  # Hugging Face
            r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}+\.eyJ[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]{8,}+",  # JWT
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
        )
    )
)

# Value after a credential-looking keyword: the keyword stays readable, the value is masked.
_KEYWORD = (
    r"(?:pass(?:word|wd|phrase)?|pwd|secret|client[_ -]?secret|api[_ -]?key|apikey|access[_ -]?key"
    r"|secret[_ -]?key|private[_ -]?key|(?:auth|access|refresh|bearer|api|bot|session)?[_ -]?token"
    r"|credentials?|aws_secret_access_key|passcode|pin)"
)
_ASSIGNED = re.compile(
    rf"(?i)(?<![A-Za-z0-9]){_KEYWORD}[\"']?+\s*+(?::|=|=>|:=)\s*+"
    r"(?:\"(?P<dq>[^\"\n]++)\"|'(?P<sq>[^'\n]++)'|(?P<bare>[^\s,;\"'<>]++))"
)
# "my password is hunter2": only when the value looks like one (holds a digit or a symbol); the
# value ends before trailing sentence punctuation.
_STATED = re.compile(
    rf"(?i)(?<![A-Za-z0-9]){_KEYWORD}\s++(?:is|was|=)\s++[\"'`]?+"
    r"(?P<value>[^\s\"'`,;]{4,}+)[\"'`]?+(?=[,;.!?]*+(?:\s|$))"
)
_PASSWORD_MARKS = frozenset("0123456789!@#$%^&*_+=~?")
_TAG = re.compile(r"\[[A-Z]+\]")
_BEARER = re.compile(r"(?i)(?<![A-Za-z0-9])(?:bearer|basic|token)\s++(?P<value>[A-Za-z0-9._~+/=-]{16,}+)")
# scheme://user:password@host; the scheme is a run that starts with its first letter.
_URL_CREDENTIALS = re.compile(
    r"(?<![a-z0-9+.-])[0-9+.-]*+[a-z][a-z0-9+.-]*+://[^\s:/@]++:(?P<value>[^\s@/]++)@"
)
# Long random-looking strings (mixed case and digits, no spaces): most leaked tokens look like this.
_HIGH_ENTROPY = re.compile(r"(?<![A-Za-z0-9_+=-])[A-Za-z0-9_+=-]{32,}+")
# "aws secret key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY": a base64-looking token (an AWS secret
# access key is 40 of them) shortly after a word that announces a secret.
_SECRET_CONTEXT = re.compile(
    r"(?i)(?<![A-Za-z0-9])(?:aws[_ -]?)?(?:secret(?:[_ -]?access)?(?:[_ -]?key)?|client[_ -]?secret"
    r"|private[_ -]?key|api[_ -]?key|access[_ -]?key|(?:auth[_ -]?)?token|pass(?:word|wd|phrase)"
    r"|credentials?)(?![A-Za-z0-9])"
)
_BASE64_TOKEN = re.compile(r"(?<![A-Za-z0-9/+=_-])[A-Za-z0-9/+]{20,200}+={0,2}+(?![A-Za-z0-9/+=_-])")
_CONTEXT_WINDOW = 48
"""How far after its keyword a value may start ("secret key for prod is: ...")."""
_MAX_CONTEXT_VALUE = 210
"""Longer than any value `_after_keyword` looks for (a 200-character token and its padding)."""


def _secrets(text: str) -> Iterator[_Span]:
    for m in _SECRET_TOKENS.finditer(text):
        yield _Span(start=m.start(), end=m.end(), kind=SECRET)
    for m in _ASSIGNED.finditer(text):
        group = next(g for g in ("dq", "sq", "bare") if m.group(g) is not None)
        if not _TAG.fullmatch(m.group(group)):
            yield _Span(start=m.start(group), end=m.end(group), kind=SECRET)
    for m in _STATED.finditer(text):
        value = m.group("value")
        if _PASSWORD_MARKS.isdisjoint(value):
            continue
        kept = max(len(value.rstrip(".!?")), 4)
        yield _Span(start=m.start("value"), end=m.start("value") + kept, kind=SECRET)
    for pattern in (_BEARER, _URL_CREDENTIALS):
        for m in pattern.finditer(text):
            yield _Span(start=m.start("value"), end=m.end("value"), kind=SECRET)
    for m in _HIGH_ENTROPY.finditer(text):
        token = m.group()
        if any(c.isupper() for c in token) and any(c.islower() for c in token) and any(c.isdigit() for c in token):
            yield _Span(start=m.start(), end=m.end(), kind=SECRET)
    yield from _after_keyword(text, _SECRET_CONTEXT, _BASE64_TOKEN, _looks_random, SECRET)


def _looks_random(token: str) -> bool:
    """Both cases and a digit or a base64 symbol: generated keys, not words or paths."""
    return (
        any(c.isupper() for c in token)
        and any(c.islower() for c in token)
        and any(c.isdigit() or c in "/+" for c in token)
    )


def _after_keyword(
    text: str, keyword: re.Pattern[str], value: re.Pattern[str], accept: Callable[[str], bool] | None, kind: str
) -> Iterator[_Span]:
    """Values (that `accept` takes, if given) starting within `_CONTEXT_WINDOW` characters of a keyword.
    Each search looks at a bounded window, so the whole scan stays linear; a value cut off by the
    window is not one."""
    for m in keyword.finditer(text):
        stop = min(len(text), m.end() + _CONTEXT_WINDOW + _MAX_CONTEXT_VALUE)
        found = value.search(text, m.end(), stop)
        if found is None or found.start() > m.end() + _CONTEXT_WINDOW:
            continue
        if (found.end() < stop or stop == len(text)) and (accept is None or accept(found.group())):
            yield _Span(start=found.start(), end=found.end(), kind=kind)


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
    re.compile(r"(?<![\w+])\+\d{1,3}(?>[ .-]?\(?\d{1,4}\)?){2,6}(?![\w])"),
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
            last = next((j for j in _card_ends(groups, i) if _is_card(text, groups[i : j + 1])), None)
            if last is None:
                i += 1
                continue
            yield _Span(start=groups[i][0], end=groups[last][1], kind=CARD)
            i = last + 1


def _card_ends(groups: list[tuple[int, int, str]], i: int) -> list[int]:
    """The groups (last first) a card starting at group `i` could end with: it holds 13 to 19 digits
    and starts with a group of four or is one block, so at most a few windows are ever checked."""
    first = len(groups[i][2])
    if first != 4 and not 13 <= first <= 19:
        return []
    ends: list[int] = []
    digits = 0
    for j in range(i, len(groups)):
        digits += len(groups[j][2])
        if digits > 19:
            break
        if digits >= 13:
            ends.append(j)
    return ends[::-1]


def _is_card(text: str, groups: list[tuple[int, int, str]]) -> bool:
    lengths = [len(g[2]) for g in groups]
    shaped = (
        len(groups) == 1
        or (all(n == 4 for n in lengths[:-1]) and 1 <= lengths[-1] <= 4)
        or lengths in ([4, 6, 5], [4, 6, 4])
    )
    if not shaped:
        return False
    separators = {text[a[1]] for a, _ in itertools.pairwise(groups)}
    digits = "".join(g[2] for g in groups)
    return len(separators) <= 1 and _issuer_prefix(digits) and luhn.is_valid(digits)


def _issuer_prefix(digits: str) -> bool:
    """Card numbers start 3-6 (Amex, Visa, Mastercard, Discover, ...) or 2221-2720 (Mastercard)."""
    return digits[0] in "3456" or 2221 <= int(digits[:4]) <= 2720


# Two letters, two check digits, then 11-30 letters/digits, optionally in space-separated groups.
_IBAN_RUN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,32}(?![a-z0-9])")


def _ibans(text: str) -> Iterator[_Span]:
    for m in _IBAN_RUN.finditer(text):
        candidate = m.group()
        for end in reversed(_mod97_ends(candidate)):
            if stdnum_iban.is_valid(candidate[:end]):
                yield _Span(start=m.start(), end=m.start() + end, kind=IBAN)
                break


def _mod97_ends(candidate: str) -> list[int]:
    """The ends (shortest first, 15 characters at least) at which `candidate[:end]` passes the IBAN
    checksum, computed in one pass: a run of near-IBANs then costs one stdnum call per real
    checksum match instead of one per possible length."""
    head = int("".join(str(int(c, 36)) for c in candidate[:4]))
    head_scale = 10 ** len(str(head))
    rest = 0
    ends: list[int] = []
    for end in range(5, len(candidate) + 1):
        char = candidate[end - 1]
        if char == " ":
            continue
        value = int(char, 36)
        rest = (rest * (10 if value < 10 else 100) + value) % 97
        if end >= 15 and (rest * head_scale + head) % 97 == 1:
            ends.append(end)
    return ends


# US Social Security numbers: 123-45-6789 or 123 45 6789 anywhere, nine bare digits only shortly after
# "SSN". Numbers the SSA never issues (area 000, 666 or 9xx, group 00, serial 0000) stay readable.
_SSN_GROUPED = re.compile(r"(?<![\w.,/$€£¥+-])(?!000|666|9)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?!\w|[.,/-]\d)")
_SSN_BARE = re.compile(r"(?<![\w.,/$€£¥+-])(?!000|666|9)\d{3}(?!00)\d{2}(?!0000)\d{4}(?!\w|[.,/-]\d)")
_SSN_CONTEXT = re.compile(
    r"(?i)(?<![A-Za-z0-9])(?:ssn|social[ -]security(?:[ -](?:number|no))?|ss#)(?![A-Za-z0-9])"
)


def _ssns(text: str) -> Iterator[_Span]:
    for m in _SSN_GROUPED.finditer(text):
        yield _Span(start=m.start(), end=m.end(), kind=SSN)
    yield from _after_keyword(text, _SSN_CONTEXT, _SSN_BARE, None, SSN)


_DETECTORS: tuple[Callable[[str], Iterator[_Span]], ...] = (_secrets, _emails, _ibans, _cards, _phones, _ssns)
