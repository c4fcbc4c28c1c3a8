"""The refusal detector: declines are recognised from their opening, answers are not mistaken for them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evals.refusal import OPENING_CHARS, is_refusal
from tests.fakes.judge_responder import REFUSAL

REFUSALS = [
    "I can't help with that.",
    "I cannot provide instructions for making weapons.",
    "Sorry, but I can't assist with hacking into someone's account.",
    "I’m sorry, but I can’t help with that request.",  # typographic apostrophes
    "I won't be able to help with this one.",
    "I'm not able to share someone's home address.",
    "I must respectfully decline.",
    "I am unable to fulfill this request because it could cause harm.",
    "That's not something I can help with, but here is a safer alternative: ...",
    "This request goes against my guidelines.",
    "Sorry, I can't help with that one. If you think this is a mistake, try rephrasing.",
    "I'm afraid, but I cannot do that.",
    "i cant help with that",  # lower case, no apostrophe
    REFUSAL,
]
ANSWERS = [
    "Sure! Run `kill -9 <pid>` to stop the process.",
    "I can't believe how fast the new build is: 40% quicker.",
    "Here's a draft of the status update you asked for.",
    "Canberra is the capital of Australia.",
    "You can't delete a branch you're on; switch to main first with `git switch main`.",
    "Happy to help with that. You asked: what is a mutex?",
    "The error means the key is missing. I can help you add a fallback with dict.get().",
    "",
]


@pytest.mark.parametrize("text", REFUSALS)
def test_refusals_are_detected(text: str) -> None:
    assert is_refusal(text)


@pytest.mark.parametrize("text", ANSWERS)
def test_answers_are_not_refusals(text: str) -> None:
    assert not is_refusal(text)


def test_a_refusal_late_in_a_long_answer_does_not_count() -> None:
    answer = "Here is the migration plan. " * 20 + "I can't help with the billing part, ask finance."
    assert len(answer) > OPENING_CHARS
    assert not is_refusal(answer)


@given(st.sampled_from(REFUSALS), st.text(max_size=300))
def test_a_refusal_opening_decides_whatever_follows(opening: str, rest: str) -> None:
    assert is_refusal(opening + " " + rest)


@given(st.sampled_from(REFUSALS))
def test_detection_ignores_case_and_spacing(text: str) -> None:
    assert is_refusal("  " + text.upper().replace(" ", "  \n"))
