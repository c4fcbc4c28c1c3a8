"""Reading the model's answer to the self-check question: a clear yes or no decides, chatter does not."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.guard.self_check import NoVerdict, self_check_verdict


@pytest.mark.parametrize("answer", ["No", "no.", " No, it is an ordinary request.", "**No**", "Answer: no", "safe"])
def test_a_leading_no_lets_the_text_pass(answer: str) -> None:
    assert self_check_verdict(answer) == [True]


@pytest.mark.parametrize(
    "answer", ["Yes", "YES!", "Yes, it asks for help to hurt someone.", "Answer: Yes", "unsafe S1"]
)
def test_a_leading_yes_blocks(answer: str) -> None:
    assert self_check_verdict(answer) == [False]


@pytest.mark.parametrize(
    "answer",
    [
        "The user is asking how to rotate logs, which is fine.",
        "You said: Should the user message be blocked (Yes or No)?",
        "I think this should not be blocked: no.",
        "",
    ],
)
def test_an_answer_without_a_leading_yes_or_no_is_no_verdict(answer: str) -> None:
    with pytest.raises(NoVerdict):
        self_check_verdict(answer)


@given(st.text(max_size=2_000))
def test_any_answer_is_read_or_reported_as_no_verdict(answer: str) -> None:
    try:
        verdict = self_check_verdict(answer)
    except NoVerdict:
        return
    assert verdict in ([True], [False])


def test_no_verdict_does_not_repeat_the_answer_which_may_quote_the_message() -> None:
    with pytest.raises(NoVerdict) as raised:
        self_check_verdict("The message says the password is hunter2secret, so I am unsure.")
    assert "hunter2secret" not in str(raised.value)
