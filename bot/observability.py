"""Logs, traces and HTTP metrics: logfire (OpenTelemetry) sending only with a token, secrets scrubbed.

Spans: every pipeline stage (core.pipeline), every model and tool call (`instrument_pydantic_ai`),
every database query (`instrument_asyncpg`, statements only, never parameters) and every HTTP
request (`instrument_app`); model, tool and query spans only where traces are recorded (see
`configure`). Logs: one JSON object a line with request, workspace and trace ids.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.guard.masking import scrub

if TYPE_CHECKING:
    from fastapi import FastAPI
    from fastapi.telemetry import TelemetryConfig
    from opentelemetry.sdk.trace import SpanProcessor

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
_configured = False
_recording = False
"""Whether spans are recorded (something receives them): only then does each HTTP request get one."""
OTLP_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
SCRUB_PATTERNS = ["xox[abpre]", "sk-", "bearer", "signing", "parley_[0-9a-f]{12}_"]
"""Extra logfire scrubbing patterns: Slack and OpenAI-style tokens, bearer headers, Parley API keys."""
NOT_TRACED = "/healthz,/readyz,/metrics"
QUIET_LOGGERS = (
    "httpx", "httpx2", "httpcore", "sentence_transformers", "nemoguardrails", "asyncio", "yoyo",
    "slack_sdk", "discord.gateway", "discord.http", "websockets",
)
"""Libraries held at WARNING: at INFO and DEBUG they log requests and payloads (slack_sdk, discord.py)."""
LIBRARY_LOGGERS = ("slack_bolt", "slack_sdk", "parley.slack.bolt", "uvicorn", "httpx", "httpcore", "discord", "aiohttp")
"""Loggers of libraries that see raw requests: their records never carry a body (see LibraryRecordFilter)."""
MAX_LOG_CHARS = 4096
"""A message is cut to this length before it is scrubbed: a log line is no place for a request body,
and scrubbing then costs microseconds however large the text that was logged."""
LIBRARY_LOG_CHARS = 300
_REQUEST_CONTENT = re.compile(r"(?i)\b(?:json_)?(?:body|payload|data)\b|[{]")

HTTP_REQUESTS = Counter("parley_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "parley_http_request_duration_seconds",
    "Time to answer an HTTP request (streams: until the last byte)",
    ["route"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
_request: ContextVar[dict[str, Any] | None] = ContextVar("parley_request", default=None)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
access_log = logging.getLogger("parley.http")


class LibraryRecordFilter(logging.Filter):
    """Records of libraries that handle raw requests (Bolt logs the whole body of a request that fails
    verification, and of one no listener handles) keep their first words, never the request content."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(LIBRARY_LOGGERS):
            message = record.getMessage()[:LIBRARY_LOG_CHARS]
            content = _REQUEST_CONTENT.search(message)
            if content is not None:
                message = f"{message[: content.start()].rstrip(' (:=,')} [request content omitted]"
            record.msg, record.args = message, None
        return True


class ScrubFilter(logging.Filter):
    """Masks secrets and personal data in a record's message, arguments and extras (property 8), each
    cut to `MAX_LOG_CHARS` first."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = scrub(_capped(record.getMessage()))
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD:
                setattr(record, key, _scrub_value(value))
        return True


def _capped(text: str) -> str:
    if len(text) <= MAX_LOG_CHARS:
        return text
    return f"{text[:MAX_LOG_CHARS]}… [{len(text) - MAX_LOG_CHARS} more characters]"


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(_capped(value))
    if isinstance(value, dict):
        return {k: _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(v) for v in value]
    return value


class RequestContextFilter(logging.Filter):
    """Adds the current HTTP request's id and workspace to every record logged while serving it."""

    def filter(self, record: logging.LogRecord) -> bool:
        state = _request.get()
        if state is not None:
            if not hasattr(record, "request_id"):
                record.request_id = state.get("request_id")
            if not hasattr(record, "workspace") and state.get("workspace_id"):
                record.workspace = state["workspace_id"]
        return True


class PlainFormatter(logging.Formatter):
    """Lines for a person's terminal: a failure is one line (its type and message) unless they asked for
    debug output, where its traceback follows, whichever library logged it."""

    def __init__(self, *, tracebacks: bool) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.tracebacks = tracebacks

    def formatException(self, ei: Any) -> str:
        if self.tracebacks:
            return super().formatException(ei)
        kind, error = ei[0], ei[1]
        name = kind.__name__ if kind else "error"
        said = scrub(" ".join(str(error).split())[:300])
        return f"  ({name}: {said})" if said else f"  ({name}; PARLEY_LOG_LEVEL=DEBUG shows where)"

    def formatStack(self, stack_info: str) -> str:
        return super().formatStack(stack_info) if self.tracebacks else ""


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
            payload["stack"] = scrub(_capped(self.formatException(record.exc_info)))
        from opentelemetry import trace

        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            payload["trace_id"] = format(span.trace_id, "032x")
        return json.dumps(payload, default=str)


class CurrentStderr(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record comes, as Python's last-resort handler does. A handler
    holding the stderr of its setup outlived it where stderr was replaced for a while: a CLI command run by a
    test runner set logging up inside the runner's stand-in, which is closed after the command, and every
    record after that failed with "--- Logging error --- ... I/O operation on closed file"."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:
        return sys.stderr


def configure(
    *,
    level: str = "INFO",
    json_logs: bool = False,
    logfire_token: str | None = None,
    stream: TextIO | None = None,
    span_processors: Sequence[SpanProcessor] = (),
    trace_sample: float | None = None,
) -> None:
    """Set up logging and logfire once per process; nothing is sent anywhere without a token.

    `stream` (default stderr) and `span_processors` (e.g. an in-memory exporter) let tests read
    exactly what an operator's log and trace backends would receive. `trace_sample` is the share of
    traces recorded; by default all of them when something receives spans, else none: building and
    scrubbing spans nobody reads cost a tenth of the server's CPU under load (measured). Unrecorded
    traces still have ids, so log lines keep their trace_id."""
    global _configured, _recording
    if _configured:
        return
    _configured = True
    import logfire

    rate = _sample_rate(trace_sample, logfire_token, span_processors)
    _recording = rate > 0
    logfire.configure(
        token=logfire_token,
        send_to_logfire="if-token-present",
        service_name="parley",
        console=False,
        inspect_arguments=False,
        scrubbing=logfire.ScrubbingOptions(extra_patterns=SCRUB_PATTERNS),
        additional_span_processors=list(span_processors),
        sampling=logfire.SamplingOptions(head=rate),
    )
    if rate > 0:
        # Prompts carry personal data: model and tool spans keep their shape and timing, not their text.
        logfire.instrument_pydantic_ai(include_content=False)
        logfire.instrument_asyncpg()
    else:
        _plain_executors()
    handler = logging.StreamHandler(stream) if stream is not None else CurrentStderr()
    handler.addFilter(RequestContextFilter())
    handler.addFilter(LibraryRecordFilter())
    handler.addFilter(ScrubFilter())
    handler.setFormatter(
        JsonFormatter() if json_logs else PlainFormatter(tracebacks=level.upper() == "DEBUG")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    logging.captureWarnings(True)
    root.setLevel(level.upper())
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # pgserver logs a failed start with the server's whole log at ERROR; core.store.embedded raises it as one
    # error quoting the log's last lines instead.
    logging.getLogger("pgserver").setLevel(logging.CRITICAL)
    logging.getLogger("uvicorn.access").disabled = True


def _plain_executors() -> None:
    """Undo logfire's patch of `ThreadPoolExecutor.submit`, which serialises the trace context into a
    carrier on every submit (each encoder batch, guard check and scrub handed to a thread): half as much
    again as the submit itself, for traces nobody records. `asyncio.to_thread` copies the context itself."""
    from concurrent.futures import ThreadPoolExecutor

    from logfire._internal.integrations import executors

    if ThreadPoolExecutor.submit is executors.submit_t:
        ThreadPoolExecutor.submit = executors.submit_t_orig  # type: ignore[method-assign]


def _sample_rate(chosen: float | None, token: str | None, processors: Sequence[SpanProcessor]) -> float:
    if chosen is not None:
        return chosen
    exporting = token or processors or any(os.environ.get(name) for name in OTLP_ENDPOINTS)
    return 1.0 if exporting else 0.0


def instrument_app(app: FastAPI) -> None:
    """The request context and access log around every request, and where spans are recorded a span
    per HTTP request (health probes and scrapes left out). Endpoint arguments are not recorded: bodies
    carry people's messages. With nothing receiving spans, OpenTelemetry's ASGI middleware is left out:
    with FastAPI's own telemetry it cost 0.6 ms of CPU per request where 0.26 ms remain, for spans and
    metrics nobody reads (the request id still ties a request's log lines together)."""
    if _recording:
        import logfire

        logfire.instrument_fastapi(app, excluded_urls=NOT_TRACED, request_attributes_mapper=_only_errors)
    app.add_middleware(RequestContext)


def fastapi_telemetry() -> TelemetryConfig:
    """FastAPI's own OpenTelemetry spans, metrics and logs per request: only where spans are recorded.
    FastAPI turns them on as soon as logfire has installed its providers, sampled or not."""
    return {} if _recording else {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


def _only_errors(request: Any, attributes: dict[str, Any]) -> dict[str, Any] | None:
    errors = attributes.get("errors")
    return {"errors": errors} if errors else None


class RequestContext:
    """Gives each request an id (X-Request-ID, taken from the caller when well-formed), makes it and
    the workspace visible to every log record, and logs and counts the answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) and scrub(given) == given else uuid.uuid4().hex
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        token = _request.set(state)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            record_answer(scope, getattr(scope.get("route"), "path", None), status, time.perf_counter() - started)
            _request.reset(token)


def was_recorded(scope: Scope) -> bool:
    """Whether `RequestContext` saw this request (a request answered on the HTTP door's loop it never sees)."""
    return "request_id" in scope.get("state", {})


def record_answer(scope: Scope, template: str | None, status: int, elapsed_s: float) -> None:
    """Count and time one answered request, and write its access log line (health probes and scrapes left
    out of the log). `template` is its route's path template; None where no route matched."""
    HTTP_REQUESTS.labels(scope["method"], template or "unmatched", str(status)).inc()
    HTTP_LATENCY.labels(template or "unmatched").observe(elapsed_s)
    if template not in NOT_TRACED.split(","):
        access_log.info(
            "%s %s %s",
            scope["method"],
            template or scrub(scope["path"])[:200],
            status,
            extra={"status": status, "duration_ms": round(elapsed_s * 1000, 1), "path": scope["path"]},
        )
