"""Logs and traces: logfire (OpenTelemetry) sending only with a token, secrets scrubbed everywhere."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from core.guard.masking import scrub

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
_configured = False


class ScrubFilter(logging.Filter):
    """Masks secrets and personal data in a record's message, arguments and extras (property 8)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(record.getMessage())
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD:
                setattr(record, key, _scrub_value(value))
        return True


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object a line, with the extras (request, workspace, trace ids) as fields (property 42)."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            payload["error_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            payload["stack"] = scrub(self.formatException(record.exc_info))
        from opentelemetry import trace

        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            payload["trace_id"] = format(span.trace_id, "032x")
        return json.dumps(payload, default=str)


def configure(*, level: str = "INFO", json_logs: bool = False, logfire_token: str | None = None) -> None:
    """Set up logging and logfire once per process; nothing is sent anywhere without a token."""
    global _configured
    if _configured:
        return
    _configured = True
    import logfire

    logfire.configure(
        token=logfire_token,
        send_to_logfire="if-token-present",
        service_name="parley",
        console=False,
        inspect_arguments=False,
        scrubbing=logfire.ScrubbingOptions(extra_patterns=["xox[abpr]", "sk-", "bearer", "signing"]),
    )
    logfire.instrument_pydantic_ai()
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ScrubFilter())
    handler.setFormatter(
        JsonFormatter() if json_logs else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpx2", "httpcore", "sentence_transformers", "nemoguardrails", "asyncio", "pgserver", "yoyo"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
