"""`parley serve`: the REST API, the playground and (when configured) the Slack events endpoint."""

from __future__ import annotations

import errno
import logging
import os
import socket
from typing import Annotated

import typer

from bot import config_check
from bot.cli.common import load_settings, refuse_setting, run
from bot.database import start_early
from bot.workers import supervise
from core.telemetry import startup_phase

app = typer.Typer(help="Serve the HTTP API, the playground and Slack events.")


@app.callback(invoke_without_command=True)
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default PARLEY_HOST, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default PORT, 8000).")] = None,
    playground_key: Annotated[
        bool, typer.Option("--playground-key", help="Print a fresh API key for the local workspace's playground.")
    ] = False,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Server processes sharing the port (default PARLEY_WORKERS, 1).")
    ] = None,
    worker_fd: Annotated[int | None, typer.Option(hidden=True, help="Listening socket from the supervisor.")] = None,
    worker_index: Annotated[int, typer.Option(hidden=True, help="This worker's number; 0 runs maintenance.")] = 0,
    start_gate: Annotated[
        str | None, typer.Option(hidden=True, help="The first start's barrier from the supervisor.")
    ] = None,
) -> None:
    """Serve the HTTP API, the playground and Slack events.

    Serves until SIGTERM, then finishes the turns in flight and exits. Starts without a model or Slack.
    """
    settings = load_settings()
    if worker_fd is None:
        for problem in config_check.model_server_problems(settings, os.environ):
            logging.getLogger("parley.server").warning("%s", problem)
    host = host or settings.parley_host
    port = port or settings.port
    workers = workers or settings.parley_workers
    sock = socket.socket(fileno=worker_fd) if worker_fd is not None else claim_port(host, port)
    if workers > 1 and worker_fd is None:
        sock.close()  # the supervisor binds the port again, once per worker
        raise typer.Exit(supervise(settings, host=host, port=port, workers=workers, playground_key=playground_key))
    port = sock.getsockname()[1]  # port 0 picked one: the sign-in link names it
    start_early(settings)
    with startup_phase("imports"):
        from uvicorn.loops.auto import auto_loop_factory

        from bot.server import serve as serve_http
    # uvloop where installed, as `uvicorn app:app` would choose, rather than asyncio's pure-Python event
    # loop, whose scheduling and socket writes were a quarter of a worker's profile under load.
    run(
        serve_http(
            settings, host=host, port=port, playground_key=playground_key, sock=sock,
            worker=worker_index if worker_fd is not None else None, start_gate=start_gate,
        ),
        loop_factory=auto_loop_factory(),
    )


def claim_port(host: str, port: int) -> socket.socket:
    """Bind the serving address before anything loads; the server listens on this socket once ready.
    Left to uvicorn, a port in use was found only after the model, the database and the sign-in link
    (printed for a server that never answered), as uvicorn's own error line and exit 3."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        refuse_setting("PARLEY_HOST", host, f"not an address ({exc.strerror})", _HOST_FIX)
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRNOTAVAIL:
            refuse_setting("PARLEY_HOST", host, "not an address of this machine", _HOST_FIX)
        if exc.errno == errno.EACCES:
            refuse_setting("PORT", str(port), "ports below 1024 need root",
                           "choose a port above 1024 with --port or PORT")
        if exc.errno == errno.EADDRINUSE:
            refuse_setting("PORT", str(port), f"something already listens on {host}:{port} (another parley serve?)",
                           f"stop it (`ss -ltnp 'sport = :{port}'` shows what it is), or choose another port "
                           "with --port or PORT")
        raise
    return sock


_HOST_FIX = "use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface) with --host or PARLEY_HOST"


if __name__ == "__main__":
    app()
