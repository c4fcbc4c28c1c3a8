"""`parley doctor`: one real call per component — the model answers, the database and pgvector are
there, migrations are applied, the embedding model embeds, OCR reads, speech goes out and comes back
in, Slack and Discord accept their credentials — each with the fix when it fails.

Each check runs on its own with a time limit and never raises: a broken component is a row of the
report, not the end of it.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING

from bot.settings import Settings

if TYPE_CHECKING:
    import asyncpg

CHECK_TIMEOUT_S = 120.0
"""Per check: the first model load or embedded-database start can take a minute on a small machine."""


@dataclass(frozen=True, kw_only=True)
class Check:
    """One component: whether it works, what was seen, and what to do when it does not."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


class Failed(Exception):
    """A check that ran and found a problem; `fix` is what the operator does about it."""

    def __init__(self, detail: str, fix: str) -> None:
        super().__init__(detail)
        self.fix = fix


Probe = Callable[[Settings], Awaitable[str]]


async def run_checks(
    settings: Settings,
    *,
    cheap: bool = False,
    on_start: Callable[[str], None] | None = None,
    pool: asyncpg.Pool | None = None,
) -> list[Check]:
    """Every check that applies to these settings, in order; `cheap`: the model and the database only.
    With `pool` (a serving process's, as the app role) the database check uses it instead of connecting
    as the owner: a server never opens a superuser connection."""
    database: Probe = check_database if pool is None else partial(check_pool, pool)
    probes: list[tuple[str, Probe, str]] = [
        ("model", check_model, "set PARLEY_MODEL and its provider's key or base URL (README, 'Models')"),
        ("database", database, "start Postgres or unset DATABASE_URL for the embedded one" if settings.database_url
         else "the embedded Postgres lives in PARLEY_DATA_DIR: see the result for what stopped it"),
    ]
    if not cheap:
        probes += [
            ("migrations", check_migrations, "run `parley db migrate` to see yoyo's error"),
            ("embeddings", check_embeddings, "check PARLEY_EMBEDDING_MODEL; the default model ships with Parley"),
            ("ocr", check_ocr, "install tesseract (apt-get install tesseract-ocr tesseract-ocr-eng)"),
            ("speech", check_speech, "install espeak-ng and ffmpeg, or set ELEVENLABS_API_KEY"),
        ]
        if settings.slack_bot_token is not None:
            probes.append(("slack", check_slack, "check SLACK_BOT_TOKEN (xoxb-...) on your Slack app's OAuth page"))
        if settings.discord_token is not None:
            probes.append(("discord", check_discord, "check DISCORD_TOKEN on the Discord developer portal's Bot page"))
    results = [configuration(settings)]
    for name, probe, fix in probes:
        if name == "migrations" and not any(c.ok for c in results if c.name == "database"):
            results.append(Check(name=name, ok=False, detail="not checked: the database did not answer",
                                 fix="fix the database first"))
            continue
        if on_start is not None:
            on_start(name)
        results.append(await _run(name, probe, fix, settings))
    return results


def cached_status(
    settings: Settings, *, ttl_s: float = 60.0, pool: asyncpg.Pool | None = None
) -> Callable[[], Awaitable[list[Check]]]:
    """The cheap checks (configuration, one tiny model request, the database) for the playground's header,
    at most once a minute however often pages load; concurrent callers share one run."""
    import time

    last: list[tuple[float, asyncio.Task[list[Check]]]] = []

    async def status() -> list[Check]:
        now = time.monotonic()
        if not last or now - last[0][0] > ttl_s:
            last[:] = [(now, asyncio.ensure_future(run_checks(settings, cheap=True, pool=pool)))]
        return await asyncio.shield(last[0][1])

    return status


def configuration(settings: Settings) -> Check:
    """The start-up checks of bot.config_check, as the first row (the doctor runs even when they fail)."""
    import os

    from bot.config_check import problems

    found = problems(settings, os.environ)
    if not found:
        return Check(name="configuration", ok=True, detail="every setting valid")
    return Check(name="configuration", ok=False, detail="; ".join(f"{p.variable}={p.value}: {p.what}" for p in found),
                 fix="; ".join(p.fix for p in found))


async def _run(name: str, probe: Probe, fix: str, settings: Settings) -> Check:
    try:
        detail = await asyncio.wait_for(probe(settings), CHECK_TIMEOUT_S)
    except Failed as exc:
        return Check(name=name, ok=False, detail=str(exc), fix=exc.fix)
    except TimeoutError:
        return Check(name=name, ok=False, detail=f"no answer within {CHECK_TIMEOUT_S:g} s", fix=fix)
    except Exception as exc:
        from core.pipeline import describe_error

        return Check(name=name, ok=False, detail=describe_error(exc), fix=fix)
    return Check(name=name, ok=True, detail=detail)


async def check_model(settings: Settings) -> str:
    """One tiny request to the model turns use: PARLEY_MODEL, or the local demo model that answers when
    none is set (through the server this process already runs for it, else one started for the check).
    Checked as configured, the default said "PARLEY_MODEL is not set" beside a model that answered."""
    from bot.local_model import NO_MODEL, local_name, with_default_model

    chosen = settings.parley_model
    settings = with_default_model(settings)
    if not settings.parley_model:
        detail = "PARLEY_MODEL=none turns models off" if chosen == NO_MODEL else "PARLEY_MODEL is not set"
        raise Failed(detail, "set PARLEY_MODEL, e.g. openai:gpt-4.1-mini with OPENAI_API_KEY")
    if local_name([settings.parley_model]) is None:
        return await _ask_model(settings)
    from rich.console import Console

    from bot.local_model import gguf_path, local_server, running_server
    from core.llm import ModelNotConfigured

    try:
        gguf = gguf_path(settings.parley_model)
    except ModelNotConfigured as exc:
        raise Failed(str(exc), "use PARLEY_MODEL=local, or a provider model and its key") from exc
    running = running_server(gguf)
    if running is not None:
        return await _ask_model(settings, local_base_url=running)
    log_file = settings.parley_data_dir / "local-model.log"
    async with local_server(gguf, log_file=log_file, console=Console(quiet=True)) as base_url:
        return await _ask_model(settings, local_base_url=base_url)


async def _ask_model(settings: Settings, *, local_base_url: str | None = None) -> str:
    from pydantic_ai.direct import model_request
    from pydantic_ai.exceptions import AgentRunError
    from pydantic_ai.messages import ModelRequest, TextPart
    from pydantic_ai.settings import ModelSettings

    from bot.app import model_config
    from core.llm import ModelFactory
    from core.pipeline import OPERATOR_FIXES, model_failure

    config = model_config(settings, local_base_url=local_base_url)
    model = ModelFactory(replace(config, fallbacks=(), retries=0)).build()
    try:
        response = await model_request(
            model, [ModelRequest.user_text_prompt("Reply with the word OK.")],
            model_settings=ModelSettings(max_tokens=5, timeout=30),
        )
    except AgentRunError as exc:
        code, cause = model_failure(exc)
        raise Failed(f"{code}: {cause}", OPERATOR_FIXES.get(code, "check the model server's log")) from exc
    text = "".join(p.content for p in response.parts if isinstance(p, TextPart)).strip()
    return f"{settings.parley_model} answered {text[:30]!r}"


async def check_database(settings: Settings) -> str:
    """Connect, and find pgvector installed or installable."""
    import asyncpg

    from bot.database import REFUSED_LOGIN, database_uri

    uri = await asyncio.to_thread(database_uri, settings)
    try:
        connection = await asyncpg.connect(uri, timeout=10)
    except REFUSED_LOGIN as exc:
        raise Failed(f"the server refused DATABASE_URL: {exc}",
                     "correct the user, password and database name in DATABASE_URL") from None
    try:
        described = await _describe_database(connection, settings)
        await _check_owner_rights(connection, described)
        return described
    finally:
        await connection.close()


SERVICE_ROLES = ("parley_app", "parley_maintenance", "parley_operator")
ADMINISTRATOR = (
    "the service's administrator role (RDS: a member of rds_superuser, Cloud SQL: cloudsqlsuperuser, Azure: "
    "azure_pg_admin, Neon: neon_superuser) or, on a server of your own, a superuser"
)
"""Who may create pgvector and give CREATEROLE: on a managed Postgres no customer is a superuser, and its
administrator role (CREATEROLE, CREATEDB) is enough (docs/deployment.md, 'Postgres with pgvector')."""


async def _check_owner_rights(connection: asyncpg.Connection, described: str) -> None:
    """What a DATABASE_URL user that is not a superuser (most managed Postgres) needs done once, and by whom,
    named before a migration fails on it. Creating pgvector (not a trusted extension) is tried in a
    transaction that is rolled back, as services allow it their own ways (an allow-list, a console switch).
    The service roles take CREATEROLE to make, or the ADMIN option where they exist already, which their
    maker gives. Nothing else needs a superuser: no migration fixes a setting only a superuser may (migration
    0037)."""
    me = await connection.fetchrow(
        "SELECT current_user AS name, current_database() AS database, rolsuper, rolcreaterole FROM pg_roles"
        " WHERE rolname = current_user"
    )
    if me is None or me["rolsuper"]:
        return
    fixes: list[str] = []
    trial = connection.transaction()
    await trial.start()
    try:
        installed = await connection.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'vector'")
        if not installed and not await _allowed(connection, "CREATE EXTENSION vector"):
            fixes.append(
                f"As {ADMINISTRATOR}, run `CREATE EXTENSION vector;` in the database {me['database']} (a managed"
                " service creates it from its allowed extensions; some want vector switched on first, in a server"
                " parameter or their console)."
            )
    finally:
        await trial.rollback()
    roles = await connection.fetch(
        "SELECT rolname, pg_has_role(current_user, oid, 'MEMBER WITH ADMIN OPTION') AS admin FROM pg_roles"
        " WHERE rolname = ANY($1::text[]) ORDER BY array_position($1::text[], rolname::text)", list(SERVICE_ROLES))
    if not me["rolcreaterole"] and len(roles) < len(SERVICE_ROLES):
        fixes.append(
            f"As {ADMINISTRATOR}, run `ALTER ROLE {me['name']} CREATEROLE;`, or make that administrator role"
            " DATABASE_URL's user."
        )
    # Roles are the cluster's: another database's owner may have made them (a second Parley on one server).
    foreign = [r["rolname"] for r in roles if not r["admin"]]
    if foreign:
        fixes.append(
            f"As the role that made {', '.join(foreign)} (the owner of the other Parley database on this server)"
            f" or a superuser, run `GRANT {', '.join(foreign)} TO {me['name']} WITH ADMIN OPTION;`."
        )
    if fixes:
        raise Failed(
            f"{described}, but {me['name']} may not migrate it yet",
            f"{' '.join(fixes)} (docs/deployment.md, 'Postgres with pgvector')",
        )


async def _allowed(connection: asyncpg.Connection, statement: str) -> bool:
    """Whether this user may run `statement`, tried in a savepoint of the caller's transaction."""
    import asyncpg

    try:
        async with connection.transaction():
            await connection.execute(statement)
    except asyncpg.InsufficientPrivilegeError:
        return False
    return True


async def check_pool(pool: asyncpg.Pool, settings: Settings) -> str:
    """The database check on a serving process's own pool."""
    async with pool.acquire(timeout=10) as connection:
        return await _describe_database(connection, settings)


async def _describe_database(connection: asyncpg.Connection, settings: Settings) -> str:
    server = await connection.fetchval("SHOW server_version")
    vector = await connection.fetchval(
        "SELECT coalesce((SELECT extversion FROM pg_extension WHERE extname = 'vector'),"
        " (SELECT default_version FROM pg_available_extensions WHERE name = 'vector'))"
    )
    if vector is None:
        raise Failed(f"Postgres {server} without pgvector", "install pgvector on the database server")
    where = "embedded" if settings.database_url is None else "DATABASE_URL"
    return f"Postgres {server} ({where}), pgvector {vector}"


async def check_migrations(settings: Settings) -> str:
    """Read the migration table: it works, and says what a start will apply."""
    from bot.database import database_uri
    from core.store.migrations import pending_sync

    waiting, total = await asyncio.to_thread(lambda: pending_sync(database_uri(settings)))
    if waiting:
        return f"{len(waiting)} of {total} to apply; serving commands apply them at start (or `parley db migrate`)"
    return f"all {total} applied"


async def check_embeddings(settings: Settings) -> str:
    from core.memory.embedding_backend import build_embedder, embed_one

    embedder = build_embedder(settings.parley_embedding_model)
    vector = await embed_one(embedder, "Parley checks its memory.", input_type="document")
    return f"{settings.parley_embedding_model}: {len(vector)} dimensions"


async def check_ocr(settings: Settings) -> str:
    """Render a word and read it back."""
    from PIL import Image, ImageDraw, ImageFont

    from bot.app import build_media
    from core.models import Attachment

    image = Image.new("RGB", (420, 120), "white")
    ImageDraw.Draw(image).text((20, 25), "PARLEY 42", fill="black", font=ImageFont.load_default(size=56))
    png = io.BytesIO()
    image.save(png, format="PNG")
    [read] = await build_media(settings).extract([Attachment(name="doctor.png", data=png.getvalue())])
    if read.error or not read.text or "PARLEY" not in read.text.upper():
        raise Failed(f"read {read.text or read.error!r} instead of 'PARLEY 42'",
                     "install tesseract-ocr and tesseract-ocr-eng")
    return "read a rendered word back"


SPOKEN = "Hello, this is a test."
"""What the speech check says and then transcribes."""


async def check_speech(settings: Settings) -> str:
    """Speak a sentence (speech out), then transcribe that audio (speech in)."""
    from bot.app import build_media
    from core.models import Attachment

    media = build_media(settings)
    audio, fmt = await media.speak(SPOKEN)
    [heard] = await media.extract([Attachment(name=f"doctor.{fmt}", data=audio)])
    engine = "ElevenLabs" if settings.elevenlabs_api_key else "espeak-ng and pocketsphinx"
    if heard.error or not heard.text:
        raise Failed(f"spoke {len(audio)} bytes of {fmt}, but heard nothing back ({heard.error})",
                     "install pocketsphinx (pip) and ffmpeg, or set ELEVENLABS_API_KEY")
    # Offline recognition hears a synthetic voice loosely ('oh this is a death'): said beside heard, that reads as
    # the round trip it is rather than as a fault.
    return f"{engine}: said {SPOKEN!r} ({len(audio) // 1024} KiB of {fmt}), heard {heard.text[:40]!r}"


async def check_slack(settings: Settings) -> str:
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    from adapters.slack.app import BOT_SCOPES, DEFAULT_API_URL, WHERE_TO_GET_AGAIN

    assert settings.slack_bot_token is not None
    client = AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url or DEFAULT_API_URL,
        timeout=15,
    )
    try:
        answer = await client.auth_test()
    except SlackApiError as exc:
        raise Failed(f"Slack refused the token ({exc.response.get('error')})",
                     WHERE_TO_GET_AGAIN["SLACK_BOT_TOKEN"]) from exc
    signed_in = f"signed in as {answer.get('user')} in {answer.get('team')}"
    if settings.slack_app_token is not None:
        try:
            await client.apps_connections_open(app_token=settings.slack_app_token.get_secret_value())
        except SlackApiError as exc:
            raise Failed(f"{signed_in}, but Slack refused SLACK_APP_TOKEN ({exc.response.get('error')})",
                         WHERE_TO_GET_AGAIN["SLACK_APP_TOKEN"]) from exc
        signed_in += "; the app-level token opens Socket Mode"
    # Slack names a token's scopes on every answer; an app made from an older manifest lacks the newer ones.
    granted = answer.headers.get("x-oauth-scopes")
    missing = [scope for scope in BOT_SCOPES if granted is not None and scope not in granted.split(",")]
    if missing:
        raise Failed(f"{signed_in}, but the app lacks the scopes {', '.join(missing)}",
                     "add them under OAuth & Permissions > Bot Token Scopes (adapters/slack/manifest.yml lists "
                     "them all), then reinstall the app to the workspace")
    return signed_in


async def check_discord(settings: Settings) -> str:
    import discord

    from adapters.discord.config import DEFAULT_API_BASE
    from adapters.discord.invite import fetch_application_id

    assert settings.discord_token is not None
    try:
        application = await fetch_application_id(
            settings.discord_token.get_secret_value(), api_base=settings.discord_api_base or DEFAULT_API_BASE
        )
    except discord.LoginFailure as exc:
        raise Failed("Discord refused the token", "reset the token on the developer portal's Bot page") from exc
    return f"signed in; application {application}"
