"""A fake Discord: the gateway websocket and the REST API on 127.0.0.1, for the real discord.py client.

Gateway (`/gateway`): HELLO, heartbeat ACKs, IDENTIFY -> READY and one GUILD_CREATE per guild of
that shard, RESUME -> RESUMED, and dispatch of any event the test asks for (MESSAGE_CREATE,
MESSAGE_REACTION_ADD, INTERACTION_CREATE, ...), routed to the shard that owns the guild.

REST (`/api/v10`): what discord.py calls to log in (`/users/@me`, `/oauth2/applications/@me`),
find the gateway (`/gateway/bot`), sync commands (bulk overwrite), post, edit and delete messages
(JSON or multipart uploads), show typing, start threads, answer interactions and their follow-ups.
Attachments are served from `/cdn/...`. Voice messages follow Discord's upload flow: POST
/channels/{id}/attachments hands out upload URLs (`PUT /upload/...`), and a message with flag 1<<13
must carry exactly one uploaded Ogg/Opus file with `duration_secs` and a base64 `waveform` of at
most 256 bytes, and no text (else 400, Invalid Form Body). Every request is recorded as a `Call`;
`fail_next` makes the next matching request answer 429 (with the headers discord.py needs to retry)
or any error; `refuse_components` makes every message write that carries components (buttons) answer
400, as Discord does for an app or channel that may not use them.

JSON bodies carry the exact Content-Type `application/json` (discord.py compares it literally) and
every id is a snowflake. The server runs in the test's event loop:

    fake = await FakeDiscord().start()
    guild = await fake.add_guild()
    sent = await fake.post_message(guild.channel_id, fake.user("ada"), f"<@{fake.bot_id}> hi")
    call = await fake.wait_for_call("POST", f"/channels/{guild.channel_id}/messages")
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import BodyPartReader, WSMsgType, web

DISCORD_EPOCH_MS = 1_420_070_400_000
MESSAGE_CONTENT_INTENT = 1 << 15
"""The privileged intent a bot must be granted on the Developer Portal's Bot page."""
OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_RESUME, OP_HELLO, OP_HEARTBEAT_ACK = 0, 1, 2, 6, 10, 11
VOICE_FLAG = 1 << 13
Payload = dict[str, Any]


@dataclass(frozen=True, kw_only=True, slots=True)
class Call:
    """One REST request as the fake received it."""

    method: str
    path: str
    """Without the /api/v10 prefix, e.g. /channels/123/messages."""
    query: dict[str, str]
    json: Any = None
    """The JSON body, or the multipart `payload_json`."""
    files: dict[str, bytes] = field(default_factory=dict)
    """Multipart file parts by filename."""
    status: int = 200
    at: float = 0.0
    """time.monotonic() when it arrived."""


@dataclass(frozen=True, kw_only=True, slots=True)
class FakeGuild:
    id: int
    channel_id: int
    """Its one text channel, #general."""
    payload: Payload


@dataclass(kw_only=True)
class _Session:
    ws: web.WebSocketResponse
    shard: tuple[int, int] = (0, 1)
    seq: int = 0
    session_id: str = field(default_factory=lambda: secrets.token_hex(8))
    identified: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True, kw_only=True, slots=True)
class _Failure:
    method: str
    path_contains: str
    status: int
    retry_after: float


class FakeDiscord:
    def __init__(
        self, *, token: str = "fake-discord-token", shard_count: int = 1, message_content_intent: bool = True
    ) -> None:
        self.token = token
        self.shard_count = shard_count
        self.message_content_intent = message_content_intent
        """False: the portal's Message Content Intent is off, and an IDENTIFY asking for it is closed with 4014."""
        self._ids = itertools.count()
        self.bot: Payload = self.user("Parley", bot=True)
        self.bot_id = int(self.bot["id"])
        self.application_id = self.bot_id
        self.calls: list[Call] = []
        self.identifies: list[Payload] = []
        self.guilds: dict[int, FakeGuild] = {}
        self.messages: dict[int, Payload] = {}
        self.commands: list[Payload] = []
        self.interactions: dict[str, Payload] = {}
        """Interaction token -> its original response message (once answered)."""
        self._interaction_payloads: dict[str, Payload] = {}
        self._files: dict[str, bytes] = {}
        self.uploads: dict[str, bytes] = {}
        """Upload filename -> bytes PUT to its upload URL."""
        self._slots: set[str] = set()
        self._sessions: list[_Session] = []
        self._failures: deque[_Failure] = deque()
        self.refuse_components = False
        """True: a message posted or edited with components is refused (400 Invalid Form Body)."""
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def start(self) -> FakeDiscord:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/cdn/{key}/{name}", self._cdn)
        app.router.add_put("/upload/{key}", self._upload)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        for session in self._sessions:
            await session.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_until_identified(self, count: int = 1, timeout: float = 15.0) -> None:
        """Until `count` shards have sent IDENTIFY and received READY and their guilds."""
        await self._wait(lambda: sum(s.identified.is_set() for s in self._sessions) >= count, timeout)

    # -- building the world ------------------------------------------------------------------------
    def snowflake(self, *, shard: int | None = None, shards: int | None = None) -> int:
        """A fresh id; with `shard`, one whose guild lives on that shard of `shards` (default: shard_count)."""
        count = shards or self.shard_count
        while True:
            value = ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | (next(self._ids) % (1 << 22))
            if shard is None or (value >> 22) % count == shard:
                return value
            time.sleep(0.001)

    def user(self, name: str, *, bot: bool = False) -> Payload:
        return {
            "id": str(self.snowflake()),
            "username": name.lower(),
            "global_name": name,
            "discriminator": "0",
            "avatar": None,
            "bot": bot,
        }

    async def add_guild(
        self, name: str = "Test server", *, shard: int | None = None, shards: int | None = None
    ) -> FakeGuild:
        """A server with #general and Parley in it; announced at once if its shard is connected."""
        guild_id = self.snowflake(shard=shard, shards=shards)
        channel_id = self.snowflake()
        payload: Payload = {
            "id": str(guild_id),
            "name": name,
            "owner_id": str(self.snowflake()),
            "unavailable": False,
            "member_count": 2,
            "large": False,
            "features": [],
            "emojis": [],
            "stickers": [],
            "roles": [
                {
                    "id": str(guild_id), "name": "@everyone", "permissions": str((1 << 41) - 1), "position": 0,
                    "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0,
                },
            ],
            "channels": [
                {
                    "id": str(channel_id), "type": 0, "name": "general", "position": 0, "guild_id": str(guild_id),
                    "permission_overwrites": [], "nsfw": False, "parent_id": None, "topic": None,
                },
            ],
            "threads": [],
            "members": [{"user": self.bot, "roles": [], "joined_at": _now(), "deaf": False, "mute": False, "flags": 0}],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "joined_at": _now(),
            "premium_tier": 0,
            "preferred_locale": "en-US",
        }
        guild = FakeGuild(id=guild_id, channel_id=channel_id, payload=payload)
        self.guilds[guild_id] = guild
        session = self._session_for(guild_id)
        if session is not None and session.identified.is_set():
            await self._send(session, "GUILD_CREATE", payload)
        return guild

    def add_file(self, name: str, data: bytes) -> str:
        """Serve `data` from the fake CDN; returns its URL (as in an attachment payload)."""
        key = secrets.token_hex(6)
        self._files[key] = data
        return f"{self.base_url}/cdn/{key}/{name}"

    def attachment(self, name: str, data: bytes, *, content_type: str, voice: bool = False) -> Payload:
        url = self.add_file(name, data)
        out: Payload = {
            "id": str(self.snowflake()), "filename": name, "size": len(data), "url": url, "proxy_url": url,
            "content_type": content_type,
        }
        if voice:
            out |= {"duration_secs": 2.0, "waveform": "AAAAAAAAAAAA"}
        return out

    def dm_channel(self) -> int:
        return self.snowflake()

    async def add_thread(self, guild: FakeGuild, owner: Payload, name: str = "a thread") -> int:
        """A public thread someone started in #general (THREAD_CREATE); returns its id."""
        thread = self._thread_payload(guild.id, guild.channel_id, self.snowflake(), owner_id=owner["id"], name=name)
        guild.payload["threads"].append(thread)
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True}, guild_id=guild.id)
        return int(thread["id"])

    # -- events the test sends -----------------------------------------------------------------------
    async def post_message(
        self,
        channel_id: int,
        author: Payload,
        content: str,
        *,
        guild_id: int | None = None,
        reply_to: int | None = None,
        attachments: list[Payload] | None = None,
        voice: bool = False,
    ) -> Payload:
        """A person's message: dispatched as MESSAGE_CREATE (mentions parsed from `<@id>`)."""
        payload = self._message(
            channel_id, author, content, guild_id=guild_id, reply_to=reply_to,
            attachments=attachments or [], flags=VOICE_FLAG if voice else 0,
        )
        await self.dispatch("MESSAGE_CREATE", payload, guild_id=guild_id)
        return payload

    async def react(
        self, message: Payload, user: Payload, emoji: str, *, guild_id: int | None = None, removed: bool = False
    ) -> None:
        data: Payload = {
            "user_id": user["id"],
            "channel_id": message["channel_id"],
            "message_id": message["id"],
            "emoji": {"id": None, "name": emoji},
            "burst": False,
            "type": 0,
        }
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
            data["member"] = {"user": user, "roles": [], "joined_at": _now(), "deaf": False, "mute": False, "flags": 0}
        if not removed:
            data["message_author_id"] = message["author"]["id"]
        await self.dispatch("MESSAGE_REACTION_REMOVE" if removed else "MESSAGE_REACTION_ADD", data, guild_id=guild_id)

    async def slash(
        self,
        name: str,
        user: Payload,
        *,
        channel_id: int,
        guild_id: int | None = None,
        options: list[Payload] | None = None,
        resolved: Payload | None = None,
        user_install: bool = False,
        private_channel: bool = False,
        permissions: int = (1 << 41) - 1,
    ) -> Payload:
        """A slash command used by `user`: INTERACTION_CREATE type 2 for a command synced earlier.

        `user_install`: the app is installed to the user's account only (not to the server);
        `private_channel`: used in a DM or group DM between people, where Parley is no member.
        Discord offers a command only in the install types and contexts it was synced with."""
        command = next(c for c in self.commands if c["name"] == name)
        install = 1 if user_install else 0
        context = 0 if guild_id else 2 if private_channel else 1
        if install not in command.get("integration_types", [0]) or context not in command.get("contexts", [0, 1]):
            raise ValueError(f"/{name} is not offered for install type {install} in context {context}")
        data: Payload = {"id": command["id"], "name": name, "type": 1, "options": options or []}
        if resolved:
            data["resolved"] = resolved
        owners = {"1": user["id"]} if user_install else {"0": str(guild_id or 0)}
        return await self._interaction(2, data, user, channel_id=channel_id, guild_id=guild_id, owners=owners,
                                       context=context, permissions=permissions)

    async def click(
        self, message: Payload, custom_id: str, user: Payload, *, channel_id: int, guild_id: int | None = None
    ) -> Payload:
        """A button press on `message`: INTERACTION_CREATE type 3."""
        data = {"custom_id": custom_id, "component_type": 2}
        return await self._interaction(3, data, user, channel_id=channel_id, guild_id=guild_id, message=message,
                                       owners={"0": str(guild_id or 0)}, context=0 if guild_id else 1)

    async def dispatch(self, event: str, data: Payload, *, guild_id: int | None = None) -> None:
        """Send a DISPATCH to the shard owning `guild_id` (shard 0 for DMs)."""
        session = self._session_for(guild_id)
        if session is None:
            raise RuntimeError(f"no gateway session for guild {guild_id}")
        await self._send(session, event, data)

    # -- waiting and inspecting ----------------------------------------------------------------------
    def fail_next(self, method: str, path_contains: str, *, status: int = 429, retry_after: float = 0.05) -> None:
        self._failures.append(_Failure(method=method, path_contains=path_contains, status=status,
                                       retry_after=retry_after))

    def calls_to(self, method: str, path_contains: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and path_contains in c.path]

    async def wait_for_call(
        self, method: str, path_contains: str, *, count: int = 1, timeout: float = 20.0,
        where: Callable[[Call], bool] = lambda call: True,
    ) -> Call:
        """The `count`-th successful matching call, waiting for it to arrive."""

        def matches() -> list[Call]:
            return [c for c in self.calls_to(method, path_contains) if c.status < 300 and where(c)]

        await self._wait(lambda: len(matches()) >= count, timeout)
        return matches()[count - 1]

    def bot_messages(self, channel_id: int) -> list[Payload]:
        """Parley's messages in a channel, oldest first, as they stand now (edits applied)."""
        return [
            m for m in self.messages.values()
            if m["channel_id"] == str(channel_id) and m["author"]["id"] == str(self.bot_id)
        ]

    async def _wait(self, predicate: Callable[[], bool], timeout: float) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- gateway ------------------------------------------------------------------------------------
    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session = _Session(ws=ws)
        self._sessions.append(session)
        await ws.send_json({"op": OP_HELLO, "d": {"heartbeat_interval": 41_250}})
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                continue
            message = json.loads(frame.data)
            op, data = message.get("op"), message.get("d")
            if op == OP_HEARTBEAT:
                await ws.send_json({"op": OP_HEARTBEAT_ACK})
            elif op == OP_IDENTIFY:
                await self._identify(session, data)
            elif op == OP_RESUME:
                await self._send(session, "RESUMED", {})
        self._sessions.remove(session)
        await self._notify()
        return ws

    async def _identify(self, session: _Session, data: Payload) -> None:
        self.identifies.append({k: v for k, v in data.items() if k != "token"})
        if data.get("token") != self.token:
            await session.ws.close(code=4004, message=b"Authentication failed.")
            return
        if not self.message_content_intent and int(data.get("intents") or 0) & MESSAGE_CONTENT_INTENT:
            await session.ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        shard_id, count = data.get("shard", [0, 1])
        session.shard = (shard_id, count)
        mine = [g for g in self.guilds.values() if (g.id >> 22) % count == shard_id]
        await self._send(session, "READY", {
            "v": 10,
            "user": self.bot,
            "guilds": [{"id": str(g.id), "unavailable": True} for g in mine],
            "session_id": session.session_id,
            "resume_gateway_url": self.gateway_url,
            "shard": [shard_id, count],
            "application": {"id": str(self.application_id), "flags": 0},
        })
        for guild in mine:
            await self._send(session, "GUILD_CREATE", guild.payload)
        session.identified.set()
        await self._notify()

    async def _send(self, session: _Session, event: str, data: Payload) -> None:
        session.seq += 1
        await session.ws.send_json({"op": OP_DISPATCH, "t": event, "s": session.seq, "d": data})

    def _session_for(self, guild_id: int | None) -> _Session | None:
        """The newest identified shard that owns a guild (shard 0 owns DMs)."""
        for session in reversed(self._sessions):
            shard_id, count = session.shard
            owner = 0 if guild_id is None else (guild_id >> 22) % count
            if session.identified.is_set() and not session.ws.closed and owner == shard_id:
                return session
        return None

    async def _interaction(
        self, kind: int, data: Payload, user: Payload, *, channel_id: int, guild_id: int | None,
        owners: Payload, context: int, message: Payload | None = None, permissions: int = (1 << 41) - 1,
    ) -> Payload:
        payload: Payload = {
            "id": str(self.snowflake()),
            "application_id": str(self.application_id),
            "type": kind,
            "data": data,
            "token": secrets.token_urlsafe(24),
            "version": 1,
            "channel_id": str(channel_id),
            "channel": {"id": str(channel_id), "type": 0 if guild_id else 1},
            "locale": "en-US",
            "app_permissions": str((1 << 41) - 1),
            "attachment_size_limit": 25 * 1024 * 1024,
            "entitlements": [],
            "authorizing_integration_owners": owners,
            "context": context,
        }
        if guild_id is not None:
            payload["guild_id"] = str(guild_id)
            payload["guild_locale"] = "en-US"
            payload["member"] = {
                "user": user, "roles": [], "joined_at": _now(), "deaf": False, "mute": False, "flags": 0,
                "permissions": str(permissions),
            }
        else:
            payload["user"] = user
        if message is not None:
            payload["message"] = message
        self._interaction_payloads[payload["token"]] = payload
        await self.dispatch("INTERACTION_CREATE", payload, guild_id=guild_id)
        return payload

    # -- REST ---------------------------------------------------------------------------------------
    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        body, files = await _read_body(request)
        failure = self._take_failure(request.method, path)
        status = failure.status if failure else 200
        if failure is None and request.headers.get("Authorization") not in (f"Bot {self.token}", None):
            status = 401
        call = Call(method=request.method, path=path, query=dict(request.query), json=body, files=files,
                    status=status, at=time.monotonic())
        self.calls.append(call)
        try:
            if failure is not None:
                return _error(failure.status, "injected", retry_after=failure.retry_after)
            if status == 401:
                return _error(401, "401: Unauthorized")
            return await self._route(request.method, path, body, files, dict(request.query))
        finally:
            await self._notify()

    def _take_failure(self, method: str, path: str) -> _Failure | None:
        for failure in self._failures:
            if failure.method == method and failure.path_contains in path:
                self._failures.remove(failure)
                return failure
        return None

    async def _route(
        self, method: str, path: str, body: Any, files: dict[str, bytes], query: dict[str, str]
    ) -> web.Response:
        parts = path.strip("/").split("/")
        buttons = isinstance(body, dict) and body.get("components")
        if self.refuse_components and buttons and parts[0] in ("channels", "webhooks"):
            return _error(400, "Invalid Form Body\nIn components: this application may not use components here",
                          code=50035)
        match method, parts:
            case "GET", ["gateway", "bot"]:
                return _json({"url": self.gateway_url, "shards": self.shard_count, "session_start_limit": {
                    "total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}})
            case "GET", ["users", "@me"]:
                return _json(self.bot)
            case "GET", ["oauth2", "applications", "@me"]:
                return _json(self._application())
            case "PUT", ["applications", _, "commands"] | ["applications", _, "guilds", _, "commands"]:
                self.commands = [
                    {**c, "id": str(self.snowflake()), "application_id": str(self.application_id), "version": "1"}
                    for c in body
                ]
                return _json(self.commands)
            case "POST", ["channels", _, "typing"]:
                return web.Response(status=204)
            case "POST", ["channels", _, "attachments"]:
                return _json({"attachments": [self._slot(f) for f in body.get("files") or []]})
            case "POST", ["channels", channel, "messages"] if int(body.get("flags") or 0) & VOICE_FLAG:
                problem = self._voice_problem(body)
                if problem:
                    return _error(400, f"Invalid Form Body: {problem}", code=50035)
                message = self._voice_message(int(channel), body)
                await self._announce(message)
                return _json(message)
            case "POST", ["channels", channel, "messages"]:
                message = self._bot_message(int(channel), body, files)
                await self._announce(message)
                return _json(message)
            case "PATCH", ["channels", _, "messages", message_id]:
                return self._edit(int(message_id), body, files)
            case "DELETE", ["channels", _, "messages", message_id]:
                self.messages.pop(int(message_id), None)
                return web.Response(status=204)
            case "GET", ["channels", _, "messages", message_id] if int(message_id) in self.messages:
                return _json(self.messages[int(message_id)])
            case "POST", ["channels", channel, "messages", message_id, "threads"]:
                return _json(await self._start_thread(int(channel), int(message_id), body))
            case "POST", ["interactions", _, token, "callback"]:
                return _json(self._callback(token, body, files))
            case "PATCH", ["webhooks", _, token, "messages", "@original"]:
                original = self.interactions[token]
                return self._edit(int(original["id"]), body, files)
            case "POST", ["webhooks", _, token]:
                original = self.interactions[token]
                message = self._bot_message(int(original["channel_id"]), body, files, webhook=True)
                return _json(message)
            case "PATCH", ["webhooks", _, _, "messages", message_id]:
                return self._edit(int(message_id), body, files)
            case "DELETE", ["webhooks", _, _, "messages", message_id]:
                self.messages.pop(int(message_id), None)
                return web.Response(status=204)
        return _error(404, "404: Not Found", code=10_000)

    def _slot(self, file: Payload) -> Payload:
        key = f"{secrets.token_hex(6)}/{file['filename']}"
        self._slots.add(key)
        return {"id": file["id"], "upload_url": f"{self.base_url}/upload/{key.replace('/', '-')}",
                "upload_filename": key}

    async def _upload(self, request: web.Request) -> web.Response:
        key = request.match_info["key"].replace("-", "/", 1)
        if key not in self._slots:
            return web.Response(status=404)
        self.uploads[key] = await request.read()
        await self._notify()
        return web.Response(status=200)

    def _voice_problem(self, body: Payload) -> str | None:
        """Why Discord would refuse this voice message, or None."""
        attachments = body.get("attachments") or []
        if body.get("content") or body.get("embeds") or len(attachments) != 1:
            return "a voice message has exactly one audio attachment and nothing else"
        voice = attachments[0]
        data = self.uploads.get(voice.get("uploaded_filename", ""))
        if data is None:
            return "unknown uploaded_filename"
        if not (data.startswith(b"OggS") and b"OpusHead" in data[:200]):
            return "a voice message is Opus in Ogg"
        duration = voice.get("duration_secs")
        if not isinstance(duration, int | float) or duration <= 0:
            return "duration_secs must be a positive number"
        try:
            waveform = base64.b64decode(voice.get("waveform") or "", validate=True)
        except (binascii.Error, ValueError):
            return "waveform must be base64"
        if not 0 < len(waveform) <= 256:
            return "waveform must hold 1 to 256 bytes"
        return None

    def _voice_message(self, channel_id: int, body: Payload) -> Payload:
        voice = body["attachments"][0]
        data = self.uploads[voice["uploaded_filename"]]
        attachment = self.attachment(voice["filename"], data, content_type="audio/ogg") | {
            "duration_secs": voice["duration_secs"], "waveform": voice["waveform"],
        }
        return self._message(channel_id, self.bot, "", guild_id=self._guild_of(channel_id),
                             attachments=[attachment], flags=int(body["flags"]))

    async def _cdn(self, request: web.Request) -> web.Response:
        data = self._files.get(request.match_info["key"])
        if data is None:
            return web.Response(status=404, text="expired")
        return web.Response(body=data, content_type="application/octet-stream")

    def _application(self) -> Payload:
        return {
            "id": str(self.application_id), "name": "Parley", "description": "", "icon": None,
            "bot_public": True, "bot_require_code_grant": False, "owner": self.user("owner"),
            "verify_key": "0" * 64, "flags": 0, "team": None, "summary": "",
        }

    def _message(
        self, channel_id: int, author: Payload, content: str, *, guild_id: int | None, reply_to: int | None = None,
        attachments: list[Payload] | None = None, flags: int = 0, components: list[Payload] | None = None,
        webhook: bool = False,
    ) -> Payload:
        mentioned = [u for u in self._known_users() if f"<@{u['id']}>" in content or f"<@!{u['id']}>" in content]
        message: Payload = {
            "id": str(self.snowflake()),
            "channel_id": str(channel_id),
            "author": author,
            "content": content,
            "timestamp": _now(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": mentioned,
            "mention_roles": [],
            "attachments": attachments or [],
            "embeds": [],
            "pinned": False,
            "type": 0,
            "flags": flags,
            "components": components or [],
        }
        if guild_id is not None:
            message["guild_id"] = str(guild_id)
            if not webhook:
                message["member"] = {"roles": [], "joined_at": _now(), "deaf": False, "mute": False, "flags": 0}
        if webhook:
            message["webhook_id"] = str(self.application_id)
        if reply_to is not None:
            referenced = self.messages.get(reply_to)
            message["type"] = 19
            message["message_reference"] = {"type": 0, "message_id": str(reply_to), "channel_id": str(channel_id)}
            if guild_id is not None:
                message["message_reference"]["guild_id"] = str(guild_id)
            message["referenced_message"] = referenced
            if referenced is not None and referenced["author"] not in mentioned:
                mentioned.append(referenced["author"])
        self.messages[int(message["id"])] = message
        return message

    def _known_users(self) -> list[Payload]:
        users = {m["author"]["id"]: m["author"] for m in self.messages.values()}
        users[self.bot["id"]] = self.bot
        return list(users.values())

    def _bot_message(
        self, channel_id: int, body: Payload, files: dict[str, bytes], *, webhook: bool = False
    ) -> Payload:
        reference = body.get("message_reference") or {}
        guild_id = self._guild_of(channel_id)
        return self._message(
            channel_id, self.bot, body.get("content") or "", guild_id=guild_id,
            reply_to=int(reference["message_id"]) if reference.get("message_id") else None,
            attachments=self._uploaded(files), flags=int(body.get("flags") or 0),
            components=body.get("components"), webhook=webhook,
        )

    def _uploaded(self, files: dict[str, bytes]) -> list[Payload]:
        return [self.attachment(name, data, content_type="application/octet-stream") for name, data in files.items()]

    def _edit(self, message_id: int, body: Payload, files: dict[str, bytes]) -> web.Response:
        message = self.messages.get(message_id)
        if message is None:
            return _error(404, "Unknown Message", code=10_008)
        if "content" in body:
            message["content"] = body["content"] or ""
        if "components" in body:
            message["components"] = body["components"] or []
        if files:
            message["attachments"] = self._uploaded(files)
        elif "attachments" in body:
            kept = {a.get("id") for a in body["attachments"] or []}
            message["attachments"] = [a for a in message["attachments"] if a["id"] in kept]
        message["edited_timestamp"] = _now()
        return _json(message)

    async def _announce(self, message: Payload) -> None:
        guild_id = int(message["guild_id"]) if "guild_id" in message else None
        await self.dispatch("MESSAGE_CREATE", message, guild_id=guild_id)

    async def _start_thread(self, channel_id: int, message_id: int, body: Payload) -> Payload:
        """A public thread from a message: Discord gives it the message's id."""
        guild_id = self._guild_of(channel_id)
        if guild_id is None:
            raise web.HTTPBadRequest(text="threads need a guild channel")
        thread = self._thread_payload(guild_id, channel_id, message_id, owner_id=self.bot["id"], name=body["name"])
        self.guilds[guild_id].payload["threads"].append(thread)
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True}, guild_id=guild_id)
        return thread

    @staticmethod
    def _thread_payload(guild_id: int, parent_id: int, thread_id: int, *, owner_id: str, name: str) -> Payload:
        return {
            "id": str(thread_id), "type": 11, "guild_id": str(guild_id), "parent_id": str(parent_id),
            "owner_id": owner_id, "name": name, "message_count": 0, "member_count": 1,
            "rate_limit_per_user": 0, "flags": 0, "total_message_sent": 0,
            "thread_metadata": {"archived": False, "auto_archive_duration": 1440, "archive_timestamp": _now(),
                                "locked": False},
        }

    def _guild_of(self, channel_id: int) -> int | None:
        for guild in self.guilds.values():
            if guild.channel_id == channel_id or any(t["id"] == str(channel_id) for t in guild.payload["threads"]):
                return guild.id
        return None

    def _callback(self, token: str, body: Payload, files: dict[str, bytes]) -> Payload:
        """Types 4 (message), 5 (deferred 'thinking'), 7 (update the component's message)."""
        kind, data = body["type"], body.get("data") or {}
        interaction_id = str(self.snowflake())
        interaction = self._interaction_payloads[token]
        if kind == 7:
            message_id = int(interaction["message"]["id"])
            self._edit(message_id, data, files)
            message = self.messages[message_id]
        else:
            message = self._bot_message(int(interaction["channel_id"]), data, files, webhook=True)
            user = interaction["member"]["user"] if "member" in interaction else interaction["user"]
            message["interaction_metadata"] = {
                "id": interaction["id"], "type": interaction["type"], "user": user,
                "authorizing_integration_owners": {},
            }
            self.interactions[token] = message
        return {
            "interaction": {
                "id": interaction_id, "type": 2, "response_message_id": message["id"],
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(int(data.get("flags") or 0) & 64),
            },
            "resource": {"type": kind, "message": message},
        }



async def _read_body(request: web.Request) -> tuple[Any, dict[str, bytes]]:
    """JSON, or multipart with `payload_json` and `files[n]` parts."""
    if request.content_type.startswith("multipart/"):
        body: Any = {}
        files: dict[str, bytes] = {}
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "payload_json":
                body = json.loads(await part.text())
            elif part.filename:
                files[part.filename] = await part.read()
        return body, files
    raw = await request.read()
    return (json.loads(raw) if raw else {}), {}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """discord.py parses a body as JSON only when Content-Type is exactly application/json."""
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json", **(headers or {})}
    )


def _error(status: int, message: str, *, code: int = 0, retry_after: float | None = None) -> web.Response:
    if status == 429:
        return _json(
            {"message": "You are being rate limited.", "retry_after": retry_after or 0.05, "global": False},
            status=429,
            headers={"Via": "1.1 google", "Retry-After": str(retry_after or 0.05), "X-RateLimit-Scope": "user"},
        )
    return _json({"message": message, "code": code}, status=status)


def _now() -> str:
    return datetime.now(UTC).isoformat()
