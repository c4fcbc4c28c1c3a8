"""Profiles (properties 25, 49): how one person in one workspace wants to be answered.

Changed by the agent's `update_profile` tool ("from now on answer briefly") and by
`parley profile set`; read on every turn for the prompt context.
"""

from __future__ import annotations

import json
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.guard.masking import scrub
from core.memory.scope import person_scope
from core.models import UserKey
from core.seams import Profile

AnswerStyle = Literal["short", "detailed"]
PROFILE_COLUMNS: tuple[str, ...] = (
    "display_name",
    "language",
    "timezone",
    "answer_style",
    "voice_replies",
    "about",
)


class ProfileChanges(BaseModel):
    """Fields to change; None leaves a field as it is, an empty string clears it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    display_name: str | None = Field(default=None, max_length=100, description="What to call the person.")
    language: str | None = Field(default=None, max_length=40, description="Language to answer in, e.g. German.")
    timezone: str | None = Field(default=None, description="IANA time zone, e.g. Europe/Berlin.")
    answer_style: AnswerStyle | None = Field(default=None, description="short or detailed answers.")
    voice_replies: bool | None = Field(default=None, description="Reply with audio as well as text.")
    about: str | None = Field(default=None, max_length=2000, description="Free notes the person gave about themselves.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin") from exc
        return value

    def assignments(self) -> dict[str, object]:
        """Column -> new value for the fields given; text is masked, empty text becomes NULL."""
        out: dict[str, object] = {}
        for name in PROFILE_COLUMNS:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, str):
                value = scrub(value) if name == "about" else value
                out[name] = value or None
            else:
                out[name] = value
        return out


async def get_profile(pool: asyncpg.Pool, user: UserKey) -> Profile:
    async with person_scope(pool, user) as conn:
        row = await conn.fetchrow(
            "SELECT display_name, language, timezone, answer_style, voice_replies, about, extra FROM profiles"
            " WHERE platform = $1 AND workspace_id = $2 AND user_id = $3",
            user.platform,
            user.workspace_id,
            user.user_id,
        )
    return profile_of(row) if row is not None else Profile()


async def update_profile(pool: asyncpg.Pool, user: UserKey, changes: ProfileChanges) -> Profile:
    """Apply `changes` (creating the profile on first use) and return the profile as stored."""
    values = changes.assignments()
    columns = list(values)
    inserts = ", ".join(f"${i + 4}" for i in range(len(columns)))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
    sql = (
        f"INSERT INTO profiles (platform, workspace_id, user_id{''.join(', ' + c for c in columns)})"
        f" VALUES ($1, $2, $3{', ' + inserts if columns else ''})"
        " ON CONFLICT (platform, workspace_id, user_id) DO UPDATE SET "
        + (updates + ", " if columns else "")
        + "updated_at = now()"
        " RETURNING display_name, language, timezone, answer_style, voice_replies, about, extra"
    )
    async with person_scope(pool, user) as conn:
        row = await conn.fetchrow(sql, user.platform, user.workspace_id, user.user_id, *values.values())
    return profile_of(row) if row is not None else Profile()


def profile_of(row: asyncpg.Record) -> Profile:
    """A stored profile's row (its columns as `get_profile` reads them) as the prompt's `Profile`."""
    extra = row["extra"]
    if isinstance(extra, str):
        extra = json.loads(extra)
    return Profile(
        display_name=row["display_name"],
        language=row["language"],
        timezone=row["timezone"],
        answer_style=row["answer_style"],
        voice_replies=row["voice_replies"],
        about=row["about"],
        extra={str(k): str(v) for k, v in (extra or {}).items()},
    )
