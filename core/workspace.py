"""Per-workspace overrides stored in Postgres: system prompt, model settings, enabled tools."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from core.models import WorkspaceKey
from core.store.tenancy import scoped

KNOWN_KEYS = frozenset(
    {"system_prompt", "temperature", "max_tokens", "top_p", "presence_penalty", "frequency_penalty", "tools"}
)
MODEL_SETTING_KEYS = ("temperature", "max_tokens", "top_p", "presence_penalty", "frequency_penalty")


@dataclass(frozen=True, kw_only=True)
class WorkspaceOverrides:
    system_prompt: str | None = None
    model_settings: dict[str, Any] = field(default_factory=dict)
    tools: list[str] | None = None


async def load_overrides(pool: asyncpg.Pool, workspace: WorkspaceKey) -> WorkspaceOverrides:
    rows = await scoped(pool, workspace).fetch(
        "SELECT key, value FROM workspace_settings WHERE platform = $1 AND workspace_id = $2",
        workspace.platform,
        workspace.workspace_id,
    )
    values = {r["key"]: json.loads(r["value"]) for r in rows}
    return WorkspaceOverrides(
        system_prompt=values.get("system_prompt"),
        model_settings={k: values[k] for k in MODEL_SETTING_KEYS if k in values},
        tools=values.get("tools"),
    )


async def set_override(pool: asyncpg.Pool, workspace: WorkspaceKey, key: str, value: Any) -> None:
    if key not in KNOWN_KEYS:
        raise ValueError(f"unknown workspace setting {key!r}; known: {', '.join(sorted(KNOWN_KEYS))}")
    await scoped(pool, workspace).execute(
        """INSERT INTO workspace_settings (platform, workspace_id, key, value) VALUES ($1, $2, $3, $4::jsonb)
           ON CONFLICT (platform, workspace_id, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()""",
        workspace.platform,
        workspace.workspace_id,
        key,
        json.dumps(value),
    )


async def unset_override(pool: asyncpg.Pool, workspace: WorkspaceKey, key: str) -> None:
    await scoped(pool, workspace).execute(
        "DELETE FROM workspace_settings WHERE platform = $1 AND workspace_id = $2 AND key = $3",
        workspace.platform,
        workspace.workspace_id,
        key,
    )
