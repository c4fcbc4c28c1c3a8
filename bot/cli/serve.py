"""`parley serve`: the REST API, the playground and (when configured) the Slack events endpoint."""

from __future__ import annotations

from typing import Annotated

import typer

from bot.cli.common import load_settings, run
from bot.server import serve as serve_http

app = typer.Typer(help="Serve the HTTP API, the playground and Slack events.")


@app.callback(invoke_without_command=True)
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.", envvar="PARLEY_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", envvar="PORT")] = 8000,
    playground_key: Annotated[
        bool, typer.Option("--playground-key", help="Print a fresh API key for the local workspace's playground.")
    ] = False,
) -> None:
    """Serve until SIGTERM, then finish the turns in flight and exit. Starts without a model or Slack."""
    settings = load_settings()
    run(serve_http(settings, host=host, port=port, playground_key=playground_key))


if __name__ == "__main__":
    app()
