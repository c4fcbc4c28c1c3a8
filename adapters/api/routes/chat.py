"""POST /v1/chat and /v1/chat/stream: one turn, answered whole or as server-sent events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Annotated

from fastapi import APIRouter, Header
from sse_starlette import EventSourceResponse, ServerSentEvent

from adapters.api.deps import ApiState, KeyDep, StateDep, refuse_when_draining
from adapters.api.errors import ApiError, documented
from adapters.api.schemas import ChatRequest, ChatResponse, DeltaEvent
from core.apikeys import ApiKeyInfo
from core.models import Inbound, Platform, Reply, ToolProgress
from core.sessions import API_CHANNEL, Session, new_session_id, open_session

router = APIRouter(prefix="/v1", tags=["chat"])
ERRORS = documented(401, 409, 413, 422, 429, 503)
IdempotencyDep = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Retries of one message carry the same key: it is answered once, also across a crash "
        "of the server (a retry of a turn whose server died is answered anew).",
    ),
]
STREAM_EVENT = {
    "type": "object",
    "description": "One server-sent event (OpenAPI 3.1: this schema describes each event of the stream).",
    "required": ["event", "data"],
    "properties": {
        "event": {"enum": ["delta", "done"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "delta: {\"text\": ...}; done: the ChatResponse object.",
        },
    },
}


@router.post("/chat", response_model=ChatResponse, responses=ERRORS, summary="Send a message, get the reply")
async def chat(body: ChatRequest, key: KeyDep, state: StateDep, idempotency: IdempotencyDep = None) -> ChatResponse:
    refuse_when_draining(state)
    session, inbound = await _turn_input(body, key, state, idempotency)
    task = asyncio.create_task(state.pipeline.run(inbound, ApiSink(streams=False)))
    state.track(task)
    reply = await asyncio.shield(task)
    if reply.duplicate:
        raise already_answered(session.session_id)
    return ChatResponse.of(reply, session.session_id)


@router.post(
    "/chat/stream",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "`delta` events carrying {text}, then one `done` event carrying the ChatResponse.",
            "content": {"text/event-stream": {"schema": STREAM_EVENT}},
        },
        **ERRORS,
    },
    summary="Send a message, stream the reply",
)
async def chat_stream(
    body: ChatRequest, key: KeyDep, state: StateDep, idempotency: IdempotencyDep = None
) -> EventSourceResponse:
    refuse_when_draining(state)
    session, inbound = await _turn_input(body, key, state, idempotency)
    sink = ApiSink(streams=True)

    async def run() -> Reply:
        try:
            return await state.pipeline.run(inbound, sink)
        finally:
            sink.deltas.put_nowait(None)

    task = asyncio.create_task(run())
    state.track(task)

    async def events() -> AsyncIterator[ServerSentEvent]:
        while (delta := await sink.deltas.get()) is not None:
            yield ServerSentEvent(event="delta", data=DeltaEvent(text=delta).model_dump_json())
        reply = await asyncio.shield(task)
        yield ServerSentEvent(event="done", data=ChatResponse.of(reply, session.session_id).model_dump_json())

    return EventSourceResponse(events(), ping=15, shutdown_grace_period=state.config.stream_grace_s)


class ApiSink:
    """A turn's reply for an API caller: deltas queued for the event stream; the reply itself is the
    response body. Its "message" is the turn: POST /v1/feedback rates a reply by its turn_id."""

    def __init__(self, *, streams: bool) -> None:
        self.streams = streams
        self.deltas: asyncio.Queue[str | None] = asyncio.Queue()

    async def delta(self, text: str) -> None:
        self.deltas.put_nowait(text)

    async def status(self, text: str) -> None:
        return None

    async def tool(self, progress: ToolProgress) -> None:
        return None

    async def finish(self, reply: Reply) -> Sequence[str]:
        return (str(reply.turn_id),) if reply.turn_id is not None else ()


async def _turn_input(
    body: ChatRequest, key: ApiKeyInfo, state: ApiState, idempotency: str | None
) -> tuple[Session, Inbound]:
    user_id = body.user_id or default_user(key)
    session = await session_for(state, key, body.session_id, user_id=user_id)
    inbound = Inbound(
        platform=Platform.API,
        workspace_id=key.workspace_id,
        channel_id=API_CHANNEL,
        thread_id=session.session_id,
        user_id=user_id,
        user_name=user_id,
        channel_name=API_CHANNEL,
        text=body.message,
        event_id=f"idempotency:{idempotency}" if idempotency else uuid.uuid4().hex,
        is_dm=True,
        attachments=tuple(a.to_attachment() for a in body.attachments),
        voice_reply=body.voice_reply,
    )
    return session, inbound


def default_user(key: ApiKeyInfo) -> str:
    """Without a user_id, everything sent with one key is one person."""
    return f"key-{key.key_id}"


async def session_for(state: ApiState, key: ApiKeyInfo, session_id: str | None, *, user_id: str) -> Session:
    """The caller's session in its workspace (opened on first use); ids are per workspace, so another
    workspace's session of the same id is never seen, let alone continued."""
    return await open_session(
        state.pool, session_id or new_session_id(), workspace_id=key.workspace_id, user_id=user_id
    )


def already_answered(session_id: str) -> ApiError:
    return ApiError(
        409,
        "already_answered",
        "A message with this Idempotency-Key was already taken (answered, or being answered now).",
        f"Read the answer with GET /v1/sessions/{session_id}; send a new Idempotency-Key for a new message.",
    )
