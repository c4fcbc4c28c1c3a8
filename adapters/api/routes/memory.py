"""Profile and facts of one person in the caller's workspace: see, edit, forget (properties 25, 49).

`/v1/memories` lists what Parley knows, as facts: the person's own, the workspace's notes and, with
`channel_id`, that channel's notes; `history=true` adds superseded and expired versions.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from adapters.api.deps import KeyDep, StateDep, acting_for
from adapters.api.errors import ApiError, documented
from adapters.api.schemas import USER_ID, Deleted, FactOut, MemoriesOut, ProfileOut
from core.apikeys import ApiKeyInfo
from core.memory.facts_view import remove_fact, visible_facts
from core.memory.forget import forget_user
from core.memory.profiles import ProfileChanges, get_profile, update_profile
from core.models import Platform, UserKey

router = APIRouter(prefix="/v1", tags=["memory"])
UserId = Annotated[
    str | None,
    Query(pattern=USER_ID, description="Whose; default: the key's own user. A key bound to one user gets 403 for "
                                       "any other."),
]
ChannelId = Annotated[
    str | None, Query(pattern=USER_ID, description="Also this channel's notes (those told for the channel).")
]


@router.get("/profile", response_model=ProfileOut, responses=documented(401, 403, 422, 429))
async def read_profile(key: KeyDep, state: StateDep, user_id: UserId = None) -> ProfileOut:
    user = _user(key, user_id)
    return ProfileOut.of(user.user_id, await get_profile(state.pool, user))


@router.put("/profile", response_model=ProfileOut, responses=documented(401, 403, 422, 429))
async def change_profile(changes: ProfileChanges, key: KeyDep, state: StateDep, user_id: UserId = None) -> ProfileOut:
    """Change the fields given; an empty string clears a field, an omitted one stays."""
    user = _user(key, user_id)
    return ProfileOut.of(user.user_id, await update_profile(state.pool, user, changes))


@router.get("/memories", response_model=MemoriesOut, responses=documented(401, 403, 422, 429))
async def read_memories(
    key: KeyDep, state: StateDep, user_id: UserId = None, channel_id: ChannelId = None, history: bool = False
) -> MemoriesOut:
    """The facts in force (newest first); with `history`, superseded and expired ones too."""
    user = _user(key, user_id)
    found = await visible_facts(state.pool, user, channel_id=channel_id or "", history=history)
    return MemoriesOut(user_id=user.user_id, memories=[FactOut.of(f) for f in found])


@router.delete("/memories/{memory_id}", response_model=Deleted, responses=documented(401, 403, 404, 422, 429))
async def forget_memory(
    memory_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    key: KeyDep,
    state: StateDep,
    user_id: UserId = None,
    channel_id: ChannelId = None,
) -> Deleted:
    """Remove one fact with its history: the person's own, a workspace note, or a note of `channel_id`."""
    user = _user(key, user_id)
    if await remove_fact(state.pool, user, channel_id=channel_id or "", fact_id=memory_id) is None:
        raise ApiError(
            404,
            "memory_not_found",
            f"This person has no fact {memory_id} they can see.",
            "List the facts with GET /v1/memories (add channel_id for a channel's notes) and use one of their ids.",
        )
    return Deleted(counts={"facts": 1})


@router.delete("/memories", response_model=Deleted, responses=documented(401, 403, 422, 429))
async def forget_everything(key: KeyDep, state: StateDep, user_id: UserId = None) -> Deleted:
    """Forget the person: memories, profile, conversations, feedback and usage in this workspace."""
    return Deleted(counts=await forget_user(state.pool, _user(key, user_id)))


def _user(key: ApiKeyInfo, user_id: str | None) -> UserKey:
    return UserKey(platform=Platform.API, workspace_id=key.workspace_id, user_id=acting_for(key, user_id))
