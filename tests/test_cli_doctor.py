"""`parley doctor`: a real call per component, against the fakes, and the fix for each failure."""

from __future__ import annotations

import json
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from pydantic import SecretStr

from adapters.slack.app import BOT_SCOPES
from bot import settings as settings_module
from bot.doctor import SERVICE_ROLES, SPOKEN, Failed, check_database, check_slack, check_speech, run_checks
from bot.settings import Settings
from core.store.migrations import migrate
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_api import FakeSlack
from tests.test_cli import parley


@pytest.fixture(scope="module")
def data() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pd", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def fake_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack().start()
    yield fake
    fake.stop()


def test_doctor_checks_every_component_with_a_real_call(
    data: Path, openai_server: FakeOpenAI, fake_slack: FakeSlack
) -> None:
    workspace = fake_slack.add_workspace()
    env = {"PARLEY_MODEL": "openai:some-model", "OPENAI_BASE_URL": openai_server.base_url,
           "SLACK_BOT_TOKEN": workspace.token, "SLACK_SIGNING_SECRET": "0123456789abcdef",
           "SLACK_API_URL": fake_slack.base_url}
    result = parley("doctor", "--json", data=data, env=env, timeout=600)
    report = json.loads(result.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert list(checks) == ["configuration", "model", "database", "migrations", "embeddings", "ocr", "speech", "slack"]
    assert [c for c in checks.values() if not c["ok"]] == []
    assert result.returncode == 0 and report["ok"] is True
    assert len(openai_server.requests) == 1
    assert [call.method for call in fake_slack.calls if call.token == workspace.token] == ["auth.test"]


@pytest.mark.usefixtures("allow_model_requests")
async def test_a_broken_component_is_a_row_with_its_fix_not_the_end_of_the_report(pg_uri: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, parley_model="openai:m", openai_base_url=f"http://127.0.0.1:{closed}/v1", database_url=pg_uri
    )
    _, model, database = await run_checks(settings, cheap=True)
    assert not model.ok and model.detail == f"model_unreachable: connect to 127.0.0.1:{closed} refused"
    assert "OPENAI_BASE_URL" in model.fix
    assert database.ok and "pgvector" in database.detail


async def test_without_a_model_or_the_local_extra_the_doctor_says_what_to_set(
    pg_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings_module, "local_extra_installed", lambda: False)
    [_, model, _] = await run_checks(Settings(_env_file=None, database_url=pg_uri), cheap=True)  # type: ignore[call-arg]
    assert not model.ok and "PARLEY_MODEL" in model.fix


async def test_with_models_turned_off_the_doctor_says_so(pg_uri: str) -> None:
    settings = Settings(_env_file=None, database_url=pg_uri, parley_model="none")  # type: ignore[call-arg]
    [_, model, _] = await run_checks(settings, cheap=True)
    assert not model.ok and model.detail == "PARLEY_MODEL=none turns models off" and "PARLEY_MODEL" in model.fix


async def test_the_slack_row_names_the_scopes_the_app_lacks_and_how_to_add_them(fake_slack: FakeSlack) -> None:
    workspace = fake_slack.add_workspace(scopes=tuple(s for s in BOT_SCOPES if s not in ("users:read", "groups:read")))
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, slack_bot_token=SecretStr(workspace.token), slack_api_url=fake_slack.base_url
    )
    with pytest.raises(Failed) as failed:
        await check_slack(settings)
    assert str(failed.value).endswith("but the app lacks the scopes groups:read, users:read")
    assert "OAuth & Permissions" in failed.value.fix and "reinstall" in failed.value.fix


async def test_the_slack_row_passes_a_token_with_every_scope_parley_uses(fake_slack: FakeSlack) -> None:
    workspace = fake_slack.add_workspace(scopes=BOT_SCOPES)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, slack_bot_token=SecretStr(workspace.token), slack_api_url=fake_slack.base_url
    )
    assert await check_slack(settings) == "signed in as parley in Fake Team"


@asynccontextmanager
async def database_of_an_ordinary_owner(pg_uri: str) -> AsyncIterator[tuple[str, str]]:
    """A new database owned by a new role with CREATEROLE but not SUPERUSER, as managed Postgres gives:
    (its name, its URL)."""
    name = f"owner_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_uri)
    parts = urlsplit(pg_uri)
    try:
        await admin.execute(f"CREATE ROLE {name} LOGIN CREATEROLE")
        await admin.execute(f"CREATE DATABASE {name} OWNER {name}")
        yield name, urlunsplit(parts._replace(netloc=f"{name}@{parts.netloc.rsplit('@', 1)[-1]}", path=f"/{name}"))
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"DROP OWNED BY {name}")
        await admin.execute(f"DROP ROLE IF EXISTS {name}")
        await admin.close()


def administrator_sql(fix: str) -> str:
    """The statements a fix names, in its order."""
    return " ".join(re.findall(r"`([^`]+)`", fix))


async def owner_check(uri: str) -> Failed:
    with pytest.raises(Failed) as failed:
        await check_database(Settings(_env_file=None, database_url=SecretStr(uri)))  # type: ignore[call-arg]
    return failed.value


async def as_superuser(pg_uri: str, database: str, statement: str) -> None:
    admin = await asyncpg.connect(urlunsplit(urlsplit(pg_uri)._replace(path=f"/{database}")))
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


async def test_an_owner_that_is_not_a_superuser_is_told_it_may_not_migrate_yet(pg_uri: str) -> None:
    async with database_of_an_ordinary_owner(pg_uri) as (name, uri):
        failed = await owner_check(uri)
    assert str(failed).endswith(f"but {name} may not migrate it yet")
    assert failed.fix.endswith(" (docs/deployment.md, 'Postgres with pgvector')")


async def test_a_database_without_pgvector_is_told_the_services_administrator_creates_it(pg_uri: str) -> None:
    async with database_of_an_ordinary_owner(pg_uri) as (name, uri):
        await as_superuser(pg_uri, name, f"GRANT {', '.join(SERVICE_ROLES)} TO {name} WITH ADMIN OPTION")
        failed = await owner_check(uri)
    assert failed.fix.startswith(
        "As the service's administrator role (RDS: a member of rds_superuser, Cloud SQL: cloudsqlsuperuser, Azure:"
        " azure_pg_admin, Neon: neon_superuser) or, on a server of your own, a superuser, run"
        f" `CREATE EXTENSION vector;` in the database {name} (a managed service creates it from its allowed"
        " extensions; some want vector switched on first, in a server parameter or their console)."
    )
    assert administrator_sql(failed.fix) == "CREATE EXTENSION vector;"


async def test_roles_another_owner_made_are_granted_by_their_maker(pg_uri: str) -> None:
    async with database_of_an_ordinary_owner(pg_uri) as (name, uri):
        await as_superuser(pg_uri, name, "CREATE EXTENSION vector")
        failed = await owner_check(uri)
    assert failed.fix.startswith(
        "As the role that made parley_app, parley_maintenance, parley_operator (the owner of the other Parley"
        " database on this server) or a superuser, run"
        f" `GRANT parley_app, parley_maintenance, parley_operator TO {name} WITH ADMIN OPTION;`."
    )


async def test_an_owner_missing_two_things_is_told_both_in_the_order_to_run_them(pg_uri: str) -> None:
    async with database_of_an_ordinary_owner(pg_uri) as (name, uri):
        failed = await owner_check(uri)
    assert administrator_sql(failed.fix) == (
        f"CREATE EXTENSION vector; GRANT parley_app, parley_maintenance, parley_operator TO {name} WITH ADMIN OPTION;"
    )


async def test_an_administrator_that_is_not_a_superuser_cannot_grant_set_on_parleys_settings(pg_uri: str) -> None:
    """Why no migration fixes a parley.* setting in a function's SET clause (migration 0037): that needs this
    grant, and a CREATEROLE role, as managed services hand out, is refused it."""
    async with database_of_an_ordinary_owner(pg_uri) as (name, uri):
        owner = await asyncpg.connect(uri)
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied for parameter"):
                await owner.execute(f"GRANT SET ON PARAMETER parley.platform TO {name}")
        finally:
            await owner.close()


async def test_after_what_the_doctor_names_is_run_the_owner_migrates_and_the_row_passes(pg_uri: str) -> None:
    async with database_of_an_ordinary_owner(pg_uri) as (name, uri):
        failed = await owner_check(uri)
        await as_superuser(pg_uri, name, administrator_sql(failed.fix))
        assert len(await migrate(uri)) > 30
        settings = Settings(_env_file=None, database_url=SecretStr(uri))  # type: ignore[call-arg]
        assert (await check_database(settings)).startswith("Postgres ")


async def test_the_slack_row_names_an_app_level_token_slack_refuses(fake_slack: FakeSlack) -> None:
    workspace = fake_slack.add_workspace()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, slack_bot_token=SecretStr(workspace.token), slack_app_token=SecretStr("xapp-1-A0-other-app"),
        slack_api_url=fake_slack.base_url,
    )
    with pytest.raises(Failed) as failed:
        await check_slack(settings)
    assert str(failed.value).endswith("but Slack refused SLACK_APP_TOKEN (invalid_auth)")
    assert "App-Level Tokens" in failed.value.fix


async def test_the_slack_row_says_the_app_level_token_opens_socket_mode(fake_slack: FakeSlack) -> None:
    workspace = fake_slack.add_workspace()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, slack_bot_token=SecretStr(workspace.token), slack_app_token=SecretStr(workspace.app_token),
        slack_api_url=fake_slack.base_url,
    )
    assert await check_slack(settings) == "signed in as parley in Fake Team; the app-level token opens Socket Mode"


def test_a_data_folder_that_cannot_be_written_is_a_row_with_its_fix_not_a_crash(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")

    result = parley("doctor", "--json", data=tmp_path, env={"PARLEY_DATA_DIR": str(blocker / "data")}, timeout=600)

    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert result.returncode == 1, result.stderr
    assert "PARLEY_DATA_DIR" in checks["configuration"]["detail"]
    assert "could not start: Not a directory" in checks["database"]["detail"]
    assert "PARLEY_DATA_DIR" in checks["database"]["fix"]
    assert checks["migrations"]["fix"] == "fix the database first"


async def test_the_speech_row_shows_what_was_said_beside_what_was_heard() -> None:
    row = await check_speech(Settings(_env_file=None))  # type: ignore[call-arg]
    assert row.startswith(f"espeak-ng and pocketsphinx: said {SPOKEN!r} (") and "), heard '" in row
