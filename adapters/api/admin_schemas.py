"""Bodies of the admin API (/v1/admin), split by direction. Admin keys only."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.channel_settings import KEYS

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
    amount: float = Field(ge=0, le=1e12)


class UsageRowOut(BaseModel):
    day: date
    platform: str
    workspace_id: str
    channel_id: str
    user_id: str
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    unpriced_calls: int = Field(description="Calls of unknown cost: counted in tokens, not in cost.")


class UsageOut(BaseModel):
    since: datetime
    rows: list[UsageRowOut]


class AuditOut(BaseModel):
    id: int
    platform: str
    workspace_id: str
    actor: str
    door: str
    action: str
    target: str
    old_value: Any
    new_value: Any
    created_at: datetime


class FeedbackDayOut(BaseModel):
    day: date
    up: int
    down: int


class RatedTurnOut(BaseModel):
    turn_id: int
    platform: str
    workspace_id: str
    channel_id: str
    created_at: datetime
    score: int
    ratings: int
    reply: str


class FeedbackReport(BaseModel):
    days: list[FeedbackDayOut]
    worst: list[RatedTurnOut]


class RefusalCategoryOut(BaseModel):
    rail: str
    stage: str
    refusals: int
    false_positives: int


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
    categories: list[RefusalCategoryOut]
    events: list[RefusalOut]


class EvalRunOut(BaseModel):
    id: int
    suite: str
    model: str | None
    release: str | None
    passed: bool
    failing: list[str]
    finished_at: datetime
    scores: dict[str, float | None]
