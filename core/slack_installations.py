"""Where a Slack app is installed, with its tokens (tables `slack_installations` and `slack_bots`, migration 0004),
for Parley distributed to many workspaces over OAuth. Every instance sharing the database sees the same ones.

Each row keeps slack_sdk's own record of an installation or a bot as a JSON document, written and read by the
Slack adapter (adapters/slack/installation.py, which translates slack_sdk's objects); this module keeps the rows,
the newest of a workspace winning, each in the tenant scope of migration 0011. The tokens are stored as Slack
returns them: protect the database like the tokens themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from core.models import Platform, WorkspaceKey
from core.store.tenancy import Scoped, scoped


@dataclass(frozen=True, kw_only=True, slots=True)
class Site:
    """One Slack app (`client_id`) in one workspace, or in a whole Enterprise Grid org for an org-wide install."""

    client_id: str
    enterprise_id: str | None
    team_id: str | None
    is_enterprise_install: bool | None = False

    @property
    def team(self) -> str:
        """The team a row is keyed by: none for an org-wide install, which the enterprise alone names."""
        return "" if self.is_enterprise_install else (self.team_id or "")

    @property
    def enterprise(self) -> str:
        return self.enterprise_id or ""

    def db(self, pool: asyncpg.Pool) -> Scoped:
        """The pool in the tenant this site's rows belong to (migration 0011's policy): its team, or its org."""
        workspace = self.team or self.enterprise
        return scoped(pool, WorkspaceKey(platform=Platform.SLACK, workspace_id=workspace))


async def save_installation(pool: asyncpg.Pool, site: Site, *, user_id: str | None, document: str) -> None:
    """Keep an installation (`document`, JSON), made by `user_id`; an older one of the site stays, outranked."""
    await site.db(pool).execute(
        """INSERT INTO slack_installations
               (client_id, enterprise_id, team_id, user_id, is_enterprise_install, data)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb)""",
        site.client_id, site.enterprise, site.team, user_id, site.is_enterprise_install, document,
    )


async def save_bot(pool: asyncpg.Pool, site: Site, *, document: str) -> None:
    """Keep a bot (`document`, JSON: its token and scopes); the newest of a site is the one found."""
    await site.db(pool).execute(
        """INSERT INTO slack_bots (client_id, enterprise_id, team_id, is_enterprise_install, data)
           VALUES ($1, $2, $3, $4, $5::jsonb)""",
        site.client_id, site.enterprise, site.team, site.is_enterprise_install, document,
    )


async def newest_bot(pool: asyncpg.Pool, site: Site) -> str | None:
    """The site's newest bot (JSON), or None where the app is not installed."""
    document: str | None = await site.db(pool).fetchval(
        """SELECT data FROM slack_bots WHERE client_id = $1 AND enterprise_id = $2 AND team_id = $3
           ORDER BY installed_at DESC, id DESC LIMIT 1""",
        site.client_id, site.enterprise, site.team,
    )
    return document


async def newest_installation(pool: asyncpg.Pool, site: Site, *, user_id: str | None = None) -> str | None:
    """The site's newest installation (JSON), or the newest `user_id` made; None where there is none."""
    db = site.db(pool)
    document: str | None
    if user_id is None:
        document = await db.fetchval(
            """SELECT data FROM slack_installations
               WHERE client_id = $1 AND enterprise_id = $2 AND team_id = $3
               ORDER BY installed_at DESC, id DESC LIMIT 1""",
            site.client_id, site.enterprise, site.team,
        )
    else:
        document = await db.fetchval(
            """SELECT data FROM slack_installations
               WHERE client_id = $1 AND enterprise_id = $2 AND team_id = $3 AND user_id = $4
               ORDER BY installed_at DESC, id DESC LIMIT 1""",
            site.client_id, site.enterprise, site.team, user_id,
        )
    return document


async def delete_bots(pool: asyncpg.Pool, site: Site) -> None:
    """Forget every bot of the site (the app was uninstalled, or its tokens revoked)."""
    await site.db(pool).execute(
        "DELETE FROM slack_bots WHERE client_id = $1 AND enterprise_id = $2 AND team_id = $3",
        site.client_id, site.enterprise, site.team,
    )


async def delete_installations(pool: asyncpg.Pool, site: Site, *, user_id: str | None = None) -> None:
    """Forget the site's installations, or only those `user_id` made."""
    db = site.db(pool)
    if user_id is None:
        await db.execute(
            "DELETE FROM slack_installations WHERE client_id = $1 AND enterprise_id = $2 AND team_id = $3",
            site.client_id, site.enterprise, site.team,
        )
    else:
        await db.execute(
            """DELETE FROM slack_installations
               WHERE client_id = $1 AND enterprise_id = $2 AND team_id = $3 AND user_id = $4""",
            site.client_id, site.enterprise, site.team, user_id,
        )
