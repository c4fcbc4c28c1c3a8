"""The time a message asks about: "in May 2023", "on 16 June, 2023", "last week", "yesterday".

Memories carry when they were said, so recall can favour the ones said in the time a question
names ("what did I tell you about the offsite in March?"). This module only reads the text: a
linear scan over words and numbers, no regular expression with backtracking, no model. It knows
English month names (full and short), day-month-year in either order, a bare month (the latest
such month up to now), a bare year, and a few relative phrases anchored at `now`. Anything it does
not recognise yields no window, and recall ranks as if no time was named.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_TOKEN = re.compile(r"[a-z]+|\d+")
_MONTHS: dict[str, int] = {
    **{name.lower(): i for i, name in enumerate(calendar.month_name) if name},
    **{name.lower(): i for i, name in enumerate(calendar.month_abbr) if name},
    "sept": 9,
}
_NOT_MONTH_ALONE = frozenset({"may", "mar", "jan", "jun", "jul", "aug", "sep", "oct", "nov", "dec", "feb", "apr"})
"""Words that name a month only beside a day or a year ("may" is mostly the verb)."""
_ORDINAL = frozenset({"st", "nd", "rd", "th", "of"})
_MIN_YEAR, _MAX_YEAR = 1900, 2199


@dataclass(frozen=True, kw_only=True, slots=True)
class TimeWindow:
    """A half-open interval [start, end) of UTC instants."""

    start: datetime
    end: datetime

    def distance_days(self, instant: datetime) -> float:
        """0 inside the window, else the days to its nearer edge."""
        if instant < self.start:
            return (self.start - instant).total_seconds() / 86_400
        if instant >= self.end:
            return (instant - self.end).total_seconds() / 86_400
        return 0.0


def mentioned_window(text: str, *, now: datetime) -> TimeWindow | None:
    """The span of every time `text` names (their union's bounds), or None when it names none."""
    tokens = _TOKEN.findall(text.lower())
    found: list[TimeWindow] = []
    i = 0
    while i < len(tokens):
        window, used = _date_at(tokens, i, now) or _relative_at(tokens, i, now) or (None, 1)
        if window is not None:
            found.append(window)
        i += used
    if not found:
        return None
    return TimeWindow(start=min(w.start for w in found), end=max(w.end for w in found))


def _date_at(tokens: list[str], i: int, now: datetime) -> tuple[TimeWindow, int] | None:
    """A calendar date starting at token i: [day] month [day] [year], or a bare year."""
    start = i
    day = _day(tokens, i)
    if day is not None:
        i += 1
        while i < len(tokens) and tokens[i] in _ORDINAL:
            i += 1
    month = _MONTHS.get(tokens[i]) if i < len(tokens) else None
    if month is None:
        if day is None and (year := _year(tokens, i)) is not None:
            return _span(datetime(year, 1, 1, tzinfo=UTC), years=1), 1
        return None
    word = tokens[i]
    i += 1
    if day is None and (after := _day(tokens, i)) is not None:
        day = after
        i += 1
        while i < len(tokens) and tokens[i] in _ORDINAL - {"of"}:
            i += 1
    year = _year(tokens, i)
    if year is not None:
        i += 1
    elif day is None and word in _NOT_MONTH_ALONE:
        return None
    if year is None:
        year = now.year if (month, day or 1) <= (now.month, now.day) else now.year - 1
    if day is not None:
        if day > calendar.monthrange(year, month)[1]:
            return None
        return _span(datetime(year, month, day, tzinfo=UTC), days=1), i - start
    return _span(datetime(year, month, 1, tzinfo=UTC), months=1), i - start


def _relative_at(tokens: list[str], i: int, now: datetime) -> tuple[TimeWindow, int] | None:
    """Today, yesterday, this/last week, month or year, anchored at `now`'s UTC day."""
    today = datetime(now.year, now.month, now.day, tzinfo=UTC)
    word = tokens[i]
    if word == "today":
        return _span(today, days=1), 1
    if word == "yesterday":
        return _span(today - timedelta(days=1), days=1), 1
    if word not in ("this", "last", "past") or i + 1 >= len(tokens):
        return None
    unit, back = tokens[i + 1], word != "this"
    if unit in ("week", "weekend"):
        monday = today - timedelta(days=today.weekday())
        return _span(monday - timedelta(days=7 if back else 0), days=7), 2
    if unit == "month":
        first = datetime(today.year, today.month, 1, tzinfo=UTC)
        if back:
            first = (first - timedelta(days=1)).replace(day=1)
        return _span(first, months=1), 2
    if unit == "year":
        return _span(datetime(today.year - back, 1, 1, tzinfo=UTC), years=1), 2
    return None


def _day(tokens: list[str], i: int) -> int | None:
    if i < len(tokens) and tokens[i].isdigit() and len(tokens[i]) <= 2 and 1 <= int(tokens[i]) <= 31:
        return int(tokens[i])
    return None


def _year(tokens: list[str], i: int) -> int | None:
    if i < len(tokens) and tokens[i].isdigit() and len(tokens[i]) == 4 and _MIN_YEAR <= int(tokens[i]) <= _MAX_YEAR:
        return int(tokens[i])
    return None


def _span(start: datetime, *, days: int = 0, months: int = 0, years: int = 0) -> TimeWindow:
    if years:
        return TimeWindow(start=start, end=start.replace(year=start.year + years))
    if months:
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
        return TimeWindow(start=start, end=end)
    return TimeWindow(start=start, end=start + timedelta(days=days))
