"""Checks on a Slack HTTP request's raw bytes, before anything parses them. Pure: no I/O.

Anyone can POST to /slack/events, so a request is refused with a short reason (and a 4xx) unless it
is small enough, signed by Slack within the replay window and well-formed; only then does Bolt see
it. A signed request whose payload has an unexpected shape is Slack's own doing: it is acknowledged
(200) and skipped, since Slack retries anything else.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from slack_sdk.signature import SignatureVerifier

MAX_BODY_BYTES = 1024 * 1024
"""Slack's own payloads are far smaller; anything larger is refused while it is being read."""
MAX_AGE_S = 300
"""Slack's replay window: a signature older (or newer) than five minutes is refused."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Refusal:
    """Why a request is not handed to Bolt, and the status it is answered with."""

    status: int
    reason: str
    """Short and free of request content: it is logged and sent back."""


TOO_LARGE = Refusal(status=413, reason=f"body larger than {MAX_BODY_BYTES} bytes")


def declared_too_large(headers: Mapping[str, str]) -> bool:
    """A Content-Length over the cap: refused before a byte of the body is read."""
    length = headers.get("content-length", "")
    return length.isascii() and length.isdigit() and int(length) > MAX_BODY_BYTES


def check_signature(body: bytes, headers: Mapping[str, str], *, signing_secret: str, now: float) -> Refusal | None:
    """None when Slack signed `body` (HMAC-SHA256 of `v0:timestamp:body`) within the replay window."""
    timestamp = headers.get("x-slack-request-timestamp")
    signature = headers.get("x-slack-signature")
    if not timestamp or not signature:
        return Refusal(status=401, reason="missing Slack signature headers")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        return Refusal(status=401, reason="malformed Slack timestamp")
    if abs(now - int(timestamp)) > MAX_AGE_S:
        return Refusal(status=401, reason="stale Slack timestamp")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Refusal(status=400, reason="body is not UTF-8")
    expected = SignatureVerifier(signing_secret).generate_signature(timestamp=timestamp, body=text)
    if expected is None or not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        return Refusal(status=401, reason="invalid Slack signature")
    return None


def parse_payload(body: bytes, content_type: str | None) -> dict[str, Any] | Refusal:
    """The payload as Bolt will read it (JSON, a form with a JSON `payload=`, or a plain form such as
    a slash command), or a refusal when it is not an object."""
    text = body.decode("utf-8")
    if not text:
        return Refusal(status=400, reason="empty body")
    media_type = (content_type or "").split(";")[0].strip().lower()
    try:
        if media_type == "application/json" or text.startswith("{"):
            parsed: Any = json.loads(text)
        elif "payload" in text:
            fields = dict(parse_qsl(text, keep_blank_values=True, strict_parsing=True))
            parsed = json.loads(fields["payload"]) if "payload" in fields else {}
        else:
            parsed = dict(parse_qsl(text, keep_blank_values=True, strict_parsing=True))
    except (ValueError, RecursionError):
        return Refusal(status=400, reason="malformed body")
    if not isinstance(parsed, dict):
        return Refusal(status=400, reason="payload is not an object")
    return parsed


def unexpected_shape(payload: Mapping[str, Any]) -> str | None:
    """What is wrong with a signed payload Parley cannot route, or None when it looks as Slack sends it."""
    if payload.get("type") != "event_callback":
        return None
    event = payload.get("event")
    if not isinstance(event, dict):
        return "event_callback without an event object"
    if not isinstance(event.get("type"), str):
        return "event without a type"
    for key in ("team_id", "api_app_id", "event_id"):
        if key in payload and not isinstance(payload[key], str):
            return f"{key} is not a string"
    return None
