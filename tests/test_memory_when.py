"""Reading the time a message names (`core.memory.when`): a table of phrasings, and its bounds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.memory.when import TimeWindow, mentioned_window

NOW = datetime(2023, 10, 20, 15, 30, tzinfo=UTC)  # a Friday


def day(year: int, month: int, d: int) -> datetime:
    return datetime(year, month, d, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("What did I say on October 13, 2023?", day(2023, 10, 13), day(2023, 10, 14)),
        ("What did Gina find on 1 February, 2023?", day(2023, 2, 1), day(2023, 2, 2)),
        ("the 3rd of May 2023", day(2023, 5, 3), day(2023, 5, 4)),
        ("Sept 9th 2022", day(2022, 9, 9), day(2022, 9, 10)),
        ("the offsite in May 2023", day(2023, 5, 1), day(2023, 6, 1)),
        ("what happened in December 2023", day(2023, 12, 1), day(2024, 1, 1)),
        ("camping in June", day(2023, 6, 1), day(2023, 7, 1)),
        ("plans for November", day(2022, 11, 1), day(2022, 12, 1)),
        ("everything from 2021", day(2021, 1, 1), day(2022, 1, 1)),
        ("what did I tell you yesterday", day(2023, 10, 19), day(2023, 10, 20)),
        ("anything today?", day(2023, 10, 20), day(2023, 10, 21)),
        ("last week", day(2023, 10, 9), day(2023, 10, 16)),
        ("this week", day(2023, 10, 16), day(2023, 10, 23)),
        ("last month", day(2023, 9, 1), day(2023, 10, 1)),
        ("last year", day(2022, 1, 1), day(2023, 1, 1)),
        ("between March 2023 and June 2023", day(2023, 3, 1), day(2023, 7, 1)),
        ("February 30, 2023", day(2023, 1, 1), day(2024, 1, 1)),  # no such day: only the year counts
    ],
)
def test_a_named_time_becomes_its_window(text: str, start: datetime, end: datetime) -> None:
    assert mentioned_window(text, now=NOW) == TimeWindow(start=start, end=end)


@pytest.mark.parametrize(
    "text",
    [
        "Hi, I'm Sam. What's 17% of 2,340?",
        "May I ask you something?",
        "and in euros?",
        "room 42 on floor 7",
        "",
    ],
)
def test_text_without_a_time_has_no_window(text: str) -> None:
    assert mentioned_window(text, now=NOW) is None


def test_distance_is_zero_inside_and_days_to_the_nearer_edge_outside() -> None:
    window = TimeWindow(start=day(2023, 5, 1), end=day(2023, 6, 1))
    assert window.distance_days(day(2023, 5, 15)) == 0.0
    assert window.distance_days(day(2023, 4, 29)) == 2.0
    assert window.distance_days(day(2023, 6, 4)) == 3.0


@given(st.text(max_size=300))
def test_any_text_yields_none_or_a_window_that_starts_before_it_ends(text: str) -> None:
    window = mentioned_window(text, now=NOW)
    assert window is None or window.start < window.end


def test_reading_a_long_message_stays_linear() -> None:
    text = "on 3 may " * 20_000
    assert mentioned_window(text, now=NOW) == TimeWindow(start=day(2023, 5, 3), end=day(2023, 5, 4))
