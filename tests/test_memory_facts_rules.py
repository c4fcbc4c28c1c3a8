"""The deterministic extractor, over a statement set of positives and hard negatives."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from core.memory.facts_rules import SharedNote, read_statements, until

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize(
    ("said", "facts"),
    [
        ("Hi, I'm Sam. What's 17% of 2,340?", ["is called Sam"]),
        ("my name is Priya", ["is called Priya"]),
        ("call me sam", ["is called Sam"]),
        ("You can call me Jo, thanks", ["is called Jo"]),
        ("I'm on the payments team", ["is on the payments team"]),
        ("I am part of the SRE team", ["is on the SRE team"]),
        ("I prefer answers in euros", ["prefers answers in euros"]),
        ("I prefer short answers", ["prefers short answers"]),
        ("Please answer in German", ["prefers answers in German"]),
        ("my favourite colour is teal", ["their favourite colour is teal"]),
        ("My pronouns are they/them.", ["their pronouns are they/them"]),
        ("I work at Acme", ["works at Acme"]),
        ("I live in Porto.", ["lives in Porto"]),
        ("I'm a backend engineer", ["is a backend engineer"]),
        ("I'm based in Lisbon", ["is based in Lisbon"]),
        ("I'm allergic to peanuts", ["is allergic to peanuts"]),
        ("I'm on holiday until Friday", ["is on holiday until Friday"]),
        ("my time zone is Europe/Berlin", ["is in the Europe/Berlin time zone"]),
        ("Hey! I'm Ana. I'm on the data team. Can you help?", ["is called Ana", "is on the data team"]),
        ("Hi, I'm Priya and I'm on the payments team", ["is called Priya", "is on the payments team"]),
        ("I'm Ana, my manager is Tom", ["is called Ana", "their manager is Tom"]),
        ("I work at Acme and I live in Porto", ["works at Acme", "lives in Porto"]),
        ("I'm on holiday until Friday, and my backup is Tom", ["is on holiday until Friday", "their backup is Tom"]),
        ("Actually, call me Samuel", ["is called Samuel"]),
        ("Sorry, my name is Priya", ["is called Priya"]),
        ("No, I'm on the data team", ["is on the data team"]),
        ("please just call me Jo from now on", ["is called Jo"]),
    ],
)
def test_explicit_self_statements_become_facts(said: str, facts: list[str]) -> None:
    assert [f.content for f in read_statements(said, now=NOW).facts] == facts


@pytest.mark.parametrize(
    "said",
    [
        "and in euros?",
        "Hi!",
        "hello there",
        "thanks, that helps",
        "What's my name?",
        "Am I on the payments team?",
        "I'm not sure",
        "I'm sorry, I meant the other one",
        "I'm looking for the deploy doc",
        "I'm trying to get the build green",
        "I'm a bit lost here",
        "I'm good, thanks",
        "I'm Sam's manager",
        "I'm English",
        "if I'm late, start without me",
        "She said I'm on the payments team",
        "my question is how to deploy",
        "my bad",
        "I like it",
        "I'm on holiday",
        "what is 2+2",
        "Sam is on the payments team",
        "can you call me back later?",
        "Tom and I are pairing on the deploy",
        "Sam and my manager are on the payments team",
        "She said I'm new and my desk is by the window",
    ],
)
def test_greetings_questions_and_passing_states_are_not_facts(said: str) -> None:
    assert read_statements(said, now=NOW).facts == ()


@pytest.mark.parametrize(
    ("said", "profile"),
    [
        ("Hi, I'm Sam.", {"display_name": "Sam"}),
        ("please reply in french", {"language": "French"}),
        ("my timezone is America/New_York", {"timezone": "America/New_York"}),
        ("my time zone is Mars/Olympus", {}),
        ("I prefer detailed answers", {"answer_style": "detailed"}),
        ("and in euros?", {}),
    ],
)
def test_the_profile_picks_up_name_language_time_zone_and_style(said: str, profile: dict[str, str]) -> None:
    assert read_statements(said, now=NOW).profile == profile


def test_a_new_statement_on_a_subject_names_that_subject() -> None:
    [before] = read_statements("I'm on the payments team", now=NOW).facts
    [after] = read_statements("I'm on the search team", now=NOW).facts
    assert before.subject == after.subject == "team"


@pytest.mark.parametrize(
    ("said", "scope", "content"),
    [
        ("remember for this channel: deploys are on Fridays", "channel", "deploys are on Fridays"),
        (
            "Please remember for the workspace - the office is closed on the 24th",
            "workspace",
            "the office is closed on the 24th",
        ),
        ("remember for everyone: standup is at 9:30", "workspace", "standup is at 9:30"),
    ],
)
def test_remember_for_a_channel_or_the_workspace_is_a_shared_note(said: str, scope: str, content: str) -> None:
    found = read_statements(said, now=NOW)
    assert found.shared == SharedNote(scope=scope, content=content)  # type: ignore[arg-type]
    assert found.facts == ()


@pytest.mark.parametrize(
    ("phrase", "zone", "ends"),
    [
        ("Friday", "UTC", datetime(2026, 12, 5, tzinfo=UTC)),
        ("wednesday", "UTC", datetime(2026, 12, 3, tzinfo=UTC)),
        ("tomorrow", "UTC", datetime(2026, 12, 4, tzinfo=UTC)),
        ("next week", "UTC", datetime(2026, 12, 7, tzinfo=UTC)),
        ("2027-01-04", "UTC", datetime(2027, 1, 5, tzinfo=UTC)),
        ("the 24th of December", "UTC", datetime(2026, 12, 25, tzinfo=UTC)),
        ("Jan 3rd", "UTC", datetime(2027, 1, 4, tzinfo=UTC)),
        ("Friday", "Europe/Berlin", datetime(2026, 12, 4, 23, 0, tzinfo=UTC)),
        ("2020-01-01", "UTC", None),
        ("further notice", "UTC", None),
    ],
)
def test_until_names_the_end_of_a_day_in_the_persons_zone(phrase: str, zone: str, ends: datetime | None) -> None:
    assert until(phrase, now=NOW, zone=ZoneInfo(zone)) == ends


def test_an_expiring_fact_carries_its_end() -> None:
    [fact] = read_statements("I'm out of office until tomorrow", now=NOW).facts
    assert fact.expires_at == datetime(2026, 12, 4, tzinfo=UTC)


@pytest.mark.parametrize(
    ("said", "facts"),
    [
        ("Really?! I'm Sam.", ["is called Sam"]),
        ("I'm on the payments team!!", ["is on the payments team"]),
        ("I'm on the payments team?!", []),
        ("I'm Sam... and you?", ["is called Sam"]),
    ],
)
def test_runs_of_punctuation_end_one_sentence(said: str, facts: list[str]) -> None:
    assert [f.content for f in read_statements(said, now=NOW).facts] == facts
