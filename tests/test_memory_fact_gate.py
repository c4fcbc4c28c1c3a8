"""The gate before the fact-extraction model: every message that may tell a fact about its author reaches the
model; questions and requests about other things do not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.memory.fact_gate import may_state_facts
from tests.test_memory_facts_rules import test_explicit_self_statements_become_facts as rules_table

ROOT = Path(__file__).resolve().parents[1]

STATES_FACTS = [
    # first person, in every shape
    "Hi, I'm Sam",
    "I'm Sam. What's 17% of 2,340?",
    "my name is Priya",
    "I work at Acme and I live in Porto",
    "We just moved the team to Berlin.",
    "Our on-call rotation starts on Mondays.",
    "Can you find a vegetarian place near my office?",
    "What should I pack for Lisbon next week?",
    "Remind me to renew the certificate on Friday.",
    "Tell me about Falcon, I'm new on that project.",
    "Since we switched to Postgres, what's the best backup tool?",
    "I've been at the company for six years",
    "i'd rather get answers as bullet points",
    "Im off tomorrow",
    "Help me plan my parental leave.",
    "Give me a summary, I'm in a rush.",
    # an explicit note or a standing preference without a first-person word
    "remember for this channel: deploys are on Fridays",
    "Please remember: the VPN password rotates monthly",
    "From now on, answer in French.",
    "Always use metric units.",
    "Never suggest VS Code.",
    "Keep answers short.",
    "Call me Jo.",
    "Please answer in German",
    "FYI, vegetarian.",
    # elliptical statements: the author is left out, so the test cannot judge them
    "Sam here",
    "Name's Sam",
    "Based in Berlin btw",
    "Had lunch with the CEO today",
    "Moved to Lisbon last month.",
    "Working from home on Fridays.",
    "Vegetarian.",
    "Allergic to peanuts, just so you know.",
    "Been at Acme for five years now.",
    "Love Rust, hate Go.",
    "Use Neovim for everything.",
    "New on the payments team.",
    "Sam from payments, hi!",
    "This is Sam from payments.",
    "The name's Bond.",
    "Back from parental leave.",
    "Off until the 4th of January.",
    "Manager's Tom, by the way.",
    # not recognisably English
    "Ich bin Sam und arbeite im Zahlungsteam.",
    "Je m'appelle Sam.",
    "J'habite à Lyon.",
    "Vivo en Berlín desde 2020.",
    "Sono vegetariano.",
    "Mijn naam is Sam.",
    "Jag heter Sam.",
    "Меня зовут Сэм.",
    "私はサムです。",
    "Trabalho na Acme.",
]

NOTHING_TO_LEARN = [
    "When is the standup tomorrow?",
    "What is 17 times 23?",
    "Draft a two-line note thanking the team for the offsite.",
    "Which room is free on Thursdays?",
    "what is 2+2",
    "Hi!",
    "thanks!",
    "ok",
    "Good morning",
    "Tell me a joke.",
    "Show me the deploy checklist.",
    "Explain the difference between a mutex and a semaphore.",
    "Translate 'good morning' into Spanish.",
    "Summarise the Falcon project's status.",
    "Can you write a haiku about Mondays?",
    "Could you check whether the build is green?",
    "Is there a holiday next week?",
    "How does one reset a Postgres sequence?",
    "Please draft an agenda for the retro.",
    "Compare Kafka and RabbitMQ for a small team.",
    "It's raining again.",
    "That makes sense, thanks.",
    "This is about item 42.",
    "Who owns the billing service?",
    "Where is the on-call runbook?",
    "Why is the build red?",
    "Quick question: is the office open on Friday?",
    "Let's start with the first item.",
    "Make it friendlier and keep it under 80 words.",
    "Convert 30 euros to dollars.",
    "👍",
    "42",
]


@pytest.mark.parametrize("said", STATES_FACTS)
def test_a_message_that_may_state_a_fact_reaches_the_model(said: str) -> None:
    assert may_state_facts(said)


@pytest.mark.parametrize("said", NOTHING_TO_LEARN)
def test_a_question_or_request_about_other_things_skips_the_model(said: str) -> None:
    assert not may_state_facts(said)


def test_a_message_too_long_to_judge_reaches_the_model() -> None:
    assert may_state_facts("What is 17 times 23? " * 100)


def test_every_statement_the_rules_learn_reaches_the_model() -> None:
    said = [row[0] for row in rules_table.pytestmark[0].args[1]]  # type: ignore[attr-defined]
    assert [s for s in said if not may_state_facts(s)] == []


def test_every_fact_the_memory_evals_tell_reaches_the_model() -> None:
    rows = [json.loads(line) for line in (ROOT / "datasets/evals/memory.jsonl").read_text().splitlines() if line]
    told = [text for row in rows for text in row["tell"]]
    assert told and [t for t in told if not may_state_facts(t)] == []
