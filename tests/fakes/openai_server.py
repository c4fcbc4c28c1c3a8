"""A fake OpenAI-compatible chat-completions server on 127.0.0.1.

It speaks the real wire protocol (JSON and SSE streaming, tool calls, usage, errors with
Retry-After, hangs and broken streams on demand) so pydantic-ai's real OpenAI client talks to it.
Every request is recorded. Run it alone with `python -m tests.fakes.openai_server --port 8765`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.background import BackgroundApp


@dataclass
class Text:
    content: str
    prompt_tokens: int = 12
    completion_tokens: int = 7


@dataclass
class ToolCalls:
    calls: list[tuple[str, dict[str, Any]]]


@dataclass
class Error:
    status: int
    retry_after: float | None = None
    message: str = "injected error"


@dataclass
class Hang:
    """Accept the request and answer nothing for `seconds` (a model timeout)."""

    seconds: float


@dataclass
class BrokenStream:
    """Start streaming `partial`, then cut the connection."""

    partial: str


Response = Text | ToolCalls | Error | Hang | BrokenStream
Responder = Callable[[dict[str, Any]], Response]


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if p.get("type") == "text")
            return str(content)
    return ""


_SELF_CHECK = re.compile(r"should the (user |assistant )?message be blocked \(yes or no\)\?", re.IGNORECASE)


def is_self_check(body: dict[str, Any]) -> bool:
    """A guardrail self-check (NeMo's "Should the ... be blocked (Yes or No)?"), for responders that
    want to answer it as a well-behaved moderator would; `echo` answers it like a chatty model."""
    return _SELF_CHECK.search(last_user_text(body)) is not None


def echo(body: dict[str, Any]) -> Response:
    """Default behaviour: answer tool results with their content, anything else with an echo. A guardrail
    self-check gets the echo too, as a chatty model's answer that is neither yes nor no would."""
    messages = body.get("messages", [])
    if messages and messages[-1].get("role") == "tool":
        return Text(f"Tool result: {messages[-1].get('content')}")
    return Text(f"You said: {last_user_text(body)}")


@dataclass
class FakeOpenAI:
    responder: Responder = echo
    script: deque[Response] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    delay: float = 0.0
    """Seconds every answer takes (a slow model for load tests)."""
    chunk_delay: float = 0.0
    """Seconds between streamed chunks (a model that types)."""
    port: int = 0
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _server: BackgroundApp = field(default_factory=lambda: BackgroundApp("fake-openai"))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def queue(self, *responses: Response) -> None:
        self.script.extend(responses)

    def reset(self) -> None:
        self.script.clear()
        self.requests.clear()
        self.headers.clear()
        self.responder = echo
        self.delay = 0.0
        self.chunk_delay = 0.0

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> FakeOpenAI:
        """Serve from a background thread, so sync tests and subprocesses can use it too."""
        self.port = self._server.start(self._app, port=self.port)
        return self

    def stop(self) -> None:
        self._server.stop()

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        return app

    # -- handlers -----------------------------------------------------------------------------
    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        response = self.script.popleft() if self.script else self.responder(body)
        if self.delay:
            await asyncio.sleep(self.delay)
        match response:
            case Error(status=status, retry_after=retry_after, message=message):
                headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
                return web.json_response(
                    {"error": {"message": message, "type": "server_error", "code": str(status)}},
                    status=status,
                    headers=headers,
                )
            case Hang(seconds=seconds):
                await asyncio.sleep(seconds)
                return web.json_response({"error": {"message": "too late"}}, status=504)
            case _:
                pass
        model = body.get("model", "fake")
        if body.get("stream"):
            return await self._stream(request, body, response, model)
        return web.json_response(self._completion(response, model))

    def _completion(self, response: Response, model: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": None}
        finish = "stop"
        usage = {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
        if isinstance(response, Text):
            message["content"] = response.content
            usage = {
                "prompt_tokens": response.prompt_tokens,
                "completion_tokens": response.completion_tokens,
                "total_tokens": response.prompt_tokens + response.completion_tokens,
            }
        elif isinstance(response, ToolCalls):
            message["tool_calls"] = [
                {
                    "id": f"call_{next(self._ids)}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
                for name, args in response.calls
            ]
            finish = "tool_calls"
        return {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }

    async def _stream(
        self, request: web.Request, body: dict[str, Any], response: Response, model: str
    ) -> web.StreamResponse:
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        cid = f"chatcmpl-{next(self._ids)}"

        async def send(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> None:
            chunk: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if usage is not None:
                chunk["usage"] = usage
            await out.write(f"data: {json.dumps(chunk)}\n\n".encode())

        if isinstance(response, BrokenStream):
            await send({"role": "assistant", "content": response.partial})
            assert request.transport is not None
            request.transport.close()
            return out
        completion = self._completion(response, model)
        message = completion["choices"][0]["message"]
        if message.get("tool_calls"):
            for index, call in enumerate(message["tool_calls"]):
                await send({"role": "assistant", "tool_calls": [{"index": index, **call}]})
        else:
            text: str = message["content"] or ""
            for start in range(0, max(len(text), 1), 16):
                await send({"role": "assistant", "content": text[start : start + 16]})
                if self.chunk_delay:
                    await asyncio.sleep(self.chunk_delay)
        await send({}, finish=completion["choices"][0]["finish_reason"])
        if body.get("stream_options", {}).get("include_usage"):
            chunk = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [],
                "usage": completion["usage"],
            }
            await out.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await out.write(b"data: [DONE]\n\n")
        await out.write_eof()
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    server = FakeOpenAI(port=args.port).start()
    print(f"fake OpenAI server on {server.base_url}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
