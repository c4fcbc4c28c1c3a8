"""Bolt's OAuth installation store and state store in Postgres (migration 0004), for distributing
Parley to many workspaces. Every instance sharing the database sees the same installations.

The tokens are stored as Slack returns them: protect the database like the tokens themselves.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import datetime, timedelta
from logging import Logger
from typing import Any

import asyncpg
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from core.models import Platform, WorkspaceKey
from core.store.tenancy import scoped

_log = logging.getLogger("parley.slack.installation")
BOT_FIELDS = (
    "app_id",
    "bot_token",
    "bot_id",
    "bot_user_id",
    "bot_scopes",
    "bot_refresh_token",
    "bot_token_expires_at",
)


class PostgresInstallationStore(AsyncInstallationStore):
    """Installations and bots of one Slack app (`client_id`); the newest row of a workspace wins."""

    def __init__(self, pool: asyncpg.Pool, *, client_id: str) -> None:
        self.pool = pool
        self.client_id = client_id

    @property
    def logger(self) -> Logger:
        return _log

    async def async_save(self, installation: Installation) -> None:
        await scoped(self.pool, _scope(installation.enterprise_id, installation.team_id,
                                       installation.is_enterprise_install)).execute(
            """INSERT INTO slack_installations
                   (client_id, enterprise_id, team_id, user_id, is_enterprise_install, data)
               VALUES ($1, $2, $3, $4, $5, $6::jsonb)""",
            self.client_id,
            installation.enterprise_id or "",
            _team(installation.team_id, installation.is_enterprise_install),
            installation.user_id,
            installation.is_enterprise_install,
            _dump(installation.to_dict_for_copying()),
        )
        if installation.bot_token:
            await self.async_save_bot(installation.to_bot())

    async def async_save_bot(self, bot: Bot) -> None:
        await scoped(self.pool, _scope(bot.enterprise_id, bot.team_id, bot.is_enterprise_install)).execute(
            """INSERT INTO slack_bots (client_id, enterprise_id, team_id, is_enterprise_install, data)
               VALUES ($1, $2, $3, $4, $5::jsonb)""",
            self.client_id,
            bot.enterprise_id or "",
            _team(bot.team_id, bot.is_enterprise_install),
            bot.is_enterprise_install,
            _dump(bot.to_dict_for_copying()),
        )

    async def async_find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ) -> Bot | None:
        data = await scoped(self.pool, _scope(enterprise_id, team_id, is_enterprise_install)).fetchval(
            """SELECT data FROM slack_bots WHERE client_id = $1 AND enterprise_id = $2 AND team_id = $3
               ORDER BY installed_at DESC, id DESC LIMIT 1""",
            self.client_id,
            enterprise_id or "",
            _team(team_id, is_enterprise_install),
        )
        return Bot(**json.loads(data)) if data is not None else None

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        team = _team(team_id, is_enterprise_install)
        db = scoped(self.pool, _scope(enterprise_id, team_id, is_enterprise_install))
        if user_id is None:
            data = await db.fetchval(
                """SELECT data FROM slack_installations
                   WHERE client_id = $1 AND enterprise_id = $2 AND team_id = $3
                   ORDER BY installed_at DESC, id DESC LIMIT 1""",
                self.client_id,
                enterprise_id or "",
                team,
            )
        else:
            data = await db.fetchval(
                """SELECT data FROM slack_installations
                   WHERE client_id = $1 AND enterprise_id = $2 AND team_id = $3 AND user_id = $4
                   ORDER BY installed_at DESC, id DESC LIMIT 1""",
                self.client_id,
                enterprise_id or "",
                team,
                user_id,
            )
        if data is None:
            return None
        values: dict[str, Any] = json.loads(data)
        bot = await self.async_find_bot(
            enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=is_enterprise_install
        )
        if bot is not None and bot.bot_token != values.get("bot_token"):
            newer = bot.to_dict_for_copying()
            values.update({k: newer.get(k) for k in BOT_FIELDS})
        return Installation(**values)

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await scoped(self.pool, _scope(enterprise_id, team_id, False)).execute(
            "DELETE FROM slack_bots WHERE client_id = $1 AND enterprise_id = $2 AND team_id = $3",
            self.client_id,
            enterprise_id or "",
            team_id or "",
        )

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        db = scoped(self.pool, _scope(enterprise_id, team_id, False))
        if user_id is None:
            await db.execute(
                "DELETE FROM slack_installations WHERE client_id = $1 AND enterprise_id = $2 AND team_id = $3",
                self.client_id,
                enterprise_id or "",
                team_id or "",
            )
        else:
            await db.execute(
                """DELETE FROM slack_installations
                   WHERE client_id = $1 AND enterprise_id = $2 AND team_id = $3 AND user_id = $4""",
                self.client_id,
                enterprise_id or "",
                team_id or "",
                user_id,
            )


class PostgresOAuthStateStore(AsyncOAuthStateStore):
    """One-time OAuth `state` values with an expiry, shared by every instance."""

    def __init__(self, pool: asyncpg.Pool, *, expiration_seconds: int = 600) -> None:
        self.pool = pool
        self.expiration = timedelta(seconds=expiration_seconds)

    @property
    def logger(self) -> Logger:
        return _log

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        state = secrets.token_urlsafe(24)
        await self.pool.execute("SELECT parley_issue_oauth_state($1, $2::interval)", state, self.expiration)
        return state

    async def async_consume(self, state: str) -> bool:
        found: bool = await self.pool.fetchval("SELECT parley_consume_oauth_state($1)", state)
        return found


def _scope(enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None) -> WorkspaceKey:
    """The tenant a row belongs to (migration 0011's policy): its team, or its org for an org-wide install."""
    workspace = _team(team_id, is_enterprise_install) or enterprise_id or ""
    return WorkspaceKey(platform=Platform.SLACK, workspace_id=workspace)


def _team(team_id: str | None, is_enterprise_install: bool | None) -> str:
    """An org-wide install is keyed by the enterprise alone."""
    return "" if is_enterprise_install else (team_id or "")


def _dump(values: dict[str, Any]) -> str:
    return json.dumps(values, default=_jsonable)


def _jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in an installation")
