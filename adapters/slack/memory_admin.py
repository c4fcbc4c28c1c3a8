"""`MemoryAdmin` on the memory area's functions (core.memory): profiles, memory counts, forgetting."""

from __future__ import annotations

import asyncpg
from pydantic import ValidationError

from core.memory.forget import forget_user
from core.memory.profiles import ProfileChanges, get_profile, update_profile
from core.memory.scope import person_scope
from core.memory.store import list_memories
from core.models import UserKey
from core.steps import Profile


class CoreMemoryAdmin:
    def __init__(self, pool: asyncpg.Pool) -> None:
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
        async with person_scope(self.pool, user) as conn:
            return len(await list_memories(conn, user))

    async def forget(self, user: UserKey) -> dict[str, int]:
        return await forget_user(self.pool, user)
