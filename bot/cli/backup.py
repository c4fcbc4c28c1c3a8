"""`parley db backup` and `parley db restore`: the whole database in one file.

A backup is pg_dump's custom format, made with the pg_dump that ships with the embedded Postgres
(pgserver), so it needs no PostgreSQL install. It is written beside its destination and renamed into
place only when complete: a full disk or a killed backup never leaves a file that looks like a backup.
A restore runs in one transaction (pg_restore's script piped into psql with --single-transaction): it
either replaces the database or leaves it as it was. Roles are not part of a one-database dump, so the
restore first makes Parley's three roles where they are missing, as the migrations would.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from core.store.embedded import postgres_tool
from core.store.roles import MAINTENANCE_ROLE, OPERATOR_ROLE
from core.store.tenancy import APP_ROLE

ERROR_LINES = 6
"""Lines of a failing pg_dump, pg_restore or psql's own error quoted to the operator."""
COUNTED = ("memories", "facts", "messages", "profiles")
"""What a restore reports having brought back, where the backup has such a table."""
ROLES_SQL = f"""
DO $$
DECLARE name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['{APP_ROLE}', '{MAINTENANCE_ROLE}', '{OPERATOR_ROLE}'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE', name);
        END IF;
        EXECUTE format('GRANT %I TO CURRENT_USER', name);
    END LOOP;
END
$$;
"""
"""Parley's roles, as migrations 0002, 0027 and 0028 make them: the backup's grants and owners name them."""
REPLACE_SQL = "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"
"""With --force: everything Parley keeps lives in `public`; dropped in the restore's own transaction."""


class BackupError(RuntimeError):
    """A backup or restore that did not happen, with what to do; nothing was changed."""


@dataclass(frozen=True, slots=True)
class Backup:
    path: Path
    size: int
    tables: int
    seconds: float


def backup(uri: str, target: Path) -> Backup:
    """Write the database at `uri` to `target`; an existing file there is replaced only by a complete backup."""
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent} is not a folder: make it first, or give another path")
    partial = target.with_name(f".{target.name}.partial")
    started = time.monotonic()
    try:
        _tool("pg_dump", "--format=custom", "--no-password", f"--file={partial}", f"--dbname={uri}")
        tables = _table_count(partial)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return Backup(path=target, size=target.stat().st_size, tables=tables, seconds=time.monotonic() - started)


async def in_use(uri: str) -> list[str]:
    """Other sessions on the database, as `application_name (user, pid N)`: a restore must not pull the
    tables from under a running Parley."""
    conn = await asyncpg.connect(uri)
    try:
        rows = await conn.fetch(
            "SELECT pid, usename, application_name FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend' ORDER BY pid"
        )
    finally:
        await conn.close()
    return [f"{row['application_name'] or 'a client'} ({row['usename']}, pid {row['pid']})" for row in rows]


async def held(uri: str) -> dict[str, int]:
    """What the database holds: its number of tables, and rows of the tables a person would miss."""
    conn = await asyncpg.connect(uri)
    try:
        names = {
            row["relname"]
            for row in await conn.fetch(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
            )
        }
        found = {"tables": len(names)}
        for table in COUNTED:
            if table in names:
                found[table] = int(await conn.fetchval(f"SELECT count(*) FROM {table}"))  # a name from COUNTED
    finally:
        await conn.close()
    return found


def check_backup(source: Path) -> None:
    """Refuse a file that is no backup before the database is touched."""
    if not source.is_file():
        raise BackupError(f"{source} does not exist (or is not a file)")
    try:
        _tool("pg_restore", "--list", str(source))
    except BackupError as exc:
        raise BackupError(f"{source} is not a backup made by `parley db backup` (pg_dump's custom format): {exc}") \
            from None


def restore(uri: str, source: Path, *, replace: bool) -> None:
    """Load `source` into the database at `uri` in one transaction; `replace` drops what is there first."""
    with tempfile.TemporaryFile() as script_errors:
        script = subprocess.Popen(
            [postgres_tool("pg_restore"), "--file=-", str(source)], stdout=subprocess.PIPE, stderr=script_errors
        )
        assert script.stdout is not None
        prepare = (REPLACE_SQL if replace else "") + ROLES_SQL
        loaded = subprocess.run(
            [postgres_tool("psql"), "--no-psqlrc", "--quiet", "--no-password", "--single-transaction",
             "--set=ON_ERROR_STOP=1", f"--command={prepare}", "--file=-", f"--dbname={uri}"],
            stdin=script.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False,
        )
        script.stdout.close()
        script.wait()
        script_errors.seek(0)
        script_error = script_errors.read()
    # psql first: when it stops at an error, pg_restore fails too, on the pipe psql no longer reads
    if loaded.returncode != 0:
        raise BackupError(f"the restore was rolled back, the database is as it was: {_last_lines(loaded.stderr)}")
    if script.returncode != 0:
        raise BackupError(f"pg_restore could not read {source}: {_last_lines(script_error)}")


def _table_count(archive: Path) -> int:
    listing = _tool("pg_restore", "--list", str(archive))
    return sum(1 for line in listing.splitlines() if " TABLE DATA " in line)


def _tool(name: str, *args: str) -> str:
    """Run a Postgres client program; its own error, if it fails, as a BackupError."""
    done = subprocess.run([postgres_tool(name), *args], capture_output=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{name}: {_last_lines(done.stderr)}")
    return done.stdout.decode(errors="replace")


def _last_lines(stderr: bytes) -> str:
    lines = [line for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    return "\n  ".join(lines[-ERROR_LINES:]) or "(no message)"
