"""The tool registry and the built-in tools (seed properties 1, 11, 27, 28, 32, 40)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Iterator

import psutil
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from core.agent import TurnDeps
from core.models import ConversationKey, UserKey
from core.tool_loop import run_tool_loop
from core.tools import builtin
from core.tools.registry import ToolPolicy, ToolRegistry
from tests.fakes.background import BackgroundApp


def deps() -> TurnDeps:
    return TurnDeps(
        user=UserKey(platform="console", workspace_id="w", user_id="u"),
        conversation=ConversationKey(platform="console", workspace_id="w", channel_id="c", thread_id="t"),
    )


def calls_then_answers(*calls: tuple[str, dict[str, object]]) -> FunctionModel:
    """A model that calls the given tools in one step, then repeats the tool results as its answer."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) == 1:
            return ModelResponse(parts=[ToolCallPart(name, args) for name, args in calls])
        results = [p.content for p in messages[-1].parts if isinstance(p, ToolReturnPart)]
        return ModelResponse(parts=[TextPart(" | ".join(map(str, results)))])

    return FunctionModel(respond)


async def run(registry: ToolRegistry, model: FunctionModel, d: TurnDeps | None = None) -> tuple[str, TurnDeps]:
    d = d or deps()
    output, _ = await run_tool_loop(
        model, "go", history=[], instructions="", settings={}, toolsets=registry.toolsets_for(None), deps=d
    )
    return output, d


@given(value=st.integers(-10**6, 10**6), word=st.text(alphabet="abcxyz", min_size=1, max_size=8))
async def test_p1_a_registered_function_runs_when_the_model_calls_it(value: int, word: str) -> None:
    def echo_tool(number: int, label: str) -> str:
        """Echo a number and a label."""
        return f"{label}={number}"

    registry = ToolRegistry()
    registry.register(echo_tool)
    output, _ = await run(registry, calls_then_answers(("echo_tool", {"number": value, "label": word})))
    assert output == f"{word}={value}"


async def test_p11_every_call_is_logged_with_masked_arguments(caplog: pytest.LogCaptureFixture) -> None:
    def lookup(query: str) -> str:
        """Look something up."""
        return "found"

    registry = ToolRegistry()
    registry.register(lookup)
    with caplog.at_level(logging.INFO, logger="parley.tools"):
        await run(registry, calls_then_answers(("lookup", {"query": "mail ada@example.com please"})))
    record = next(r for r in caplog.records if r.getMessage() == "tool call")
    assert record.tool == "lookup"  # type: ignore[attr-defined]
    assert "ada@example.com" not in str(vars(record))
    assert record.outcome == "ok" and record.duration_ms >= 0  # type: ignore[attr-defined]


async def test_p27_a_failing_tool_returns_a_clear_error_and_a_failed_step() -> None:
    def flaky() -> str:
        """Always fails."""
        raise ConnectionError("upstream refused")

    registry = ToolRegistry()
    registry.register(flaky, policy=ToolPolicy(retries=1))
    output, d = await run(registry, calls_then_answers(("flaky", {})))
    assert output == "Error: the flaky tool failed: upstream refused"
    assert [s.ok for s in d.steps] == [False]


async def test_a_slow_tool_is_stopped_at_its_timeout() -> None:
    async def slow() -> str:
        """Takes forever."""
        await asyncio.sleep(10)
        return "late"

    registry = ToolRegistry()
    registry.register(slow, policy=ToolPolicy(timeout_s=0.1, retries=0))
    started = time.monotonic()
    output, _ = await run(registry, calls_then_answers(("slow", {})))
    assert "took too long" in output and time.monotonic() - started < 2


async def test_p10_a_transient_tool_failure_is_retried() -> None:
    attempts = []

    def transient() -> str:
        """Fails once."""
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("blip")
        return "ok"

    registry = ToolRegistry()
    registry.register(transient, policy=ToolPolicy(retries=2))
    output, _ = await run(registry, calls_then_answers(("transient", {})))
    assert output == "ok" and len(attempts) == 2


async def test_p28_calls_over_a_tools_rate_limit_are_refused() -> None:
    def ping() -> str:
        """Ping."""
        return "pong"

    registry = ToolRegistry()
    registry.register(ping, policy=ToolPolicy(rate_per_min=2))
    output, d = await run(registry, calls_then_answers(("ping", {}), ("ping", {}), ("ping", {})))
    assert output.count("pong") == 2 and "rate limit" in output
    assert sorted(s.ok for s in d.steps) == [False, True, True]


async def test_p28_a_tools_rate_limit_holds_across_turns() -> None:
    def ping() -> str:
        """Ping."""
        return "pong"

    registry = ToolRegistry()
    registry.register(ping, policy=ToolPolicy(rate_per_min=2))
    first, _ = await run(registry, calls_then_answers(("ping", {}), ("ping", {})))
    second, _ = await run(registry, calls_then_answers(("ping", {})))
    assert first == "pong | pong" and "rate limit" in second


async def test_p32_p40_independent_calls_in_one_step_run_concurrently() -> None:
    async def wait_a() -> str:
        """Wait A."""
        await asyncio.sleep(0.3)
        return "a"

    async def wait_b() -> str:
        """Wait B."""
        await asyncio.sleep(0.3)
        return "b"

    registry = ToolRegistry()
    registry.register(wait_a)
    registry.register(wait_b)
    started = time.monotonic()
    output, _ = await run(registry, calls_then_answers(("wait_a", {}), ("wait_b", {})))
    assert sorted(output.split(" | ")) == ["a", "b"]
    assert time.monotonic() - started < 0.55


async def test_a_workspace_sees_only_its_enabled_tools() -> None:
    registry = ToolRegistry()
    registry.register(builtin.calculate)
    registry.register(builtin.current_datetime)
    seen: list[str] = []

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.extend(t.name for t in info.function_tools)
        return ModelResponse(parts=[TextPart("ok")])

    await run_tool_loop(
        FunctionModel(respond), "go", history=[], instructions="", settings={},
        toolsets=registry.toolsets_for(["calculate"]), deps=deps(),
    )
    assert seen == ["calculate"]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [("2+2", "4"), ("(17 * 23) / 4", "97.75"), ("2 ** 10", "1024"), ("round(10/3, 2)", "3.33"), ("-3 % 5", "2")],
)
def test_calculator_evaluates_arithmetic(expression: str, expected: str) -> None:
    assert builtin.calculate(expression) == expected


@pytest.mark.parametrize("expression", ["__import__('os')", "open('/etc/passwd')", "9 ** 99999", "1/0", "x + 1"])
def test_calculator_refuses_anything_but_arithmetic(expression: str) -> None:
    with pytest.raises(builtin.ToolInputError):
        builtin.calculate(expression)


def test_current_datetime_names_the_zone() -> None:
    assert "CET" in builtin.current_datetime("Europe/Paris") or "CEST" in builtin.current_datetime("Europe/Paris")
    with pytest.raises(builtin.ToolInputError):
        builtin.current_datetime("Nowhere/Special")


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/", "http://localhost/", "http://169.254.169.254/latest",
                                 "http://10.0.0.1/", "file:///etc/passwd"])
async def test_fetch_url_refuses_private_and_local_addresses(url: str) -> None:
    with pytest.raises(builtin.ToolInputError):
        await builtin.fetch_url(url)


async def test_fetch_url_reads_a_page_when_private_addresses_are_allowed(openai_server: object) -> None:
    from tests.fakes.openai_server import FakeOpenAI

    assert isinstance(openai_server, FakeOpenAI)
    text = await builtin.fetch_url(f"{openai_server.base_url}/models", allow_private=True)
    assert '"fake"' in text


def test_html_is_reduced_to_its_text() -> None:
    html = "<html><head><style>x{}</style><script>evil()</script></head><body><h1>Title</h1><p>Body</p></body>"
    assert builtin.html_to_text(html) == "Title\nBody"


# --- fetch_url under attack (issue 14, finding 4) -------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
        "224.0.0.1", "240.0.0.1", "255.255.255.255",
        "::1", "::", "fe80::1", "fc00::1", "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::127.0.0.1", "::10.0.0.1",  # IPv4-compatible
        "2002:7f00:1::", "2002:a9fe:a9fe::1",  # 6to4 around loopback, link-local
        "64:ff9b::7f00:1", "64:ff9b::a00:1",  # NAT64 well-known prefix
        "64:ff9b:1::a00:1",  # NAT64 local-use prefix
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    ],
)
def test_private_addresses_in_every_form_are_not_public(address: str) -> None:
    assert not builtin.is_public_ip(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "2002:808:808::"])
def test_public_addresses_are_public(address: str) -> None:
    assert builtin.is_public_ip(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/", "http://0x7f000001/", "http://0177.0.0.1/", "http://127.1/", "http://[::127.0.0.1]/",
        "http://[::ffff:127.0.0.1]/", "http://[64:ff9b::a9fe:a9fe]/latest", "http://[2002:a9fe:a9fe::]/",
    ],
)
async def test_fetch_url_refuses_literal_private_addresses_in_any_notation(url: str) -> None:
    async def no_dns(host: str, port: int) -> list[str]:
        raise AssertionError("a literal address needs no lookup")

    with pytest.raises(builtin.ToolInputError, match="not a public address"):
        await builtin.fetch_url(url, resolve=no_dns)


class Pages:
    """A local web server: a page that echoes the Host header, a redirect, and an endless page."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        self.server = BackgroundApp("pages")
        self.port = self.server.start(self._app)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/page", self._page)
        app.router.add_get("/redirect", self._redirect)
        app.router.add_get("/huge", self._huge)
        return app

    async def _page(self, request: web.Request) -> web.Response:
        self.hosts.append(request.headers["Host"])
        return web.Response(text=f"<html><body><p>hello {request.headers['Host']}</p></body></html>",
                            content_type="text/html")

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def _huge(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain", "Content-Length": str(400 * MB)})
        await response.prepare(request)
        chunk = b"x" * (64 * 1024)
        with contextlib.suppress(ConnectionError):
            for _ in range(400 * MB // len(chunk)):
                await response.write(chunk)
        return response


MB = 1024 * 1024


@pytest.fixture(scope="module")
def pages() -> Iterator[Pages]:
    server = Pages()
    yield server
    server.server.stop()


def only_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Stands in for "public" so that the local test server counts as the internet."""
    return str(address) == "127.0.0.1"


async def test_fetch_url_connects_to_the_address_it_checked_with_the_original_host(pages: Pages) -> None:
    answers = iter([["127.0.0.1"], ["10.0.0.1"]])  # a rebinding name: public first, private afterwards
    looked_up: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        looked_up.append(host)
        return next(answers)

    text = await builtin.fetch_url(f"http://rebind.test:{pages.port}/page", resolve=rebinding, allowed=only_loopback)
    assert text == f"hello rebind.test:{pages.port}"
    assert looked_up == ["rebind.test"]


async def test_fetch_url_refuses_a_name_with_any_private_address(pages: Pages) -> None:
    async def mixed(host: str, port: int) -> list[str]:
        return ["127.0.0.1", "10.0.0.1"]

    with pytest.raises(builtin.ToolInputError, match="not a public address"):
        await builtin.fetch_url(f"http://mixed.test:{pages.port}/page", resolve=mixed, allowed=only_loopback)


@pytest.mark.parametrize("to", ["http://inside.test/", "http://[::ffff:10.0.0.1]/", "http://169.254.169.254/latest"])
async def test_fetch_url_checks_every_redirect_again(pages: Pages, to: str) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"] if host == "outside.test" else ["10.0.0.1"]

    with pytest.raises(builtin.ToolInputError, match="not a public address"):
        await builtin.fetch_url(
            f"http://outside.test:{pages.port}/redirect?to={to}", resolve=resolve, allowed=only_loopback
        )


async def test_fetch_url_stops_reading_a_huge_page_at_the_cap(pages: Pages) -> None:
    process = psutil.Process()
    before = process.memory_info().rss
    text = await builtin.fetch_url(f"http://127.0.0.1:{pages.port}/huge", allow_private=True)
    grown = process.memory_info().rss - before
    assert text.startswith("x" * builtin.MAX_PAGE_CHARS) and text.endswith("[... the rest of the page]")
    assert grown < 50 * MB, f"fetching a 400 MB page grew the process by {grown / MB:.0f} MB"
