"""Logs under attack: library loggers never carry a request body, and scrubbing a huge message costs
no more than scrubbing a few kilobytes (issue 14, finding 1)."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator

import pytest
from slack_bolt.middleware.request_verification.async_request_verification import AsyncRequestVerification
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.observability import MAX_LOG_CHARS, LibraryRecordFilter, ScrubFilter

SECRET = "xoxb-1111111111-2222222222-PLANTEDslackTOKENabc"
BODY_MARKER = "BODYMARKER"


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """The root handler's filters as `parley serve` installs them, writing where the test can read."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(LibraryRecordFilter())
    handler.addFilter(ScrubFilter())
    root = logging.getLogger()
    saved = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(saved)


async def test_bolt_verification_failure_logs_no_body(log_output: io.StringIO) -> None:
    body = f"token={SECRET}&text={BODY_MARKER}" + "a" * 60_000
    verification = AsyncRequestVerification("not-the-secret", base_logger=logging.getLogger("parley.slack.bolt"))
    request = AsyncBoltRequest(
        body=body, headers={"x-slack-request-timestamp": str(int(time.time())), "x-slack-signature": "v0=00"}
    )

    async def next_() -> BoltResponse:
        raise AssertionError("an unsigned request must not get past verification")

    response = await verification.async_process(req=request, resp=BoltResponse(status=200), next=next_)
    assert response.status == 401
    logged = log_output.getvalue()
    assert logged, "Bolt's verification failure should still leave a line"
    assert SECRET not in logged and BODY_MARKER not in logged and "aaaa" not in logged


@pytest.mark.parametrize(
    "message",
    [
        f"Unhandled request ({{'type': 'event_callback', 'token': '{SECRET}', 'text': '{BODY_MARKER}'}})",
        f"Sending a request - url: https://slack.com/api/chat.postMessage, json_body: {{'text': '{BODY_MARKER}'}}",
        f"Invalid request signature detected (signature: v0=00, timestamp: 1, body: {BODY_MARKER} {SECRET})",
    ],
)
@pytest.mark.parametrize("logger", ["slack_bolt.AsyncApp", "slack_sdk.web.async_base_client", "uvicorn.error"])
def test_library_records_keep_their_first_words_not_the_request(
    log_output: io.StringIO, logger: str, message: str
) -> None:
    logging.getLogger(logger).warning(message)
    logged = log_output.getvalue()
    assert "[request content omitted]" in logged
    assert SECRET not in logged and BODY_MARKER not in logged


def test_a_huge_message_is_cut_before_it_is_scrubbed(log_output: io.StringIO) -> None:
    logging.getLogger("parley.test").warning("%s", "ab:" * 2_000_000)
    line = log_output.getvalue()
    assert len(line) < MAX_LOG_CHARS + 100
    assert line.rstrip().endswith(" more characters]")


def test_parleys_own_records_are_only_scrubbed(log_output: io.StringIO) -> None:
    logging.getLogger("parley.slack").warning("slack request refused: %s with %s", "invalid signature", SECRET)
    assert log_output.getvalue().strip() == "slack request refused: invalid signature with [SECRET]"
