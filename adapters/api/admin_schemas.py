"""Bodies of the admin API (/v1/admin), split by direction. Admin keys only."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.admin_reports import FeedbackDay, RatedTurn, RefusalCategory, UsageDay
from core.channel_settings import KEYS
from core.limits import MAX_AMOUNT

ID = r"^[A-Za-z0-9_.@:#-]{1,128}$"
OPTIONAL_ID = r"^[A-Za-z0-9_.@:#-]{0,128}$"
SettingKey = Literal[KEYS]  # type: ignore[valid-type]


class SettingValue(BaseModel):
    key: str
    value: Any = Field(description="The effective value; null where no layer sets it (`builtin` says what applies).")
    source: Literal["channel", "workspace", "environment", "default"]
    description: str
    builtin: str | None = Field(default=None, description="What applies when nothing sets the key.")


class SettingsOut(BaseModel):
    platform: str
    workspace_id: str
    channel_id: str = Field(description="'' for the workspace's own settings.")
    settings: list[SettingValue]


class SettingChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform: str = Field(pattern=ID, examples=["slack"])
    workspace_id: str = Field(pattern=ID, examples=["T0123"])
    channel_id: str = Field(default="", pattern=OPTIONAL_ID, description="A channel id; '' for the workspace.")
    key: SettingKey
    value: Any = Field(description="JSON of the key's kind: a string, number, boolean or list of tool names.")


class LimitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform: str = Field(pattern=ID, examples=["slack"])
    workspace_id: str = Field(pattern=ID, examples=["T0123"])
    scope: Literal["person", "channel", "workspace"]
    subject: str = Field(
        default="", pattern=OPTIONAL_ID, description="The person's or channel's id; '' for a workspace."
    )
    metric: Literal["tokens", "usd"] = Field(description="usd counts only turns whose cost is known.")
    period: Literal["day", "month"] = Field(description="UTC days and calendar months.")
    amount: float = Field(ge=0, le=MAX_AMOUNT)


class UsageOut(BaseModel):
    since: datetime
    rows: list[UsageDay] = Field(description="Calls of unknown cost count in tokens, not in cost.")


class FeedbackReport(BaseModel):
    days: list[FeedbackDay]
    worst: list[RatedTurn]


class RefusalOut(BaseModel):
    id: int
    platform: str
    workspace_id: str
    stage: str
    rail: str
    action: str
    reason: str
    excerpt: str = Field(description="The start of the message, masked before it was stored.")
    created_at: datetime
    false_positive: bool


class RefusalReport(BaseModel):
    categories: list[RefusalCategory]
    events: list[RefusalOut]
