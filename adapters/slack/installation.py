"""Bolt's OAuth installation store and state store, for distributing Parley to many workspaces.

Translation only: slack_sdk's `Installation` and `Bot` become JSON documents and back, and each question goes to
core's stores (core/slack_installations.py, core/oauth_states.py), which keep them in Postgres.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from logging import Logger
from typing import Any

from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from core import oauth_states, slack_installations
from core.slack_installations import Site
from core.store.pool import Pool

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
    """Installations and bots of one Slack app (`client_id`); the newest of a workspace wins."""

    def __init__(self, pool: Pool, *, client_id: str) -> None:
        self.pool = pool
        self.client_id = client_id

    @property
    def logger(self) -> Logger:
        return _log

    def _site(self, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None) -> Site:
        return Site(client_id=self.client_id, enterprise_id=enterprise_id, team_id=team_id,
                    is_enterprise_install=is_enterprise_install)

    async def async_save(self, installation: Installation) -> None:
        site = self._site(installation.enterprise_id, installation.team_id, installation.is_enterprise_install)
        await slack_installations.save_installation(
            self.pool, site, user_id=installation.user_id, document=_dump(installation.to_dict_for_copying())
        )
        if installation.bot_token:
            await self.async_save_bot(installation.to_bot())

    async def async_save_bot(self, bot: Bot) -> None:
        site = self._site(bot.enterprise_id, bot.team_id, bot.is_enterprise_install)
        await slack_installations.save_bot(self.pool, site, document=_dump(bot.to_dict_for_copying()))

    async def async_find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ) -> Bot | None:
        document = await slack_installations.newest_bot(
            self.pool, self._site(enterprise_id, team_id, is_enterprise_install)
        )
        return Bot(**json.loads(document)) if document is not None else None

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        document = await slack_installations.newest_installation(
            self.pool, self._site(enterprise_id, team_id, is_enterprise_install), user_id=user_id
        )
        if document is None:
            return None
        values: dict[str, Any] = json.loads(document)
        bot = await self.async_find_bot(
            enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=is_enterprise_install
        )
        if bot is not None and bot.bot_token != values.get("bot_token"):
            newer = bot.to_dict_for_copying()
            values.update({k: newer.get(k) for k in BOT_FIELDS})
        return Installation(**values)

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await slack_installations.delete_bots(self.pool, self._site(enterprise_id, team_id, False))

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        await slack_installations.delete_installations(
            self.pool, self._site(enterprise_id, team_id, False), user_id=user_id
        )


class PostgresOAuthStateStore(AsyncOAuthStateStore):
    """One-time OAuth `state` values with an expiry, shared by every instance."""

    def __init__(self, pool: Pool, *, expiration_seconds: int = 600) -> None:
        self.pool = pool
        self.expiration = timedelta(seconds=expiration_seconds)

    @property
    def logger(self) -> Logger:
        return _log

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        return await oauth_states.issue(self.pool, self.expiration)

    async def async_consume(self, state: str) -> bool:
        return await oauth_states.consume(self.pool, state)


def _dump(values: dict[str, Any]) -> str:
    return json.dumps(values, default=_jsonable)


def _jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in an installation")
