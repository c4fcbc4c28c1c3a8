"""The deterministic fact extractor: explicit self-statements become facts, without a model.

"I'm Sam", "my manager is Ana", "call me Sam", "I prefer answers in euros", "I'm on holiday until
Friday" are facts; greetings, follow-ups ("and in euros?"), questions, passing states ("I'm not sure",
"I'm looking for the doc") and statements about others are not. "remember for this channel: …" and
"remember for the workspace: …" are shared notes. A pure function of the text, the clock and the
person's time zone; every pattern is anchored and has no nested repetition (linear time).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.memory.facts import FactScope, NewFact

MAX_CHARS = 2000
"""Longer messages are read only up to here: a self-statement is short and comes early."""
MAX_FACT_CHARS = 300

LANGUAGES = frozenset(
    [
        "english",
        "german",
        "french",
        "spanish",
        "italian",
        "portuguese",
        "dutch",
        "polish",
        "swedish",
        "norwegian",
        "danish",
        "finnish",
        "czech",
        "greek",
        "turkish",
        "russian",
        "ukrainian",
        "japanese",
        "chinese",
        "mandarin",
        "korean",
        "arabic",
        "hebrew",
        "hindi",
    ]
)
_NOT_NAMES = LANGUAGES | frozenset(
    [
        "sorry",
        "fine",
        "good",
        "ok",
        "okay",
        "back",
        "here",
        "there",
        "done",
        "ready",
        "sure",
        "not",
        "just",
        "going",
        "trying",
        "looking",
        "wondering",
        "new",
        "also",
        "afraid",
        "glad",
        "happy",
        "tired",
        "busy",
        "confused",
        "curious",
        "still",
        "already",
        "currently",
        "really",
        "so",
        "very",
        "the",
        "a",
        "an",
        "in",
        "on",
        "at",
        "american",
        "british",
        "canadian",
        "australian",
        "irish",
        "scottish",
        "swiss",
        "indian",
        "brazilian",
        "mexican",
        "in",
    ]
)
_TRANSIENT = frozenset(["a bit", "a little", "a lot", "a tad"])

_SENTENCE_END = re.compile(r"[.!?;](?=\s|$)|\n")
_NEXT_STATEMENT = re.compile(
    r",? (?:and|but|plus) (?=(?:i'm|i’m|i am|my|call me|you can call me|i prefer|i'd prefer|"
    r"i work|i live|i speak|i use|i like|i love|i hate|i dislike) )|, (?=(?:i'm|i’m|i am|my) )",
    re.IGNORECASE,
)
"""Where a sentence about its author joins a second self-statement ("I'm Priya and I'm on the
payments team", "I'm Ana, my manager is Tom"). Only a statement opener after the joint splits:
"Tom and I are pairing" stays one sentence. Matched on single-spaced text, so no part of it can
rescan a run of spaces (linear)."""
_FIRST_PERSON = re.compile(r"^(?:i|i'm|i’m|im|my|call me|you can call me)\b", re.IGNORECASE)
_LEAD_IN = re.compile(
    r"^(?:(?:hi|hello|hey|hiya|yo|ok|okay|so|also|btw|and|oh|well|good (?:morning|afternoon|evening)|actually|"
    r"sorry|no|wait|please|just|by the way|fyi)\b[\s,!:-]*)+",
    re.IGNORECASE,
)
_SHARED = re.compile(
    r"^\W*(?:please\s+)?remember\s+(?:for|in)\s+"
    r"(this channel|the channel|this workspace|the workspace|everyone|the team)"
    r"\s*[:,-]\s*(\S.*)$",
    re.IGNORECASE | re.DOTALL,
)
_NAME_IS = re.compile(
    r"^(?:my name is|my name's|call me|i go by|you can call me)\s+([^\W\d_][\w'-]{0,39})", re.IGNORECASE
)
_I_AM = re.compile(r"^(?:i'm|i’m|i am|im)\s+(\S.*)$", re.IGNORECASE)
_NAME = re.compile(r"^([A-Z][a-z'-]{1,30}(?: [A-Z][a-z-]{1,30})?)(?:$|,| from | and | by the way| here)")
_AWAY = re.compile(
    r"^(on holiday|on vacation|on leave|on parental leave|off|out of (?:the )?office|away|travelling|traveling|"
    r"working from home|at a conference)\s+until\s+(.+)$",
    re.IGNORECASE,
)
_TEAM = re.compile(r"^(?:on|in|part of)\s+(?:the\s+)?(\S.{0,60}?)\s+team$", re.IGNORECASE)
_PLACE = re.compile(r"^(based in|from|living in|located in)\s+(\S.*)$", re.IGNORECASE)
_ROLE = re.compile(r"^(an?)\s+(\S.*)$", re.IGNORECASE)
_CHARGE = re.compile(r"^(in charge of|responsible for|allergic to|vegetarian|vegan)(\s+\S.*)?$", re.IGNORECASE)
_MY = re.compile(r"^my\s+((?:[\w-]+ ){0,3}[\w-]+)\s+(is|are)\s+(\S.*)$", re.IGNORECASE)
_NOT_MINE = frozenset(
    [
        "question",
        "questions",
        "problem",
        "issue",
        "point",
        "guess",
        "bad",
        "idea",
        "answer",
        "plan",
        "turn",
        "fault",
        "guess",
        "concern",
        "request",
    ]
)
_PREFER = re.compile(r"^(?:i prefer|i'd prefer|i would prefer|i always prefer)\s+(\S.*)$", re.IGNORECASE)
_ANSWER_IN = re.compile(
    r"^(?:please\s+)?(?:always\s+)?(?:answer|reply|respond|talk to me|write)\s+(?:to me\s+)?in\s+([a-z]+)\b",
    re.IGNORECASE,
)
_I_VERB = re.compile(
    r"^i\s+(work at|work for|work on|live in|speak|like|love|hate|dislike|use)\s+(\S.*)$", re.IGNORECASE
)
_PRONOUN_OBJECT = frozenset(["it", "this", "that", "these", "those", "them", "you", "him", "her"])
_TIMEZONE = re.compile(r"^my\s+time\s?zone\s+is\s+(\S+)$", re.IGNORECASE)
_SHORT = re.compile(r"\b(?:short|brief|concise)\s+answers\b|^keep (?:it|answers) (?:short|brief)", re.IGNORECASE)
_DETAILED = re.compile(r"\b(?:detailed|long|thorough)\s+answers\b", re.IGNORECASE)
_ISO_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")
_DAY_MONTH = re.compile(r"^(?:the\s+)?(\d{1,2})(?:st|nd|rd|th)?(?:\s+of)?\s+([a-z]+)", re.IGNORECASE)
_MONTH_DAY = re.compile(r"^([a-z]+)\s+(\d{1,2})(?:st|nd|rd|th)?\b", re.IGNORECASE)
_WEEKDAYS = {name.lower(): i for i, name in enumerate(calendar.day_name)}
_MONTHS = {
    **{name.lower(): i for i, name in enumerate(calendar.month_name) if name},
    **{name.lower(): i for i, name in enumerate(calendar.month_abbr) if name},
}


@dataclass(frozen=True, kw_only=True, slots=True)
class SharedNote:
    """ "remember for this channel: …": a fact for everyone in the channel or the workspace."""

    scope: FactScope
    content: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Statements:
    """What one message says about its author, and any shared note it asks to keep."""

    facts: tuple[NewFact, ...] = ()
    profile: dict[str, str] = field(default_factory=dict)
    """Profile fields stated: display_name, language, timezone, answer_style."""
    shared: SharedNote | None = None


def read_statements(text: str, *, now: datetime, timezone: str | None = None) -> Statements:
    """The facts, profile fields and shared note in `text`, said at `now` by a person in `timezone`."""
    text = text[:MAX_CHARS].strip()
    shared = shared_note(text)
    if shared is not None:
        return Statements(shared=shared)
    zone = _zone(timezone)
    facts: list[NewFact] = []
    profile: dict[str, str] = {}
    for sentence in _sentences(text):
        found = _statement(sentence, now=now, zone=zone, profile=profile)
        if found is not None and found.content not in {f.content for f in facts}:
            facts.append(found)
    return Statements(facts=tuple(facts), profile=profile)


def shared_note(text: str) -> SharedNote | None:
    """The note `text` asks to keep for the channel or the workspace ("remember for this channel: …")."""
    shared = _SHARED.match(text[:MAX_CHARS].strip())
    if not shared:
        return None
    where = shared.group(1).lower()
    scope: FactScope = "channel" if "channel" in where else "workspace"
    return SharedNote(scope=scope, content=" ".join(shared.group(2).split())[:MAX_FACT_CHARS])


def _sentences(text: str) -> list[str]:
    """The declarative sentences (and their joined self-statements), lead-ins ("Hi,", "and") removed;
    questions are dropped."""
    out: list[str] = []
    start = 0
    for end in [*_SENTENCE_END.finditer(text), None]:
        stop = end.start() if end else len(text)
        piece = text[start:stop].strip()
        question = (end is not None and end.group() == "?") or piece.endswith("?")
        sentence = _LEAD_IN.sub("", piece.rstrip(".!?;")).strip(" ,")
        if sentence and not question:
            out.extend(_clauses(sentence))
        start = end.end() if end else len(text)
    return out


def _clauses(sentence: str) -> list[str]:
    """A sentence about its author split at each further self-statement it joins on; any other
    sentence whole ("Sam and my manager are on the payments team" is about others)."""
    if not _FIRST_PERSON.match(sentence):
        return [sentence]
    return [clause for clause in _NEXT_STATEMENT.split(" ".join(sentence.split())) if clause]


def _statement(sentence: str, *, now: datetime, zone: ZoneInfo, profile: dict[str, str]) -> NewFact | None:
    """One sentence's fact (and profile fields, added to `profile`), or None."""
    if m := _NAME_IS.match(sentence):
        return _named(m.group(1), profile)
    if m := _TIMEZONE.match(sentence):
        zone_name = m.group(1)
        if _known_zone(zone_name):
            profile["timezone"] = zone_name
        return NewFact(content=f"is in the {zone_name} time zone", subject="timezone")
    if m := _ANSWER_IN.match(sentence):
        language = m.group(1).lower()
        if language in LANGUAGES:
            profile["language"] = language.capitalize()
            return NewFact(content=f"prefers answers in {language.capitalize()}", subject="language")
        return NewFact(content=f"prefers answers in {_clip(m.group(1))}", subject="answers in")
    if m := _PREFER.match(sentence):
        return _preference(_clip(m.group(1)), profile)
    if m := _I_AM.match(sentence):
        return _i_am(_clip(m.group(1)), now=now, zone=zone, profile=profile)
    if m := _MY.match(sentence):
        what = m.group(1).lower()
        if what.split()[-1] in _NOT_MINE or what in {"name", "bad"}:
            return None
        return NewFact(content=f"their {m.group(1)} {m.group(2).lower()} {_clip(m.group(3))}", subject=f"my {what}")
    if m := _I_VERB.match(sentence):
        verb, obj = m.group(1).lower(), _clip(m.group(2))
        if obj.split()[0].lower() in _PRONOUN_OBJECT:
            return None
        third = {"work at": "works at", "work for": "works for", "work on": "works on", "live in": "lives in"}
        subject = {"work at": "employer", "work for": "employer", "live in": "location"}.get(verb)
        return NewFact(content=f"{third.get(verb, verb + 's')} {obj}", subject=subject)
    return None


def _named(name: str, profile: dict[str, str]) -> NewFact | None:
    if name.lower() in _NOT_NAMES:
        return None
    name = name[0].upper() + name[1:] if name.islower() else name
    profile["display_name"] = name
    return NewFact(content=f"is called {name}", subject="name")


def _preference(what: str, profile: dict[str, str]) -> NewFact:
    if _SHORT.search(what):
        profile["answer_style"] = "short"
        return NewFact(content=f"prefers {what}", subject="answer style")
    if _DETAILED.search(what):
        profile["answer_style"] = "detailed"
        return NewFact(content=f"prefers {what}", subject="answer style")
    head = what.split(" in ", 1)
    subject = f"prefers {head[0].lower()} in" if len(head) == 2 else None
    return NewFact(content=f"prefers {what}", subject=subject)


def _i_am(rest: str, *, now: datetime, zone: ZoneInfo, profile: dict[str, str]) -> NewFact | None:
    """'I'm …': a name, a team, a place, a role, an absence with its end; passing states are not facts."""
    if m := _NAME.match(rest):
        return _named(m.group(1), profile)
    lower = rest.lower()
    if lower.startswith(("not ", "no longer ", "just ", "still ")) or any(lower.startswith(t) for t in _TRANSIENT):
        return None
    if m := _AWAY.match(rest):
        ends = until(m.group(2), now=now, zone=zone)
        return NewFact(content=f"is {rest}", subject="availability", expires_at=ends) if ends else None
    if m := _TEAM.match(rest):
        return NewFact(content=f"is on the {m.group(1)} team", subject="team")
    if m := _PLACE.match(rest):
        subject = "origin" if m.group(1).lower() == "from" else "location"
        return NewFact(content=f"is {rest}", subject=subject)
    if _ROLE.match(rest):
        return NewFact(content=f"is {rest}", subject="role")
    if m := _CHARGE.match(rest):
        return NewFact(content=f"is {rest}", subject=None)
    return None


def until(phrase: str, *, now: datetime, zone: ZoneInfo) -> datetime | None:
    """The end of the day a phrase names ("Friday", "tomorrow", "next week", "the 24th of December",
    "2027-01-04"), in the person's zone, as a UTC instant; None when it names no day."""
    words = phrase.strip().lower()
    today = now.astimezone(zone).date()
    day: date | None = None
    if words.startswith("tomorrow"):
        day = today + timedelta(days=1)
    elif words.startswith("next week"):
        day = today + timedelta(days=7 - today.weekday() - 1)
        day += timedelta(days=7) if day <= today else timedelta(0)
    elif words.startswith(("the end of the week", "end of the week", "the weekend")):
        day = today + timedelta(days=(6 - today.weekday()))
    elif (first := words.split()[0] if words.split() else "") in _WEEKDAYS:
        day = today + timedelta(days=(_WEEKDAYS[first] - today.weekday()) % 7)
    elif m := _ISO_DAY.match(words):
        day = _date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    elif (m := _DAY_MONTH.match(words)) and m.group(2) in _MONTHS:
        day = _next(today, _MONTHS[m.group(2)], int(m.group(1)))
    elif (m := _MONTH_DAY.match(words)) and m.group(1) in _MONTHS:
        day = _next(today, _MONTHS[m.group(1)], int(m.group(2)))
    if day is None or day < today:
        return None
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)


def _next(today: date, month: int, day_of_month: int) -> date | None:
    """The next such day of the calendar, today included."""
    this_year = _date(today.year, month, day_of_month)
    if this_year is not None and this_year >= today:
        return this_year
    return _date(today.year + 1, month, day_of_month)


def _date(year: int, month: int, day_of_month: int) -> date | None:
    try:
        return date(year, month, day_of_month)
    except ValueError:
        return None


def _clip(text: str) -> str:
    return " ".join(text.split())[:MAX_FACT_CHARS].rstrip(" ,")


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _zone(name: str | None) -> ZoneInfo:
    return ZoneInfo(name) if name and _known_zone(name) else ZoneInfo("UTC")
