"""A person's terminal shows a failure as one line unless they asked for debug output."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot import observability
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


def test_the_log_set_up_while_stderr_was_replaced_writes_to_stderr_after(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    monkeypatch.setattr(observability, "_configured", False)
    monkeypatch.setattr(observability, "_recording", observability._recording)
    monkeypatch.setattr(ThreadPoolExecutor, "submit", ThreadPoolExecutor.submit)
    stand_in, after = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(stand_in):  # as a CLI test runner replaces it while a command runs
            observability.configure(level="INFO")
        stand_in.close()
        with contextlib.redirect_stderr(after):
            logging.getLogger("parley.test").warning("after the command")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    [line] = after.getvalue().splitlines()  # the record, not logging's "--- Logging error ---" report
    assert line.endswith("after the command")
