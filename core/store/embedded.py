"""The embedded Postgres (pgserver) used when no DATABASE_URL is given.

pgserver listens on a Unix socket inside its data folder; the socket path must stay under the
kernel's 107-byte limit, so a too-deep data folder is refused with a clear message.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any

SOCKET_LIMIT = 107
_servers: dict[Path, Any] = {}
_starting = threading.Lock()
"""One start at a time: a command may start the server early in a thread while it imports the rest."""


class EmbeddedPostgresError(RuntimeError):
    pass


def start_embedded(data_dir: Path) -> str:
    """Start (or reuse) the embedded server whose data lives under `data_dir`; return its URI.

    The data survives restarts: the folder is kept, only the server process stops with ours.
    """
    pgdata = (data_dir / "pg").resolve()
    if len(str(pgdata / ".s.PGSQL.5432")) >= SOCKET_LIMIT:
        raise EmbeddedPostgresError(
            f"PARLEY_DATA_DIR is too deep for Postgres' socket path ({pgdata}); choose a shorter folder"
        )
    with _starting:
        if pgdata not in _servers:
            with warnings.catch_warnings():
                # pgserver asks for the user's runtime folder on import; without XDG_RUNTIME_DIR (any
                # container) platformdirs warns on every command and falls back to /tmp, which is fine.
                warnings.simplefilter("ignore", UserWarning)
                import pgserver

            pgdata.parent.mkdir(parents=True, exist_ok=True)
            server = pgserver.get_server(pgdata, cleanup_mode="stop")
            server.psql("SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS vector;")
            _servers[pgdata] = server
    uri: str = _servers[pgdata].get_uri()
    return uri
