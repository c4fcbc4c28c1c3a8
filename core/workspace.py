"""Operator settings stored in Postgres, per workspace (channel_id '') and per channel.

core/channel_settings.py holds the vocabulary and which layer wins; this module reads and writes the
layers, each change together with its audit entry in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg
from cachetools import TTLCache

from core import audit
from core.channel_settings import KEYS, MODEL_SETTING_KEYS, answers_unmentioned, validate
from core.store.tenancy import TenantKey, scoped, tenant


@dataclass(frozen=True, kw_only=True)
class Layers:
    """The values stored for one channel and for its workspace (keys absent where nothing is set)."""

    channel: dict[str, Any] = field(default_factory=dict)
    workspace: dict[str, Any] = field(default_factory=dict)

    def nearest(self) -> dict[str, Any]:
        """The stored values in force for the channel: its own over its workspace's."""
        return {**self.workspace, **self.channel}

    def stored(self) -> list[tuple[str, Any, Literal["channel", "workspace"]]]:
        """(key, value in force, the layer it comes from) of each stored setting, in vocabulary order:
        what a chat command shows (settings left to the environment are not listed)."""
        return [
            (key, self.channel[key], "channel") if key in self.channel else (key, self.workspace[key], "workspace")
            for key in KEYS
            if key in self.channel or key in self.workspace
        ]


@dataclass(frozen=True, kw_only=True)
class WorkspaceOverrides:
    """What the stored layers change for a turn; None (or empty) leaves the environment's value."""

    system_prompt: str | None = None
    model: str | None = None
    model_settings: dict[str, Any] = field(default_factory=dict)
    tools: list[str] | None = None
    memory: bool | None = None
    voice_replies: bool | None = None
    guard_threshold: float | None = None


def overrides_of(layers: Layers) -> WorkspaceOverrides:
    values = layers.nearest()
    return WorkspaceOverrides(
        system_prompt=values.get("system_prompt"),
        model=values.get("model"),
        model_settings={k: values[k] for k in MODEL_SETTING_KEYS if k in values},
        tools=values.get("tools"),
        memory=values.get("memory"),
        voice_replies=values.get("voice_replies"),
        guard_threshold=values.get("guard_threshold"),
    )


async def load_layers(pool: asyncpg.Pool, workspace: TenantKey, channel_id: str = "") -> Layers:
    """Both layers in one query; `channel_id` '' reads the workspace's alone."""
    rows = await scoped(pool, workspace).fetch(
        """SELECT channel_id, key, value FROM workspace_settings
           WHERE platform = $1 AND workspace_id = $2 AND channel_id IN ('', $3)""",
        workspace.platform,
        workspace.workspace_id,
        channel_id,
    )
    return layers_of([(r["channel_id"], r["key"], r["value"]) for r in rows], channel_id)


def layers_of(rows: Sequence[tuple[str, str, str]], channel_id: str) -> Layers:
    """The layers from stored (channel id, key, JSON value) rows of a channel and its workspace."""
    channel = {key: json.loads(value) for where, key, value in rows if where != "" and channel_id}
    own = {key: json.loads(value) for where, key, value in rows if where == ""}
    return Layers(channel=channel, workspace=own)


class LayersCache:
    """The stored layers of recently seen channels, for a few seconds.

    Adapters ask for every channel message that does not mention Parley whether it should be answered
    anyway (`respond_without_mention`); the cache spares each such message a database round trip. This
    process's own writes drop a workspace's entries at once; another process's are seen within `ttl_s`."""

    def __init__(self, *, ttl_s: float = 10.0, maxsize: int = 10_000) -> None:
        self._entries: TTLCache[tuple[str, str, str], Layers] = TTLCache(maxsize=maxsize, ttl=ttl_s)

    async def layers(self, pool: asyncpg.Pool, workspace: TenantKey, channel_id: str) -> Layers:
        key = (str(workspace.platform), workspace.workspace_id, channel_id)
        found = self._entries.get(key)
        if found is None:
            found = self._entries[key] = await load_layers(pool, workspace, channel_id)
        return found

    def invalidate(self, workspace: TenantKey) -> None:
        platform, workspace_id = str(workspace.platform), workspace.workspace_id
        for key in [k for k in self._entries if k[:2] == (platform, workspace_id)]:
            self._entries.pop(key, None)


RECENT = LayersCache()
"""The process's cache; `set_override` and `unset_override` invalidate it."""


async def answers_unmentioned_in(pool: asyncpg.Pool, workspace: TenantKey, channel_id: str) -> bool:
    """Whether a message in `channel_id` that does not mention Parley is answered (cached briefly)."""
    return answers_unmentioned((await RECENT.layers(pool, workspace, channel_id)).nearest())


async def set_override(
    pool: asyncpg.Pool, workspace: TenantKey, key: str, value: Any, *, by: audit.Actor, channel_id: str = ""
) -> Any:
    """Store a checked value for the workspace or one of its channels; return the value it replaced."""
    value = validate(key, value)
    async with tenant(pool, workspace) as conn:
        old = await conn.fetchval(
            """WITH old AS (
                   SELECT value FROM workspace_settings
                   WHERE platform = $1 AND workspace_id = $2 AND channel_id = $3 AND key = $4 FOR UPDATE
               ), up AS (
                   INSERT INTO workspace_settings (platform, workspace_id, channel_id, key, value)
                   VALUES ($1, $2, $3, $4, $5::jsonb)
                   ON CONFLICT (platform, workspace_id, channel_id, key)
                   DO UPDATE SET value = EXCLUDED.value, updated_at = now()
               )
               SELECT value FROM old""",
            workspace.platform,
            workspace.workspace_id,
            channel_id,
            key,
            json.dumps(value),
        )
        previous = None if old is None else json.loads(old)
        await audit.record(
            conn, workspace, by=by, action="setting.set", target=_target(key, channel_id), old=previous, new=value
        )
    RECENT.invalidate(workspace)
    return previous


async def unset_override(
    pool: asyncpg.Pool, workspace: TenantKey, key: str, *, by: audit.Actor, channel_id: str = ""
) -> Any:
    """Remove a stored value (the next layer then wins); return it, None when nothing was set."""
    async with tenant(pool, workspace) as conn:
        old = await conn.fetchval(
            """DELETE FROM workspace_settings
               WHERE platform = $1 AND workspace_id = $2 AND channel_id = $3 AND key = $4 RETURNING value""",
            workspace.platform,
            workspace.workspace_id,
            channel_id,
            key,
        )
        if old is None:
            return None
        previous = json.loads(old)
        await audit.record(
            conn, workspace, by=by, action="setting.unset", target=_target(key, channel_id), old=previous
        )
    RECENT.invalidate(workspace)
    return previous


def _target(key: str, channel_id: str) -> str:
    return f"#{channel_id} {key}" if channel_id else key
