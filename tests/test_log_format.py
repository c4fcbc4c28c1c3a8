"""A person's terminal shows a failure as one line unless they asked for debug output."""

from __future__ import annotations

import logging
import sys

from bot.observability import PlainFormatter


def _record_of_a_failure(message: str) -> logging.LogRecord:
    try:
        raise TimeoutError(message)
    except TimeoutError:
        return logging.LogRecord("httpx", logging.WARNING, __file__, 1, "request failed", None, sys.exc_info())


def test_a_library_failure_is_one_line_without_debug() -> None:
    line = PlainFormatter(tracebacks=False).format(_record_of_a_failure("read timed out"))
    assert "Traceback" not in line
    assert line.endswith("request failed\n  (TimeoutError: read timed out)")


def test_a_failure_without_a_message_says_how_to_see_where() -> None:
    line = PlainFormatter(tracebacks=False).format(_record_of_a_failure(""))
    assert line.endswith("(TimeoutError; PARLEY_LOG_LEVEL=DEBUG shows where)")


def test_debug_output_keeps_the_traceback() -> None:
    assert "Traceback (most recent call last)" in PlainFormatter(tracebacks=True).format(_record_of_a_failure("x"))


def test_a_secret_in_the_failure_message_is_masked() -> None:
    line = PlainFormatter(tracebacks=False).format(_record_of_a_failure("bad key sk-abcdefghijklmnopqrstuvwx"))
    assert "sk-abcdefghijklmnopqrstuvwx" not in line
