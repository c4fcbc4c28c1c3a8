"""Faults that must lose nothing: the database going away and coming back under load."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from core.models import Reaction
from core.store.embedded import start_embedded, stop_embedded
from core.store.migrations import migrate_sync
from core.store.pool import create_pool
from tests.fakes.openai_server import FakeOpenAI
from tests.pipeline_helpers import RecordingSink, build_pipeline, message, settings_for

pytestmark = pytest.mark.usefixtures("allow_model_requests")


class Postgres:
    """A separate embedded server this test may stop and start."""

    def __init__(self, folder: Path) -> None:
        self.uri = start_embedded(folder)
        migrate_sync(self.uri)
        from core.store.embedded import _servers

        self.server = _servers[(folder / "pg").resolve()]

    def _ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]  # defined by a factory at import

        pg_ctl(list(args), pgdata=self.server.pgdata, user=self.server.system_user)

    def stop(self) -> None:
        self._ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        pgdata = self.server.pgdata
        self._ctl("-w", "-o", '-h ""', "-o", f"-k {pgdata}", "-l", f"{pgdata}/log", "start")


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    folder = Path(tempfile.mkdtemp(prefix="pf", dir="/tmp"))
    yield Postgres(folder)
    stop_embedded(folder)
    shutil.rmtree(folder, ignore_errors=True)


async def test_database_outage_under_load_degrades_then_recovers_losing_nothing(
    postgres: Postgres, openai_server: FakeOpenAI
) -> None:
    pool = await create_pool(postgres.uri, max_size=4)
    pipeline = build_pipeline(settings_for(openai_server, parley_rate_user_per_min=10_000), pool)
    workspace = f"w-{uuid.uuid4().hex[:8]}"
    before = await pipeline.run(message("before", workspace=workspace), RecordingSink(message_ids=["m-before"]))
    assert before.turn_id is not None

    postgres.stop()
    during = await asyncio.gather(*(pipeline.run(message(f"during {i}", workspace=workspace)) for i in range(8)))
    assert all(r.error == "database_unavailable" for r in during)
    assert all("database" in r.text for r in during)
    queued = await pipeline.react(Reaction(platform="console", workspace_id=workspace, user_id="U1",
                                           platform_message_id="m-before", emoji="+1"))
    assert queued is None and len(pipeline.outbox.pending) == 1

    postgres.start()
    assert await pipeline.outbox.drain(timeout=15)
    after = await asyncio.gather(*(pipeline.run(message(f"after {i}", workspace=workspace)) for i in range(8)))
    assert all(r.error is None for r in after)
    stored = await pool.fetch("SELECT content FROM messages WHERE workspace_id = $1 AND role = 'user'", workspace)
    assert sorted(r["content"] for r in stored) == sorted(["before", *(f"after {i}" for i in range(8))])
    score = await pool.fetchval("SELECT score FROM feedback WHERE turn_id = $1", before.turn_id)
    assert score == 1
    await pool.close()


FULL_DISK_FOR = """CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    IF NEW.workspace_id = '{workspace}' THEN
        RAISE EXCEPTION 'could not extend file "base/5/16384": No space left on device' USING ERRCODE = 'disk_full';
    END IF;
    RETURN NEW; END $$;
CREATE TRIGGER {name} BEFORE INSERT ON turns FOR EACH ROW EXECUTE FUNCTION {name}()"""
"""Postgres' own disk_full error (SQLSTATE 53100), raised as a table that cannot grow raises it, for one workspace."""


async def test_a_full_database_disk_is_named_to_the_person_and_the_operator(
    pool: asyncpg.Pool, openai_server: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    workspace, name = f"w-{uuid.uuid4().hex[:8]}", f"full_disk_{uuid.uuid4().hex[:8]}"
    await pool.execute(FULL_DISK_FOR.format(name=name, workspace=workspace))
    try:
        with caplog.at_level(logging.ERROR, logger="parley.pipeline"):
            reply = await build_pipeline(settings_for(openai_server), pool).run(message("hi", workspace=workspace))
    finally:
        await pool.execute(f"DROP TRIGGER {name} ON turns; DROP FUNCTION {name}()")
    assert reply.error == "storage_full" and "disk is full" in reply.text
    logged = [r.getMessage() for r in caplog.records]
    assert any("storage_full" in line and "free space" in line for line in logged), logged
