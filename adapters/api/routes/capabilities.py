"""GET /v1/capabilities: what this server can do, so clients can adapt."""

from __future__ import annotations

from fastapi import APIRouter

from adapters.api.deps import KeyDep, StateDep
from adapters.api.errors import documented
from adapters.api.schemas import MAX_ATTACHMENTS, Capabilities

router = APIRouter(prefix="/v1", tags=["meta"])


@router.get("/capabilities", response_model=Capabilities, responses=documented(401, 429))
async def capabilities(key: KeyDep, state: StateDep) -> Capabilities:
    pipeline = state.pipeline
    return Capabilities(
        model=pipeline.config.model_name if pipeline.model is not None else None,
        model_notice=pipeline.config.model_notice,
        streaming=True,
        attachments=["image", "document", "audio"],
        max_file_mb=state.config.max_file_mb,
        max_attachments=MAX_ATTACHMENTS,
        voice_reply=state.config.voice_reply,
        tools=pipeline.registry.names,
        memory=state.memory_enabled,
        rate_limit_per_min=state.config.rate_per_min,
    )
