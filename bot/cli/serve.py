"""`parley serve`: the REST API, the playground and (when configured) the Slack events endpoint."""

from __future__ import annotations

import socket
from typing import Annotated

import typer

from bot.cli.common import load_settings, run
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
    """Serve until SIGTERM, then finish the turns in flight and exit. Starts without a model or Slack."""
    settings = load_settings()
    from bot.server import serve as serve_http

    host = host or settings.parley_host
    port = port or settings.port
    workers = workers or settings.parley_workers
    if workers > 1 and worker_fd is None:
        raise typer.Exit(supervise(settings, host=host, port=port, workers=workers, playground_key=playground_key))
    start_early(settings)
    with startup_phase("imports"):
        from uvicorn.loops.auto import auto_loop_factory

        from bot.server import serve as serve_http
    sock = socket.socket(fileno=worker_fd) if worker_fd is not None else None
    # uvloop where installed, as `uvicorn app:app` would choose, rather than asyncio's pure-Python event
    # loop, whose scheduling and socket writes were a quarter of a worker's profile under load.
    run(
        serve_http(
            settings, host=host, port=port, playground_key=playground_key, sock=sock,
            worker=worker_index if worker_fd is not None else None, start_gate=start_gate,
        ),
        loop_factory=auto_loop_factory(),
    )


if __name__ == "__main__":
    app()
