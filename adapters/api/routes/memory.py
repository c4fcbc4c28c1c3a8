"""Profile and memories of one person in the caller's workspace: see, edit, forget (properties 25, 49)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from adapters.api.deps import KeyDep, StateDep
from adapters.api.errors import ApiError, documented
from adapters.api.routes.chat import default_user
from adapters.api.schemas import USER_ID, Deleted, MemoriesOut, MemoryOut, ProfileOut
from core.apikeys import ApiKeyInfo
from core.memory import store
from core.memory.forget import forget_user
from core.memory.profiles import ProfileChanges, get_profile, update_profile
from core.memory.scope import person_scope
from core.models import Platform, UserKey

router = APIRouter(prefix="/v1", tags=["memory"])
UserId = Annotated[str | None, Query(pattern=USER_ID, description="Whose; default: the key's own user.")]


@router.get("/profile", response_model=ProfileOut, responses=documented(401, 422, 429))
async def read_profile(key: KeyDep, state: StateDep, user_id: UserId = None) -> ProfileOut:
    user = _user(key, user_id)
    return ProfileOut.of(user.user_id, await get_profile(state.pool, user))


@router.put("/profile", response_model=ProfileOut, responses=documented(401, 422, 429))
async def change_profile(changes: ProfileChanges, key: KeyDep, state: StateDep, user_id: UserId = None) -> ProfileOut:
    """Change the fields given; an empty string clears a field, an omitted one stays."""
    user = _user(key, user_id)
    return ProfileOut.of(user.user_id, await update_profile(state.pool, user, changes))


@router.get("/memories", response_model=MemoriesOut, responses=documented(401, 422, 429))
async def read_memories(key: KeyDep, state: StateDep, user_id: UserId = None) -> MemoriesOut:
    user = _user(key, user_id)
    async with person_scope(state.pool, user) as conn:
        rows = await store.list_memories(conn, user)
    return MemoriesOut(
        user_id=user.user_id,
        memories=[MemoryOut(id=m.id, content=m.content, kind=m.kind, created_at=m.created_at) for m in rows],
    )


@router.delete("/memories/{memory_id}", response_model=Deleted, responses=documented(401, 404, 422, 429))
async def forget_memory(
    memory_id: Annotated[int, Path(ge=1, le=2**63 - 1)], key: KeyDep, state: StateDep, user_id: UserId = None
) -> Deleted:
    user = _user(key, user_id)
    async with person_scope(state.pool, user) as conn:
        deleted = await store.delete_memory(conn, user, memory_id)
    if not deleted:
        raise ApiError(
            404,
            "memory_not_found",
            f"This person has no memory {memory_id}.",
            "List the memories with GET /v1/memories and use one of their ids.",
        )
    return Deleted(counts={"memories": 1})


@router.delete("/memories", response_model=Deleted, responses=documented(401, 422, 429))
async def forget_everything(key: KeyDep, state: StateDep, user_id: UserId = None) -> Deleted:
    """Forget the person: memories, profile, conversations, feedback and usage in this workspace."""
    return Deleted(counts=await forget_user(state.pool, _user(key, user_id)))


def _user(key: ApiKeyInfo, user_id: str | None) -> UserKey:
    return UserKey(platform=Platform.API, workspace_id=key.workspace_id, user_id=user_id or default_user(key))
