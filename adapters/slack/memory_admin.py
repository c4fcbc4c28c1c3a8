"""`MemoryAdmin` on the memory area's functions (core.memory): profiles, facts, forgetting."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import ValidationError

from core.memory.facts_view import fact_line, remove_fact, visible_facts
from core.memory.forget import forget_user
from core.memory.profiles import ProfileChanges, get_profile, update_profile
from core.models import UserKey
from core.seams import Profile
from core.store.pool import Pool


class CoreMemoryAdmin:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def profile(self, user: UserKey) -> Profile:
        return await get_profile(self.pool, user)

    async def set_profile(self, user: UserKey, field: str, value: str) -> Profile:
        try:
            changes = ProfileChanges.model_validate({field: value})
        except ValidationError as exc:
            raise ValueError("; ".join(str(e["msg"]) for e in exc.errors())) from exc
        return await update_profile(self.pool, user, changes)

    async def memory_count(self, user: UserKey) -> int:
        found = await visible_facts(self.pool, user, channel_id="", history=False)
        now = datetime.now(UTC)
        return sum(1 for f in found if f.scope == "person" and f.in_force(now))

    async def memory_lines(self, user: UserKey, *, channel_id: str, history: bool) -> list[str]:
        now = datetime.now(UTC)
        found = await visible_facts(self.pool, user, channel_id=channel_id, history=history)
        return [fact_line(f, now=now) for f in found]

    async def remove_fact(self, user: UserKey, *, channel_id: str, fact_id: int) -> bool:
        return await remove_fact(self.pool, user, channel_id=channel_id, fact_id=fact_id) is not None

    async def forget(self, user: UserKey) -> dict[str, int]:
        return await forget_user(self.pool, user)
