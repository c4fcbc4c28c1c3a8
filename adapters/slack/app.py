"""The Slack adapter's public entry: `SlackConfig`, `build_slack(config, pipeline, pool)`.

`SlackAdapter.router` is a FastAPI router (POST /slack/events; with OAuth configured also GET
/slack/install and /slack/oauth_redirect) for `parley serve` to include at the root;
`SlackAdapter.run_socket_mode()` serves the same app over Socket Mode (`parley slack`).
An Events API request is acknowledged as soon as its signature and shape are checked; Bolt (its
authorization, with OAuth a database lookup, and the listeners) runs after, in a tracked task. Under
`parley serve` that check and the ack run on the HTTP door's own event loop (`door_routes`), so no turn
work on the pipeline's loop delays them; Bolt runs on the pipeline's loop. Commands
and actions, whose ack carries a reply, go through Bolt before it answers (`process_before_response`);
their listeners only parse the payload and hand the work to tracked background tasks, so the ack still
leaves within milliseconds, with every piece of work already tracked for a shutdown to drain. A command or an
action runs once per signature, an event once per `event_id` (`replays`): the same signed bytes sent again, or
Slack's retry of an event already received, are acknowledged and do nothing.

POST /slack/events reads at most `verify.MAX_BODY_BYTES` and checks the signature on the raw bytes
before anything parses them: unsigned, stale, oversized or malformed requests get a 4xx and one log
line, and Bolt (which would log a failing body) only ever sees requests Slack signed. A signed event
of an unexpected shape, or one a listener fails on, is acknowledged with a warning: Slack would
otherwise retry it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import aiohttp
import httpx
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from slack_bolt import BoltResponse
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import to_async_bolt_request, to_starlette_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.context.say.async_say import AsyncSay
from slack_bolt.context.set_suggested_prompts.async_set_suggested_prompts import AsyncSetSuggestedPrompts
from slack_bolt.middleware.assistant.async_assistant import AsyncAssistant
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.oauth.state_store.stateless import StatelessOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient
from starlette.types import ASGIApp, Receive, Scope, Send

from adapters.slack.commands import (
    FORGET_CANCEL_ACTION,
    FORGET_CONFIRM_ACTION,
    FORGET_WARNING,
    Forget,
    ForgetFact,
    Help,
    MemoryAdmin,
    SetSetting,
    ShowMemory,
    ShowSettings,
    UnsetSetting,
    forget_confirmation_blocks,
    help_text,
    parse_command,
)
from adapters.slack.delivery import DeliveryOptions
from adapters.slack.events import MalformedEvent, parse_message, parse_reaction
from adapters.slack.feedback import FEEDBACK_ACTION, parse_feedback_click
from adapters.slack.files import file_hosts
from adapters.slack.formatting import SLACK_TEXT_LIMIT
from adapters.slack.handlers import GREETING, SUGGESTED_PROMPTS, FileLimits, SlackHandlers, command_user
from adapters.slack.identity import bot_authorize
from adapters.slack.installation import PostgresInstallationStore, PostgresOAuthStateStore
from adapters.slack.pacing import ChannelPacer
from adapters.slack.replays import TURN_EVENTS, first_delivery, first_event
from adapters.slack.tasks import TaskTracker
from adapters.slack.verify import (
    MAX_BODY_BYTES,
    TOO_LARGE,
    Refusal,
    check_signature,
    declared_too_large,
    parse_payload,
    unexpected_shape,
)
from adapters.slack.viewing import viewed_channel
from core.loops import call_on, on_loop
from core.pipeline import DB_ERRORS, Pipeline
from core.store.pool import Pool

log = logging.getLogger("parley.slack")
DEFAULT_API_URL = "https://slack.com/api/"
EVENTS_PATH = "/slack/events"
WEB_API_TIMEOUT_S = 30
"""Seconds a Web API call may take, as slack_sdk's own default."""
DATABASE_AWAY = "Parley cannot reach its database right now, so it did nothing; please try again in a minute."
"""The ack of a command or click while the database is away: without it no delivery can be told from a replay."""
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
BOT_SCOPES: tuple[str, ...] = (
    "app_mentions:read",
    "assistant:write",
    "channels:history",
    "channels:read",
    "chat:write",
    "commands",
    "files:read",
    "files:write",
    "groups:history",
    "groups:read",
    "im:history",
    "im:read",
    "im:write",
    "mpim:history",
    "mpim:read",
    "reactions:read",
    "users:read",
)


REFUSED_TOKEN_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive", "not_allowed_token_type"}
)
"""Slack's answers that mean the token itself is wrong (not that Slack is unreachable or busy)."""


WHERE_TO_GET_AGAIN = {
    "SLACK_BOT_TOKEN": "copy the Bot User OAuth Token (xoxb-...) again from your Slack app's OAuth & Permissions page; "
                       "reinstall the app to the workspace if it was revoked",
    "SLACK_APP_TOKEN": "generate an app-level token with connections:write under your Slack app's Basic Information > "
                       "App-Level Tokens, and copy it again",
}
"""Where to get each token again when Slack refuses it (`parley slack`, `parley serve`, `parley doctor`)."""


class RefusedToken(Exception):
    """Slack refused a token when Parley signed in at start; `variable` names the setting, `fix` where to get
    it again."""

    def __init__(self, variable: str, error: str) -> None:
        super().__init__(f"{variable}: Slack refused it ({error})")
        self.variable = variable
        self.error = error
        self.fix = WHERE_TO_GET_AGAIN[variable]


BOLT_TOKEN_NOTICE = "As you gave `client` as well, `token` will be unused."
"""Bolt reads SLACK_BOT_TOKEN from the environment, which is where Parley's own setting lives, and warns that
the client given to it wins; each event's token comes from `authorize`, so the warning only puzzles."""


class MissingScopeNotice(AsyncRetryHandler):
    """Names, once, each scope Slack says the app lacks. The code that handles a refused call logs only
    `missing_scope`, while Slack's answer says which scope (`needed`), and the fix is a setting of the app,
    not of Parley. Written as a retry handler that never retries: slack_sdk shows every answer to the
    client's retry handlers, and Bolt gives each event's client the same ones."""

    def __init__(self) -> None:
        # slack_sdk asks a handler only while the request's retries are below its count: unbounded, so an answer
        # after another handler's retry (a 429) is seen too; this one never asks for a retry itself.
        super().__init__(max_retry_count=2**31)
        self.reported: set[str] = set()

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        body = response.body if response is not None else None
        if isinstance(body, dict) and body.get("error") == "missing_scope":
            self.name(request.url.rsplit("/", 1)[-1], str(body.get("needed") or ""))
        return False

    def name(self, method: str, needed: str) -> None:
        if needed in self.reported:
            return
        self.reported.add(needed)
        log.warning(
            "Slack refused %s: the app lacks the scope %s. Add it under OAuth & Permissions > Bot Token Scopes "
            "(adapters/slack/manifest.yml lists every scope Parley uses), then reinstall the app to the workspace",
            method, needed or "(Slack did not say which)",
        )


class _DropBoltTokenNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != BOLT_TOKEN_NOTICE


@dataclass(frozen=True, kw_only=True)
class SlackConfig:
    """Everything the adapter needs; `bot/` fills it from Settings. Secrets never appear in repr."""

    bot_token: str | None = field(default=None, repr=False)
    """Single-workspace mode; leave empty with OAuth (client id and secret) for many workspaces."""
    signing_secret: str | None = field(default=None, repr=False)
    """Required for HTTP mode; Socket Mode does not use it."""
    app_token: str | None = field(default=None, repr=False)
    """`xapp-...`, required for Socket Mode."""
    api_url: str | None = None
    """Web API base URL (default Slack's); a fake in tests, or a proxy."""
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    state_secret: str | None = field(default=None, repr=False)
    """Signs OAuth `state` values (stateless); without it they are stored in Postgres."""
    redirect_uri: str | None = None
    thread_followups: bool = True
    """Answer follow-ups in a thread Parley is part of without a new mention."""
    agent_view: bool = True
    """The app uses Slack's agent messaging experience (manifest `agent_view`): each top-level DM is
    answered in a thread of its own. False for an app still on `assistant_view` or a plain bot DM."""
    max_file_bytes: int = 20_000_000
    streaming: bool = True
    channel_messages_per_s: float = 1.0
    update_interval_s: float = 1.0
    stream_max_age_s: float = 300.0
    message_limit: int = SLACK_TEXT_LIMIT
    rate_limit_retries: int = 3
    drain_timeout_s: float = 30.0

    @property
    def oauth(self) -> bool:
        return bool(self.client_id and self.client_secret)

    @property
    def base_url(self) -> str:
        return self.api_url or DEFAULT_API_URL


def build_slack(
    config: SlackConfig, pipeline: Pipeline, pool: Pool, *, memory: MemoryAdmin | None = None
) -> SlackAdapter:
    """The Slack adapter for `pipeline`. `memory` defaults to the memory area's functions."""
    if memory is None:
        from adapters.slack.memory_admin import CoreMemoryAdmin

        memory = CoreMemoryAdmin(pool)
    return SlackAdapter(config, pipeline, pool, memory)


class SlackAdapter:
    def __init__(self, config: SlackConfig, pipeline: Pipeline, pool: Pool, memory: MemoryAdmin) -> None:
        if not config.bot_token and not config.oauth:
            raise ValueError("Slack needs SLACK_BOT_TOKEN, or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET for OAuth")
        self.config = config
        self.pool = pool
        self.tasks = TaskTracker()
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(30.0), follow_redirects=True)
        # One session, so the Web API calls of a turn (a stream's start, appends and stop, reactions) reuse kept-alive
        # connections: without it slack_sdk opens a session and a new connection for every call, which was 3 % of a
        # worker's samples in a load run's Slack phase (py-spy) for the connecting alone. Built on the loop that runs
        # the adapter's work, as the session is bound to it.
        self.client = AsyncWebClient(
            token=None,  # each event's client gets its workspace's token from the authorization (bot_authorize, OAuth)
            base_url=config.base_url,
            session=aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WEB_API_TIMEOUT_S)),
            retry_handlers=[
                MissingScopeNotice(),
                AsyncConnectionErrorRetryHandler(max_retry_count=2),
                AsyncRateLimitErrorRetryHandler(max_retry_count=config.rate_limit_retries),
            ],
        )
        self.handlers = SlackHandlers(
            pipeline=pipeline,
            pool=pool,
            memory=memory,
            http=self.http,
            pacer=ChannelPacer(config.channel_messages_per_s),
            delivery=DeliveryOptions(
                limit=config.message_limit,
                streaming=config.streaming,
                stream_max_age_s=config.stream_max_age_s,
                update_interval_s=config.update_interval_s,
            ),
            files=FileLimits(max_bytes=config.max_file_bytes, extra_hosts=file_hosts(config.api_url)),
            thread_followups=config.thread_followups,
            agent_view=config.agent_view,
        )
        self.other_teams: set[str] = set()
        """Workspaces whose events came to a bot token of another workspace (warned about once each)."""
        self.app = self._build_app(pool)
        self.router = self._build_router()

    async def run_socket_mode(self) -> None:
        """Serve over Socket Mode until cancelled; then close the socket and drain replies in flight."""
        if not self.config.app_token:
            raise ValueError("Socket Mode needs SLACK_APP_TOKEN (an xapp- token with connections:write)")
        await self.sign_in()
        handler = AsyncSocketModeHandler(self.app, self.config.app_token)
        await handler.connect_async()
        log.info("slack socket mode connected")
        try:
            await asyncio.Event().wait()
        finally:
            await handler.close_async()
            await self.aclose()

    async def sign_in(self) -> None:
        """Ask Slack about the tokens before serving, and raise `RefusedToken` for one it refuses: a wrong app
        token otherwise made Bolt retry its connection every ten seconds for good, and a wrong bot token
        surfaced only at the first message, as Bolt's 'the AuthorizeResult ... was not found' and no reply.
        Slack out of reach is left to Bolt's retries."""
        checks: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
        if self.config.app_token:
            app_token = self.config.app_token
            checks.append(("SLACK_APP_TOKEN", lambda: self.client.apps_connections_open(app_token=app_token)))
        if self.config.bot_token:
            bot_token = self.config.bot_token
            checks.append(("SLACK_BOT_TOKEN", lambda: self.client.auth_test(token=bot_token)))
        for variable, check in checks:
            try:
                answer = await check()
            except SlackApiError as exc:
                error = str(exc.response.get("error") or "")
                if error in REFUSED_TOKEN_ERRORS:
                    raise RefusedToken(variable, error) from exc
                log.warning("slack: could not check %s (%s)", variable, error)
                continue
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("slack: could not check %s (%s)", variable, type(exc).__name__)
                continue
            if variable == "SLACK_BOT_TOKEN":
                log.info("signed in to Slack as %s in %s (%s)", answer.get("user"), answer.get("team"),
                         answer.get("team_id"))

    async def drain(self, timeout_s: float | None = None) -> None:
        """Wait for the replies being worked on."""
        await self.tasks.drain(self.config.drain_timeout_s if timeout_s is None else timeout_s)

    async def aclose(self) -> None:
        await self.drain()
        await self.http.aclose()
        if self.client.session is not None:
            await self.client.session.close()

    # -- wiring ------------------------------------------------------------------------------
    def _build_app(self, pool: Pool) -> AsyncApp:
        config = self.config
        oauth: AsyncOAuthSettings | None = None
        if config.oauth:
            assert config.client_id and config.client_secret
            oauth = AsyncOAuthSettings(
                client_id=config.client_id,
                client_secret=config.client_secret,
                scopes=list(BOT_SCOPES),
                redirect_uri=config.redirect_uri,
                install_path=INSTALL_PATH,
                redirect_uri_path=REDIRECT_PATH,
                installation_store=PostgresInstallationStore(pool, client_id=config.client_id),
                installation_store_bot_only=True,
                state_store=(
                    StatelessOAuthStateStore(expiration_seconds=600, signing_secret=config.state_secret)
                    if config.state_secret
                    else PostgresOAuthStateStore(pool, expiration_seconds=600)
                ),
            )
        bolt_log = logging.getLogger("parley.slack.bolt")
        if not any(isinstance(f, _DropBoltTokenNotice) for f in bolt_log.filters):
            bolt_log.addFilter(_DropBoltTokenNotice())
        app = AsyncApp(
            name="parley",
            logger=bolt_log,
            client=self.client,
            process_before_response=True,
            signing_secret=config.signing_secret or "",
            request_verification_enabled=config.signing_secret is not None,
            oauth_settings=oauth,
            installation_store_bot_only=True if oauth else None,
            authorize=None if oauth else bot_authorize(self.client, config.bot_token or ""),
        )
        # Apps created before the agent messaging experience (manifest `assistant_view`) still get
        # assistant_thread_started and assistant-thread messages; both experiences are served.
        assistant = AsyncAssistant()
        assistant.thread_started(self._on_thread_started)
        assistant.thread_context_changed(self._on_context_changed)
        assistant.user_message(self._on_message_event)
        app.use(self._once_per_event)
        app.use(assistant)
        if not config.oauth:
            app.use(self._warn_other_workspace)
        app.event("app_context_changed")(self._on_context_changed)
        app.event("app_mention")(self._on_message_event)
        app.event("message")(self._on_message_event)
        app.event("reaction_added")(self._on_reaction)
        app.event("reaction_removed")(self._on_reaction)
        app.event("app_home_opened")(self._on_home_opened)
        app.command("/parley")(self._on_command)
        app.action(FORGET_CONFIRM_ACTION)(self._on_forget)
        app.action(FORGET_CANCEL_ACTION)(self._on_forget_cancel)
        app.error(self._on_listener_error)
        app.action(FEEDBACK_ACTION)(self._on_feedback)
        return app

    def _build_router(self) -> APIRouter:
        handler = AsyncSlackRequestHandler(self.app)

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            yield
            await self.aclose()

        router = APIRouter(lifespan=lifespan, tags=["slack"])

        @router.post(EVENTS_PATH, include_in_schema=False)
        async def slack_events(request: Request) -> Response:
            return await self._events(request, asyncio.get_running_loop())

        if self.config.oauth:

            @router.get(INSTALL_PATH, include_in_schema=False)
            async def slack_install(request: Request) -> Response:
                return await handler.handle(request)

            @router.get(REDIRECT_PATH, include_in_schema=False)
            async def slack_oauth_redirect(request: Request) -> Response:
                return await handler.handle(request)

        return router

    def door_routes(self, work: asyncio.AbstractEventLoop) -> dict[str, Callable[[ASGIApp], ASGIApp]]:
        """POST /slack/events for a server whose HTTP side runs on a loop of its own (bot/front_door.py):
        the ack leaves from that loop, whatever the turns on `work` (the pipeline's loop) are doing, and
        Bolt and its listeners run on `work`."""

        async def events(scope: Scope, receive: Receive, send: Send) -> None:
            request = Request(scope, receive)
            if request.method == "POST":
                response = await self._events(request, work)
            else:
                response = JSONResponse({"error": "method not allowed"}, status_code=405)
            await response(scope, receive, send)

        return {EVENTS_PATH: lambda _: events}

    async def _events(self, request: Request, work: asyncio.AbstractEventLoop) -> Response:
        if self.config.signing_secret is None:
            return JSONResponse({"error": "SLACK_SIGNING_SECRET is not set"}, status_code=503)
        return await self._handle_events(request, work)

    async def _handle_events(self, request: Request, work: asyncio.AbstractEventLoop) -> Response:
        """Cap, verify, parse, then hand to Bolt on the `work` loop; see the module docstring."""
        assert self.config.signing_secret is not None
        if declared_too_large(request.headers):
            return _refused(TOO_LARGE)
        body = await _read_capped(request)
        if body is None:
            return _refused(TOO_LARGE)
        refusal = check_signature(body, request.headers, signing_secret=self.config.signing_secret, now=time.time())
        if refusal is not None:
            return _refused(refusal)
        payload = parse_payload(body, request.headers.get("content-type"))
        if isinstance(payload, Refusal):
            return _refused(payload)
        problem = unexpected_shape(payload)
        if problem is not None:
            log.warning("slack event skipped: %s", problem)
            return Response(status_code=200)
        if payload.get("type") == "event_callback":
            # An Events API ack carries nothing: it leaves now, before Bolt reads the request (parsing it
            # once more), authorizes it (with OAuth, an installation lookup in the database) or runs any
            # listener, so the ack costs the event loop as little as it can under load.
            call_on(work, lambda: self.tasks.spawn(self._dispatch_acked(request, body), name="slack-event"))
            return Response(status_code=200)
        bolt_request = _bolt_request(request, body)
        if bolt_request is None:
            return Response(status_code=200)
        signature = request.headers["x-slack-signature"]
        return to_starlette_response(await on_loop(work, partial(self._dispatch_once, bolt_request, signature)))

    async def _dispatch_once(self, bolt_request: AsyncBoltRequest, signature: str) -> BoltResponse:
        """A command or an interaction, run unless its signature was seen before (`replays`): a replay is
        acknowledged and does nothing. Without the database no delivery can be told from a replay, so none
        runs (a command names the outage in its ack)."""
        try:
            first = await first_delivery(self.pool, signature)
        except DB_ERRORS as exc:
            log.warning("slack request not run: the database is unavailable (%s)", type(exc).__name__)
            return BoltResponse(status=200, body=DATABASE_AWAY)
        if not first:
            log.warning("slack request replayed (its signature was seen before): acknowledged, not run again")
            return BoltResponse(status=200, body="")
        return await self.app.async_dispatch(bolt_request)

    async def _once_per_event(
        self, req: AsyncBoltRequest, body: dict[str, Any], next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse:
        """An event runs unless its `event_id` was seen before (`replays`): a replay, or a Slack retry of an event
        already received, is acknowledged and does nothing. Parley acknowledges an event before handling it, so
        Slack retries only one whose ack did not reach it: one never received runs, one received does not run
        again, even if its handling failed (as a failed event is acknowledged, a retry would fail the same way).
        Without the database the event runs unclaimed: its listeners need none (a greeting) or keep their work for
        it (a rating waits in the outbox), and losing it would cost more than a replay in that minute."""
        event = body.get("event")
        event_id = body.get("event_id")
        if (body.get("type") != "event_callback" or not isinstance(event, dict) or not isinstance(event_id, str)
                or event.get("type") in TURN_EVENTS):
            return await next()
        try:
            first = await first_event(self.pool, event_id)
        except DB_ERRORS as exc:
            log.warning("slack event run unclaimed: the database is unavailable (%s)", type(exc).__name__)
            return await next()
        if first:
            return await next()
        retry = req.headers.get("x-slack-retry-num", [None])[0]
        log.warning("slack event %s (%s) seen before (%s): acknowledged, not run again", event_id,
                    event.get("type"), f"Slack's retry {retry}" if retry else "sent again")
        return BoltResponse(status=200, body="")

    async def _dispatch_acked(self, request: Request, body: bytes) -> None:
        """Bolt's work on an event already acknowledged; what it would have answered goes to the log."""
        bolt_request = _bolt_request(request, body)
        if bolt_request is None:
            return
        response = await self.app.async_dispatch(bolt_request)
        if response.status >= 400:
            log.warning("slack event not handled (Bolt answered %d)", response.status)

    async def _on_listener_error(self, error: Exception) -> BoltResponse:
        """Acknowledged all the same: a retry of the same event would fail the same way."""
        reason = str(error) if isinstance(error, MalformedEvent) else type(error).__name__
        log.warning("slack event skipped: %s", reason)
        log.debug("slack listener failed", exc_info=error)
        return BoltResponse(status=200, body="")

    async def _warn_other_workspace(
        self, context: AsyncBoltContext, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse:
        """Name a bot token of another workspace than the events' once: its replies fail there with
        `channel_not_found`, which does not say that SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (or
        SLACK_APP_TOKEN) were copied from different apps or installs. An Enterprise Grid org's events
        carry their workspace, not the token's, and are left alone."""
        token_team = context.authorize_result.team_id if context.authorize_result is not None else None
        event_team = context.team_id
        if (token_team and event_team and event_team != token_team and not context.enterprise_id
                and event_team not in self.other_teams):
            self.other_teams.add(event_team)
            log.warning(
                "an event came from Slack workspace %s, but SLACK_BOT_TOKEN belongs to workspace %s: copy the Bot "
                "User OAuth Token of the app installed in %s (OAuth & Permissions), from the same app as "
                "SLACK_SIGNING_SECRET (HTTP) or SLACK_APP_TOKEN (Socket Mode)", event_team, token_team, event_team,
            )
        return await next()

    # -- Bolt listeners: parse, spawn, return (Bolt has already acknowledged) ----------------
    async def _on_message_event(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        message = parse_message(event, team_id=_team(context), bot_user_id=context.bot_user_id)
        viewed = viewed_channel(event)
        if message is not None and viewed is not None:
            self.handlers.viewing.note(message.team_id, message.user_id, viewed)
        if message is not None:
            self.tasks.spawn(
                self.handlers.message(message, client=context.client, token=_token(context)),
                name=f"slack-message-{message.key}",
            )

    async def _on_thread_started(self, say: AsyncSay, set_suggested_prompts: AsyncSetSuggestedPrompts) -> None:
        async def greet() -> None:
            await say(GREETING)
            await set_suggested_prompts(prompts=list(SUGGESTED_PROMPTS))

        self.tasks.spawn(greet(), name="slack-assistant-greeting")

    async def _on_context_changed(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        """Remember which channel the person is viewing (agent view, or an assistant_view app)."""
        thread = event.get("assistant_thread")
        user = event.get("user") or (thread.get("user_id") if isinstance(thread, dict) else None)
        viewed = viewed_channel(event)
        if user and viewed:
            self.handlers.viewing.note(_team(context), str(user), viewed)

    async def _on_reaction(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        reaction = parse_reaction(event, team_id=_team(context), bot_user_id=context.bot_user_id)
        if reaction is not None:
            self.tasks.spawn(self.handlers.reaction(reaction), name=f"slack-reaction-{reaction.ts}")

    async def _on_home_opened(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        """The Home tab shows the profile; the Messages tab (the agent view's entry) offers suggested prompts."""
        if event.get("tab") == "home" and event.get("user"):
            user = command_user(_team(context), str(event["user"]))
            self.tasks.spawn(self.handlers.publish_home(user, context.client), name="slack-home")
        elif event.get("tab") == "messages" and event.get("channel"):
            self.tasks.spawn(
                self.handlers.suggest_prompts(str(event["channel"]), context.client), name="slack-suggested-prompts"
            )

    async def _on_feedback(
        self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
    ) -> None:
        await ack()
        click = parse_feedback_click(body, team_id=_team(context))
        if click is not None:
            self.tasks.spawn(self.handlers.feedback(click, respond), name=f"slack-feedback-{click.ts}")

    async def _on_command(
        self, ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
    ) -> None:
        parsed = parse_command(str(command.get("text") or ""))
        if isinstance(parsed, Help):
            await ack(text=help_text(parsed.unknown))
            return
        if isinstance(parsed, Forget):
            await ack(text=FORGET_WARNING, blocks=forget_confirmation_blocks())
            return
        await ack()
        user = command_user(_team(context), str(command["user_id"]))
        channel = str(command.get("channel_id") or "")
        in_dm = channel.startswith("D") or command.get("channel_name") == "directmessage"
        if isinstance(parsed, ShowMemory | ForgetFact):
            self.tasks.spawn(
                self.handlers.memory_command(parsed, user, "" if in_dm else channel, respond), name="slack-memory"
            )
            return
        if isinstance(parsed, ShowSettings | SetSetting | UnsetSetting):
            self.tasks.spawn(
                self.handlers.settings_command(
                    parsed, user, "" if in_dm else channel, client=context.client, respond=respond
                ),
                name="slack-settings",
            )
            return
        self.tasks.spawn(self.handlers.profile_command(parsed, user, respond), name="slack-profile")

    async def _on_forget(
        self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
    ) -> None:
        await ack()
        user = command_user(_team(context), str(body["user"]["id"]))
        from_home = (body.get("container") or {}).get("type") == "view"
        self.tasks.spawn(
            self.handlers.forget(
                user, respond=None if from_home else respond, client=context.client if from_home else None
            ),
            name="slack-forget",
        )

    async def _on_forget_cancel(self, ack: AsyncAck, respond: AsyncRespond) -> None:
        await ack()
        self.tasks.spawn(
            respond(text="OK, I kept everything.", replace_original=True, response_type="ephemeral"),
            name="slack-forget-cancel",
        )


def _bolt_request(request: Request, body: bytes) -> AsyncBoltRequest | None:
    """Bolt's view of a verified request; None (with a warning) when Bolt cannot read it: acknowledged all
    the same, as a retry would fail the same way."""
    try:
        return to_async_bolt_request(request, body)
    except Exception as exc:
        log.warning("slack event skipped: Bolt cannot read it (%s)", type(exc).__name__)
        log.debug("unreadable slack event", exc_info=exc)
        return None


def _team(context: AsyncBoltContext) -> str:
    return str(context.team_id or context.enterprise_id or "")


def _token(context: AsyncBoltContext) -> str:
    return str(context.bot_token or "")


async def _read_capped(request: Request) -> bytes | None:
    """The body, or None as soon as it grows past the cap (the rest is never read)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _refused(refusal: Refusal) -> Response:
    log.warning("slack request refused: %s", refusal.reason)
    return JSONResponse({"error": refusal.reason}, status_code=refusal.status)
