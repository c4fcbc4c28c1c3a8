"""A fake Slack on 127.0.0.1: the Web API, private file downloads, response URLs, file uploads and a
Socket Mode websocket, plus a sender of correctly signed Events API requests.

The real slack_sdk / slack-bolt clients talk to it (`AsyncWebClient(base_url=fake.base_url)`). Every
Web API call is recorded with its arguments, token and time; `fail(method, 429, retry_after=0)`
injects rate limiting. Like Slack, it answers an unauthorised file download with an HTML login page
and status 200, and refuses text over 4,000 characters with `msg_too_long`. Streaming chunks and
message blocks are checked against slack_sdk's own model classes (`invalid_chunks`, `invalid_blocks`
for anything they would not build back exactly); `chunks_supported = False` plays a workspace that
refuses structured chunks. Channels added with `add_channel` answer conversations.info and
conversations.history.
Run it alone with `python -m tests.fakes.slack_api --port 8766`.
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
from aiohttp import WSMsgType, web
from slack_sdk.models.blocks import Block
from slack_sdk.models.messages.chunk import Chunk
from slack_sdk.signature import SignatureVerifier

from tests.fakes.background import BackgroundApp

MAX_TEXT = 4000
TASK_STATUSES = frozenset({"pending", "in_progress", "complete", "error"})
LOGIN_PAGE = "<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in to Slack</body></html>"
NO_AUTH_METHODS = frozenset({"oauth.v2.access", "apps.connections.open"})
METHOD_SCOPES = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "chat.startStream": "chat:write",
    "assistant.threads.setStatus": "assistant:write",
    "assistant.threads.setTitle": "assistant:write",
    "assistant.threads.setSuggestedPrompts": "assistant:write",
    "conversations.history": "channels:history",
    "conversations.info": "channels:read",
    "users.info": "users:read",
    "files.getUploadURLExternal": "files:write",
}
"""The scope Slack asks of a bot token for each method (for a public channel where it depends on the kind)."""


@dataclass(frozen=True, kw_only=True)
class Call:
    """One Web API request as the fake saw it."""

    method: str
    args: dict[str, Any]
    token: str | None
    at: float
    """time.monotonic() when it arrived."""
    status: int
    client: Any = None
    """The caller's (address, port): calls over one kept-alive connection share it."""


@dataclass(frozen=True, kw_only=True)
class Workspace:
    team_id: str
    token: str
    bot_user_id: str
    bot_id: str
    app_token: str
    scopes: tuple[str, ...] = ()
    """The bot token's scopes; empty grants every method. Slack names them in `x-oauth-scopes` on each answer,
    and a method that needs one the token lacks answers `missing_scope` with `needed` and `provided`."""


@dataclass
class Message:
    """A message Parley posted, as it currently reads."""

    channel: str
    ts: str
    thread_ts: str | None
    text: str
    streaming: bool = False
    edits: int = 0
    blocks: list[dict[str, Any]] = field(default_factory=list)
    chunks: list[dict[str, Any]] = field(default_factory=list)
    """Every structured chunk streamed into it (task updates, plan updates), in order."""


@dataclass(frozen=True, kw_only=True)
class Failure:
    status: int
    retry_after: float | None
    error: str


@dataclass
class FakeSlack:
    port: int = 0
    streaming_supported: bool = True
    """False: chat.startStream answers `unknown_method` (an app without the AI feature)."""
    chunks_supported: bool = True
    """False: stream calls carrying task or plan chunks answer `invalid_chunks` (markdown text still works)."""
    channels: dict[str, tuple[str, list[dict[str, Any]]]] = field(default_factory=dict)
    """channel id -> (name, its messages newest first) for conversations.info / conversations.history."""
    admins: set[str] = field(default_factory=set)
    """User ids users.info reports as workspace admins (everyone else is an ordinary member)."""
    creators: dict[str, str] = field(default_factory=dict)
    """channel id -> the user id conversations.info reports as the channel's creator."""
    calls: list[Call] = field(default_factory=list)
    workspaces: dict[str, Workspace] = field(default_factory=dict)
    messages: dict[tuple[str, str], Message] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes, str]] = field(default_factory=dict)
    """file id -> (team id, data, mimetype)."""
    downloads: list[tuple[str, bool]] = field(default_factory=list)
    """(file id, authorised) per download attempt."""
    responses: list[dict[str, Any]] = field(default_factory=list)
    """Bodies posted to response URLs (slash commands, actions)."""
    uploads: dict[str, bytes] = field(default_factory=dict)
    oauth_codes: dict[str, Workspace] = field(default_factory=dict)
    socket_acks: list[dict[str, Any]] = field(default_factory=list)
    _failures: dict[str, deque[Failure]] = field(default_factory=dict)
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _sockets: list[web.WebSocketResponse] = field(default_factory=list)
    _server: BackgroundApp = field(default_factory=lambda: BackgroundApp("fake-slack"))

    # -- test-facing API ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/api/"

    def add_workspace(self, team_id: str | None = None, *, scopes: tuple[str, ...] = ()) -> Workspace:
        """A workspace with a fresh bot token (tests share the fake, so ids are unique)."""
        suffix = uuid.uuid4().hex[:10].upper()
        workspace = Workspace(
            team_id=team_id or f"T{suffix}",
            token=f"xoxb-{suffix}",
            bot_user_id=f"UB{suffix}",
            bot_id=f"B{suffix}",
            app_token=f"xapp-{suffix}",
            scopes=scopes,
        )
        self.workspaces[workspace.token] = workspace
        return workspace

    def add_channel(self, channel_id: str, name: str, messages: list[tuple[str, str]]) -> None:
        """A channel people wrote in: (user, text) pairs, oldest first."""
        history = [
            {"type": "message", "user": user, "text": text, "ts": self.next_ts()} for user, text in messages
        ]
        self.channels[channel_id] = (name, history[::-1])

    def add_oauth_code(self, workspace: Workspace) -> str:
        code = f"code-{uuid.uuid4().hex[:8]}"
        self.oauth_codes[code] = workspace
        return code

    def add_file(
        self,
        workspace: Workspace,
        *,
        name: str,
        data: bytes,
        mimetype: str,
        filetype: str | None = None,
        subtype: str | None = None,
        size: int | None = None,
    ) -> dict[str, Any]:
        """Serve a file and return the file object an event carries."""
        file_id = f"F{uuid.uuid4().hex[:10].upper()}"
        self.files[file_id] = (workspace.team_id, data, mimetype)
        url = f"{self.url}/files-pri/{workspace.team_id}-{file_id}/{name}"
        out: dict[str, Any] = {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": filetype or name.rsplit(".", 1)[-1],
            "size": len(data) if size is None else size,
            "mode": "hosted",
            "url_private": url,
            "url_private_download": f"{url}?download=1",
        }
        if subtype:
            out["subtype"] = subtype
        return out

    def fail(self, method: str, status: int = 429, *, retry_after: float | None = 0, times: int = 1,
             error: str = "ratelimited") -> None:
        """The next `times` calls of `method` fail with `status` (429 carries Retry-After)."""
        queue = self._failures.setdefault(method, deque())
        queue.extend(Failure(status=status, retry_after=retry_after, error=error) for _ in range(times))

    def calls_to(self, method: str, *, status: int | None = 200) -> list[Call]:
        return [c for c in list(self.calls) if c.method == method and (status is None or c.status == status)]

    def posted(self, channel: str) -> list[Message]:
        """Messages in `channel`, oldest first."""
        return sorted((m for m in self.messages.values() if m.channel == channel), key=lambda m: float(m.ts))

    def next_ts(self) -> str:
        return f"{1_700_000_000 + next(self._ts)}.{next(self._ts):06d}"

    def send_socket_event(self, body: Mapping[str, Any], *, retry_attempt: int = 0) -> str:
        """Push an Events API body to every connected Socket Mode client; return the envelope id."""
        envelope_id = uuid.uuid4().hex
        envelope = {
            "envelope_id": envelope_id,
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": retry_attempt,
            "retry_reason": "",
            "payload": dict(body),
        }
        self._server.call(self._broadcast(envelope), timeout=5)
        return envelope_id

    @property
    def socket_connected(self) -> int:
        return len([s for s in self._sockets if not s.closed])

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeSlack:
        self.port = self._server.start(self._app, port=self.port, before_close=self._close_sockets)
        return self

    def stop(self) -> None:
        self._server.stop()

    async def _close_sockets(self) -> None:
        for socket in self._sockets:
            await socket.close()

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/files-pri/{key}/{name}", self._download)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_post("/respond/{id}", self._respond)
        app.router.add_get("/socket", self._socket)
        return app

    # -- Web API -----------------------------------------------------------------------------
    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await _arguments(request)
        args.update(_basic_auth(request))
        token = _bearer(request) or args.pop("token", None)
        queued = self._failures.get(method)
        if queued:
            failure = queued.popleft()
            self._record(method, args, token, failure.status, _peer(request))
            headers = {"Retry-After": f"{failure.retry_after:g}"} if failure.retry_after is not None else {}
            return web.json_response({"ok": False, "error": failure.error}, status=failure.status, headers=headers)
        self._record(method, args, token, 200, _peer(request))
        workspace = self.workspaces.get(token or "")
        if method not in NO_AUTH_METHODS and workspace is None:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if method == "apps.connections.open" and not any(w.app_token == token for w in self.workspaces.values()):
            return web.json_response({"ok": False, "error": "invalid_auth"})
        handler = self._methods().get(method)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        headers = {"x-oauth-scopes": ",".join(workspace.scopes)} if workspace is not None and workspace.scopes else {}
        needed = METHOD_SCOPES.get(method)
        if workspace is not None and workspace.scopes and needed is not None and needed not in workspace.scopes:
            missing = {"ok": False, "error": "missing_scope", "needed": needed, "provided": ",".join(workspace.scopes)}
            return web.json_response(missing, headers=headers)
        return web.json_response(handler(args, workspace), headers=headers)

    def _record(self, method: str, args: dict[str, Any], token: str | None, status: int, client: Any = None) -> None:
        self.calls.append(
            Call(method=method, args=args, token=token, at=time.monotonic(), status=status, client=client)
        )

    def _methods(self) -> dict[str, Callable[[dict[str, Any], Workspace | None], dict[str, Any]]]:
        return {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "chat.startStream": self._start_stream,
            "chat.appendStream": self._append_stream,
            "chat.stopStream": self._stop_stream,
            "assistant.threads.setStatus": _ok,
            "assistant.threads.setTitle": _ok,
            "assistant.threads.setSuggestedPrompts": _suggested_prompts,
            "conversations.info": self._conversation_info,
            "users.info": self._users_info,
            "conversations.history": self._conversation_history,
            "views.publish": lambda args, ws: {"ok": True, "view": {"id": f"V{uuid.uuid4().hex[:8]}"}},
            "reactions.add": _ok,
            "files.getUploadURLExternal": self._upload_url,
            "files.completeUploadExternal": self._complete_upload,
            "oauth.v2.access": self._oauth_access,
            "apps.connections.open": self._connections_open,
        }

    def _auth_test(self, args: dict[str, Any], ws: Workspace | None) -> dict[str, Any]:
        assert ws is not None
        return {
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": "Fake Team",
            "user": "parley",
            "team_id": ws.team_id,
            "user_id": ws.bot_user_id,
            "bot_id": ws.bot_id,
            "is_enterprise_install": False,
        }

    def _post_message(self, args: dict[str, Any], ws: Workspace | None) -> dict[str, Any]:
        text = str(args.get("text") or "")
        if not args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if len(text) > MAX_TEXT:
            return {"ok": False, "error": "msg_too_long"}
        blocks = _blocks(args)
        if blocks is None:
            return {"ok": False, "error": "invalid_blocks"}
        ts = self.next_ts()
        message = Message(channel=str(args["channel"]), ts=ts, thread_ts=args.get("thread_ts") or None, text=text,
                          blocks=blocks)
        self.messages[(message.channel, ts)] = message
        return {"ok": True, "channel": message.channel, "ts": ts, "message": {"text": text, "ts": ts}}

    def _update(self, args: dict[str, Any], ws: Workspace | None) -> dict[str, Any]:
        message = self.messages.get((str(args.get("channel")), str(args.get("ts"))))
        text = str(args.get("text") or "")
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if len(text) > MAX_TEXT:
            return {"ok": False, "error": "msg_too_long"}
        blocks = _blocks(args)
        if blocks is None:
            return {"ok": False, "error": "invalid_blocks"}
        message.text = text
        message.blocks = blocks
        message.streaming = False
        message.edits += 1
        return {"ok": True, "channel": message.channel, "ts": message.ts, "text": text}

    def _start_stream(self, args: dict[str, Any], ws: Workspace | None) -> dict[str, Any]:
        if not self.streaming_supported:
            return {"ok": False, "error": "unknown_method"}
        channel = str(args.get("channel") or "")
        if not channel or not args.get("thread_ts"):
            return {"ok": False, "error": "invalid_arguments"}
        if not channel.startswith("D") and not (args.get("recipient_team_id") and args.get("recipient_user_id")):
            return {"ok": False, "error": "invalid_arguments"}
        chunks = self._chunks(args)
        if chunks is None:
            return {"ok": False, "error": "invalid_chunks"}
        ts = self.next_ts()
        message = Message(channel=channel, ts=ts, thread_ts=str(args["thread_ts"]), text=_stream_text(args),
                          streaming=True, chunks=[c for c in chunks if c["type"] != "markdown_text"])
        self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts}

    def _append_stream(self, args: dict[str, Any], ws: Workspace | None) -> dict[str, Any]:
        message = self.messages.get((str(args.get("channel")), str(args.get("ts"))))
        if message is None or not message.streaming:
            return {"ok": False, "error": "message_not_in_streaming_state"}
        chunks = self._chunks(args)
        if chunks is None:
            return {"ok": False, "error": "invalid_chunks"}
        message.text += _stream_text(args)
        message.chunks += [c for c in chunks if c["type"] != "markdown_text"]
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _stop_stream(self, args: dict[str, Any], ws: Workspace | None) -> dict[str, Any]:
        blocks = _blocks(args)
        if blocks is None:
            return {"ok": False, "error": "invalid_blocks"}
        result = self._append_stream(args, ws)
        if result["ok"]:
            message = self.messages[(str(args["channel"]), str(args["ts"]))]
            message.streaming = False
            message.blocks = blocks
        return result

    def _chunks(self, args: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The call's chunks if slack_sdk's models build each back exactly (and this workspace takes them)."""
        chunks = _json_list(args.get("chunks"))
        for chunk in chunks:
            parsed = Chunk.parse(chunk) if isinstance(chunk, dict) else None
            if parsed is None or parsed.to_dict() != chunk:
                return None
            if chunk["type"] == "task_update" and chunk.get("status") not in TASK_STATUSES:
                return None
            if chunk["type"] != "markdown_text" and not self.chunks_supported:
                return None
        return chunks

    def _conversation_info(self, args: dict[str, Any], ws: Workspace | None) -> dict[str, Any]:
        found = self.channels.get(str(args.get("channel")))
        if found is None:
            return {"ok": False, "error": "channel_not_found"}
        channel = {"id": args["channel"], "name": found[0], "is_channel": True}
        if str(args["channel"]) in self.creators:
            channel["creator"] = self.creators[str(args["channel"])]
        return {"ok": True, "channel": channel}

    def _users_info(self, args: dict[str, Any], ws: Workspace | None) -> dict[str, Any]:
        if not args.get("user"):
            return {"ok": False, "error": "user_not_found"}
        user = str(args["user"])
        return {"ok": True, "user": {"id": user, "name": user.lower(), "is_admin": user in self.admins,
                                     "is_owner": False, "is_bot": False}}

    def _conversation_history(self, args: dict[str, Any], ws: Workspace | None) -> dict[str, Any]:
        found = self.channels.get(str(args.get("channel")))
        if found is None:
            return {"ok": False, "error": "channel_not_found"}
        limit = int(args.get("limit") or 100)
        return {"ok": True, "messages": found[1][:limit], "has_more": len(found[1]) > limit}

    def _upload_url(self, args: dict[str, Any], ws: Workspace | None) -> dict[str, Any]:
        file_id = f"F{uuid.uuid4().hex[:10].upper()}"
        return {"ok": True, "file_id": file_id, "upload_url": f"{self.url}/upload/{file_id}"}

    def _complete_upload(self, args: dict[str, Any], ws: Workspace | None) -> dict[str, Any]:
        files = args.get("files")
        listed = json.loads(files) if isinstance(files, str) else files or []
        missing = [f["id"] for f in listed if f["id"] not in self.uploads]
        if missing:
            return {"ok": False, "error": "file_not_found"}
        return {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in listed]}

    def _oauth_access(self, args: dict[str, Any], ws: Workspace | None) -> dict[str, Any]:
        workspace = self.oauth_codes.pop(str(args.get("code")), None)
        if workspace is None or not args.get("client_id"):
            return {"ok": False, "error": "invalid_code"}
        return {
            "ok": True,
            "app_id": "AFAKEAPP",
            "authed_user": {"id": "UINSTALLER"},
            "scope": "chat:write,app_mentions:read",
            "token_type": "bot",
            "access_token": workspace.token,
            "bot_user_id": workspace.bot_user_id,
            "team": {"id": workspace.team_id, "name": "Fake Team"},
            "enterprise": None,
            "is_enterprise_install": False,
        }

    def _connections_open(self, args: dict[str, Any], ws: Workspace | None) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"}

    # -- files, response URLs, uploads, socket mode ------------------------------------------
    async def _download(self, request: web.Request) -> web.Response:
        file_id = request.match_info["key"].split("-", 1)[-1]
        stored = self.files.get(file_id)
        workspace = self.workspaces.get(_bearer(request) or "")
        authorised = stored is not None and workspace is not None and workspace.team_id == stored[0]
        self.downloads.append((file_id, authorised))
        if not authorised or stored is None:
            return web.Response(text=LOGIN_PAGE, content_type="text/html")
        return web.Response(body=stored[1], content_type=stored[2])

    async def _upload(self, request: web.Request) -> web.Response:
        self.uploads[request.match_info["file_id"]] = await request.read()
        return web.Response(text=f"OK - {len(self.uploads[request.match_info['file_id']])}")

    async def _respond(self, request: web.Request) -> web.Response:
        self.responses.append(await request.json())
        return web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        self._sockets.append(socket)
        await socket.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "AFAKEAPP"}})
        async for frame in socket:
            if frame.type == WSMsgType.TEXT:
                self.socket_acks.append(json.loads(frame.data))
        return socket

    async def _broadcast(self, envelope: dict[str, Any]) -> None:
        for socket in self._sockets:
            if not socket.closed:
                await socket.send_json(envelope)


# -- the Events API side: signed requests to a running server -----------------------------------
@dataclass(frozen=True, kw_only=True)
class Sent:
    response: httpx.Response
    elapsed_s: float
    event_id: str | None = None


@dataclass
class EventSender:
    """Posts Events API bodies, slash commands and interactions, signed the way Slack signs them."""

    url: str
    signing_secret: str
    client: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=10))

    async def event(
        self,
        workspace: Workspace,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> Sent:
        event_id = event_id or f"Ev{uuid.uuid4().hex[:10].upper()}"
        body = json.dumps(event_callback(workspace, event, event_id=event_id))
        sent = await self.post(body, "application/json", retry_num=retry_num, timestamp=timestamp, secret=secret)
        return Sent(response=sent.response, elapsed_s=sent.elapsed_s, event_id=event_id)

    async def command(self, workspace: Workspace, *, user_id: str, text: str, response_url: str) -> Sent:
        form = {
            "token": "legacy",
            "team_id": workspace.team_id,
            "team_domain": "fake",
            "channel_id": "CCOMMANDS",
            "channel_name": "general",
            "user_id": user_id,
            "user_name": "person",
            "command": "/parley",
            "text": text,
            "api_app_id": "AFAKEAPP",
            "response_url": response_url,
            "trigger_id": uuid.uuid4().hex,
        }
        return await self.post(urlencode(form), "application/x-www-form-urlencoded")

    async def action(self, payload: dict[str, Any]) -> Sent:
        return await self.post(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    async def post(
        self,
        body: str,
        content_type: str,
        *,
        retry_num: int | None = None,
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> Sent:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = SignatureVerifier(secret or self.signing_secret).generate_signature(timestamp=stamp, body=body)
        assert signature is not None
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature,
        }
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        started = time.perf_counter()
        response = await self.client.post(self.url, content=body.encode(), headers=headers)
        return Sent(response=response, elapsed_s=time.perf_counter() - started)

    async def replay(self, sent: Sent, *, url: str | None = None) -> Sent:
        """The same signed bytes and headers sent again, as someone who captured the request would (to
        `url`, another server's events URL, if given)."""
        request = sent.response.request
        started = time.perf_counter()
        response = await self.client.post(url or self.url, content=request.content, headers=request.headers)
        return Sent(response=response, elapsed_s=time.perf_counter() - started)

    async def aclose(self) -> None:
        await self.client.aclose()


def event_callback(workspace: Workspace, event: dict[str, Any], *, event_id: str) -> dict[str, Any]:
    """The Events API envelope around one event."""
    return {
        "token": "legacy-verification-token",
        "team_id": workspace.team_id,
        "api_app_id": "AFAKEAPP",
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [
            {"team_id": workspace.team_id, "user_id": workspace.bot_user_id, "is_bot": True,
             "is_enterprise_install": False, "enterprise_id": None}
        ],
        "is_ext_shared_channel": False,
    }


def mention(workspace: Workspace, *, channel: str, user: str, text: str, ts: str, thread_ts: str | None = None,
            files: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "app_mention",
        "user": user,
        "text": f"<@{workspace.bot_user_id}> {text}",
        "ts": ts,
        "channel": channel,
        "team": workspace.team_id,
        "event_ts": ts,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    if files:
        event["files"] = files
    return event


def message(*, channel: str, user: str, text: str, ts: str, channel_type: str = "channel",
            thread_ts: str | None = None, files: list[dict[str, Any]] | None = None,
            subtype: str | None = None, team: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "message",
        "user": user,
        "text": text,
        "ts": ts,
        "channel": channel,
        "channel_type": channel_type,
        "event_ts": ts,
    }
    if team:
        event["team"] = team
    if thread_ts:
        event["thread_ts"] = thread_ts
    if files:
        event["files"] = files
        event["subtype"] = "file_share"
    if subtype:
        event["subtype"] = subtype
    return event


def reaction(*, user: str, emoji: str, channel: str, ts: str, item_user: str, removed: bool = False) -> dict[str, Any]:
    return {
        "type": "reaction_removed" if removed else "reaction_added",
        "user": user,
        "reaction": emoji,
        "item_user": item_user,
        "item": {"type": "message", "channel": channel, "ts": ts},
        "event_ts": f"{time.time():.6f}",
    }


def _ok(args: dict[str, Any], ws: Workspace | None) -> dict[str, Any]:
    return {"ok": True}


def _suggested_prompts(args: dict[str, Any], ws: Workspace | None) -> dict[str, Any]:
    """Like Slack: a channel and one to four prompts, each with a title and a message."""
    prompts = _json_list(args.get("prompts"))
    valid = 1 <= len(prompts) <= 4 and all(isinstance(p, dict) and p.get("title") and p.get("message") for p in prompts)
    if not args.get("channel_id") or not valid:
        return {"ok": False, "error": "invalid_arguments"}
    return {"ok": True}


def _json_list(value: Any) -> list[Any]:
    """A list argument, sent as JSON or as a form field holding JSON."""
    if isinstance(value, str):
        value = json.loads(value)
    return list(value or [])


def _blocks(args: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The call's blocks if slack_sdk's models build each back exactly; None for an invalid one."""
    blocks = _json_list(args.get("blocks"))
    for block in blocks:
        parsed = Block.parse(block) if isinstance(block, dict) else None
        if parsed is None or type(parsed) is Block or parsed.to_dict() != block:
            return None
    return blocks


def _basic_auth(request: web.Request) -> dict[str, str]:
    """oauth.v2.access sends the app's client id and secret as HTTP Basic auth."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return {}
    client_id, _, client_secret = base64.b64decode(header[6:]).decode().partition(":")
    return {"client_id": client_id, "client_secret": client_secret}


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:] if header.startswith("Bearer ") else None


async def _arguments(request: web.Request) -> dict[str, Any]:
    args: dict[str, Any] = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            args.update(await request.json())
        else:
            args.update({k: v for k, v in (await request.post()).items() if isinstance(v, str)})
    return args


def _stream_text(args: dict[str, Any]) -> str:
    text = str(args.get("markdown_text") or "")
    chunks = _json_list(args.get("chunks"))
    return text + "".join(str(c.get("text") or "") for c in chunks if c.get("type") == "markdown_text")


def _peer(request: web.Request) -> Any:
    return request.transport.get_extra_info("peername") if request.transport is not None else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    fake = FakeSlack(port=args.port).start()
    workspace = fake.add_workspace("T0LOCAL")
    print(f"fake Slack on {fake.base_url} (bot token {workspace.token}, app token {workspace.app_token})", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
