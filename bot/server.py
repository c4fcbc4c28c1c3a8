"""The HTTP face of Parley: the FastAPI app (REST API, playground, Slack events) and its server.

`create_app` wires routers to a pipeline; `serve` runs it under uvicorn, whose sockets and HTTP parsing
run on an event loop of their own (bot/front_door.py): a Slack ack and a shed turn's 503 are answered
there, and every other request is carried to the pipeline's loop. On SIGTERM the server stops
accepting connections, answers 503 to new turns on open connections, lets the turns in flight
finish (streams included), then closes the pool and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import asyncpg
import uvicorn
from fastapi import APIRouter, FastAPI
from starlette.middleware.trustedhost import TrustedHostMiddleware

from adapters.api import errors
from adapters.api.deps import ApiConfig, ApiState
from adapters.api.door import door_routes as api_door_routes
from adapters.api.routes import all_routers
from adapters.web.admin import router as admin_page_router
from adapters.web.app import LINK_KEY_NAME
from adapters.web.app import router as web_router
from adapters.web.headers import SecurityHeaders
from bot import observability
from bot.app import running
from bot.database import APPLICATION_NAME, operator_database_uri
from bot.doctor import cached_status
from bot.front_door import SWITCH_INTERVAL_S, LoopBridge, ReadDeadlines, WorkerAnswers, serve_in_thread
from bot.settings import Settings, environment_layer
from bot.workers import metrics_port, pass_start_gate
from core.apikeys import create_api_key, revoke_named
from core.embeddings import one_thread_per_native_pool
from core.metrics import ProcessSampler, keep_sampling
from core.pipeline import Pipeline
from core.seams import NoMedia
from core.store.pool import create_pool

if TYPE_CHECKING:
    from adapters.slack.app import SlackAdapter

log = logging.getLogger("parley.server")
PLAYGROUND_WORKSPACE = "local"
PLAYGROUND_KEY_NAME = "playground"
MIB = 1024 * 1024
DESCRIPTION = """Talk to Parley over HTTP. Every `/v1` endpoint needs `Authorization: Bearer <key>`;
an operator makes keys with `parley apikey create --workspace W`. Errors always carry `error` (a code),
`message` (what went wrong) and `fix` (what to do)."""


def api_config(settings: Settings, pipeline: Pipeline, *, host: str | None = None) -> ApiConfig:
    """Body limit: room for a few files of the largest size allowed, base64 included. /metrics answers without
    its token only on a loopback `host` (the one the server listens on; default PARLEY_HOST)."""
    max_file = settings.parley_max_file_mb * MIB
    token = settings.parley_metrics_token
    return ApiConfig(
        metrics_token=token.get_secret_value() if token is not None else None,
        metrics_keyless=(host or settings.parley_host) in LOOPBACK,
        rate_per_min=settings.parley_api_rate_per_min,
        invalid_keys_per_min=settings.parley_api_invalid_keys_per_min,
        max_file_mb=settings.parley_max_file_mb,
        max_body_bytes=int(max_file * 4 / 3 * 2 + MIB),
        voice_reply=not isinstance(pipeline.media, NoMedia),
        stream_grace_s=pipeline.config.turn_timeout_s,
        max_turns=settings.parley_api_max_turns or settings.parley_max_concurrent_turns,
        max_loop_lag_s=settings.parley_api_max_loop_lag_ms / 1000 if settings.parley_api_max_loop_lag_ms else None,
    )


def create_app(
    settings: Settings,
    pipeline: Pipeline,
    pool: asyncpg.Pool,
    *,
    extra_routers: Sequence[APIRouter] = (),
    config: ApiConfig | None = None,
    admin_pool: asyncpg.Pool | None = None,
) -> FastAPI:
    """The whole HTTP surface: /v1/*, /healthz, /readyz, /metrics, the playground at /, the admin page at
    /admin, and extras such as the Slack events endpoint. `admin_pool` (`parley_operator`'s) serves /v1/admin's
    reports across workspaces; without it `pool` must be an operator's pool."""
    state = ApiState(
        pipeline=pipeline,
        pool=pool,
        config=config or api_config(settings, pipeline),
        admin_pool=admin_pool,
        environment=environment_layer(settings),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watching = asyncio.create_task(state.loop_lag.watch(), name="parley-loop-lag")
        try:
            yield
            await state.drain(state.config.stream_grace_s)
        finally:
            watching.cancel()

    app = FastAPI(
        title="Parley",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        telemetry=observability.fastapi_telemetry(),
        openapi_tags=[
            {"name": "chat", "description": "Turns: send a message, get (or stream) the reply."},
            {"name": "sessions", "description": "Conversations of your workspace."},
            {"name": "memory", "description": "A person's profile and memories: see, edit, forget."},
            {"name": "admin", "description": "For operators (admin keys only): settings, limits, usage, audit."},
        ],
    )
    app.state.api = state
    app.state.status = cached_status(settings, pool=pool)
    errors.install(app)
    for router in (*all_routers(), web_router, admin_page_router, *extra_routers):
        app.include_router(router)
    app.add_middleware(errors.BodyLimit, max_bytes=state.config.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    observability.instrument_app(app)
    return app


async def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    playground_key: bool = False,
    sock: socket.socket | None = None,
    worker: int | None = None,
    start_gate: str | None = None,
) -> None:
    """Run until SIGTERM/SIGINT; the process then finishes its turns and returns. `sock` is the listening
    socket from the supervisor of several workers (bot/workers.py), and `worker` this one's number: only
    worker 0 runs maintenance, and the answers are spread over the workers (`WorkerAnswers`). At the first
    start, `start_gate` holds a loaded worker back until the others have loaded (`StartGate`). PARLEY_METRICS_PORT's
    listener is this process's, or with several workers the supervisor's."""
    with metrics_port(settings, host) if worker is None else contextlib.nullcontext():
        await _serve(settings, host=host, port=port, playground_key=playground_key, sock=sock, worker=worker,
                     start_gate=start_gate)


async def _serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    playground_key: bool,
    sock: socket.socket | None,
    worker: int | None,
    start_gate: str | None,
) -> None:
    maintenance = not worker
    async with running(settings, maintenance=maintenance) as pipeline, operator_pool(settings) as admin_pool:
        pool = pipeline.pool
        slack = slack_adapter(settings, pipeline, pool)
        app = create_app(
            settings, pipeline, pool, extra_routers=[slack.router] if slack else [], admin_pool=admin_pool,
            config=api_config(settings, pipeline, host=host),
        )
        if pipeline.model is None:
            log.warning(
                "No model (PARLEY_MODEL=none, or unset with no provider key and no [local] extra): "
                "turns answer with the configuration help"
            )
        hosts = allowed_hosts(host, settings.parley_allowed_hosts)
        if settings.parley_metrics_token is None and host not in LOOPBACK:
            log.info("/metrics on port %d answers no one: the server listens on %s and PARLEY_METRICS_TOKEN is not "
                     "set%s", port, host, " (PARLEY_METRICS_PORT serves them)" if settings.parley_metrics_port else "")
        loop = asyncio.get_running_loop()
        slack_door = slack.door_routes(loop) if slack else {}
        door = {**api_door_routes(app.state.api), **slack_door}
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        if start_gate:
            await asyncio.to_thread(pass_start_gate, start_gate)
        if playground_key:
            await revoke_named(pool, workspace_id=PLAYGROUND_WORKSPACE, name=PLAYGROUND_KEY_NAME)
            _, key = await create_api_key(pool, workspace_id=PLAYGROUND_WORKSPACE, name=PLAYGROUND_KEY_NAME)
            print(f"Playground: http://{shown}:{port}/#key={key}", flush=True)
        if sock is not None:
            # Listening before the ready line: a click on its link in the moment before uvicorn starts then
            # waits in the queue instead of being refused (uvicorn listens on the socket again, a no-op).
            sock.listen(BACKLOG)
        if maintenance:
            print(await ready_message(pool, host=host, shown=shown, port=port), flush=True)
        signing_in = asyncio.create_task(check_slack_tokens(slack)) if slack and maintenance else None
        sampling = asyncio.create_task(keep_sampling(ProcessSampler(str(worker or 0))), name="parley-process-metrics")
        # Everything loaded so far (models, NeMo, libraries) lives as long as the process: moved out of
        # the collector's sight, a full collection no longer walks it, which stalled every request for
        # up to hundreds of milliseconds under load.
        one_thread_per_native_pool()
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        bridge = LoopBridge(app, loop, door)
        front = bridge if worker is None else WorkerAnswers(bridge, worker=worker, hand_off=slack_door)
        config = uvicorn.Config(
            TrustedHostMiddleware(front, allowed_hosts=hosts),
            host=host,
            port=port,
            backlog=BACKLOG,
            http=ReadDeadlines,
            log_config=None,
            access_log=False,
            proxy_headers=True,
            timeout_graceful_shutdown=int(pipeline.config.turn_timeout_s) + 5,
            # The app's lifespan runs here, on the pipeline's loop, around the server: run by uvicorn it
            # crossed from the door's loop, and the crossing could still be pending when that loop
            # closed, which uvicorn reported as "ASGI 'lifespan' protocol appears unsupported".
            lifespan="off",
        )
        state: ApiState = app.state.api
        server = DrainingServer(config, on_exit=lambda: setattr(state, "draining", True))
        async with app.router.lifespan_context(app):
            await serve_in_thread(
                server, sockets=[sock] if sock is not None else None, loop_factory=door_loop_factory()
            )
        if signing_in is not None:
            signing_in.cancel()
        sampling.cancel()
        log.info("server stopped; %d turn(s) still running", len(state.turns))


@asynccontextmanager
async def operator_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """The pool behind /v1/admin (reports across workspaces), logged in as `parley_operator`, never the
    owner: connections open only while an admin request runs and close soon after, as the page is used rarely."""
    pool = await create_pool(
        await operator_database_uri(settings), min_size=0, max_size=2, application_name=APPLICATION_NAME,
        idle_close_s=5,
    )
    try:
        yield pool
    finally:
        await pool.close()


LOOPBACK = ("127.0.0.1", "localhost", "::1")
BACKLOG = 2048
"""Connections the listening socket queues (uvicorn's default)."""


def allowed_hosts(host: str, extra: Sequence[str]) -> list[str]:
    """Host headers the server answers: the address it listens on (and its loopback names), plus
    PARLEY_ALLOWED_HOSTS. A page whose DNS name was rebound to 127.0.0.1 sends its own name and gets 400.
    Listening on every address (0.0.0.0, as in a container) accepts any name unless PARLEY_ALLOWED_HOSTS
    lists them."""
    if host in ("0.0.0.0", "::", ""):
        return [*extra, *LOOPBACK] if extra else ["*"]
    names = [*LOOPBACK, "[::1]"] if host in LOOPBACK else [host]
    return [*names, *extra]


async def ready_message(pool: asyncpg.Pool, *, host: str, shown: str, port: int) -> str:
    """What `parley serve` prints once it answers: on a loopback address a link that signs the browser in
    to the `local` workspace once (adapters/web/app.py); elsewhere only the address, as a link carrying a
    credential does not belong in a server's log."""
    if host not in LOOPBACK:
        return (f"Parley is ready at http://{shown}:{port}/ (playground: sign in with a key from "
                f"`parley apikey create --workspace {PLAYGROUND_WORKSPACE}`)")
    await revoke_named(pool, workspace_id=PLAYGROUND_WORKSPACE, name=LINK_KEY_NAME)
    _, token = await create_api_key(pool, workspace_id=PLAYGROUND_WORKSPACE, name=LINK_KEY_NAME)
    return f"Parley is ready. Open the playground, signed in: http://{shown}:{port}/?token={token}"


class DrainingServer(uvicorn.Server):
    """uvicorn that marks the app as draining on the first signal and exits 0 after a clean stop."""

    def __init__(self, config: uvicorn.Config, *, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_exit = on_exit

    def handle_exit(self, sig: int, frame: Any) -> None:
        if not self.should_exit:
            log.info("signal %s: no new turns; finishing the ones in flight", signal.Signals(sig).name)
            self.on_exit()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Like uvicorn's, without re-raising the signal afterwards: shutdown already happened."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)


def slack_adapter(settings: Settings, pipeline: Pipeline, pool: asyncpg.Pool) -> SlackAdapter | None:
    """The adapter behind POST /slack/events when Slack is configured and installed; else say why not."""
    if settings.slack_signing_secret is None:
        log.info("Slack endpoint off: SLACK_SIGNING_SECRET not set")
        return None
    if settings.slack_bot_token is None and settings.slack_client_id is None:
        log.info("Slack endpoint off: SLACK_BOT_TOKEN not set (nor SLACK_CLIENT_ID for OAuth installs)")
        return None
    try:
        from adapters.slack.app import build_slack
        from bot.cli.slack import slack_config
    except ImportError as exc:
        log.warning("Slack endpoint off: the Slack adapter is not available (%s)", exc)
        return None
    log.info("Slack endpoint on: POST /slack/events")
    return build_slack(slack_config(settings), pipeline, pool)


async def check_slack_tokens(slack: SlackAdapter) -> None:
    """Name a token Slack refuses when serving starts, with where to get it again: over HTTP nothing else asks
    Slack about it before the first event, which then got no answer. The other doors keep serving, and the
    check runs beside the start, so a Slack out of reach delays nothing."""
    from adapters.slack.app import RefusedToken

    try:
        await slack.sign_in()
    except RefusedToken as refused:
        # Worded so that the log's secret scrubber, which masks what follows "TOKEN:" or "TOKEN=", leaves it whole.
        log.error("Slack refused %s (%s): %s. Slack's events get no answer until then.",
                  refused.variable, refused.error, refused.fix)


def door_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop for the door's loop where installed, as for the pipeline's (bot/cli/serve.py)."""
    from uvicorn.loops.auto import auto_loop_factory

    return auto_loop_factory()
