"""The tool registry: typed Python functions, plugins and MCP servers, each call guarded.

Every call goes through `GuardedToolset`: rate limit, timeout, retries, a log line with masked
arguments, a reasoning step on the turn, and its progress to the turn's `on_tool` listener (if any).
A failing tool returns a clear error to the model instead of ending the turn, so the person hears
what went wrong.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from typing import Any

from aiolimiter import AsyncLimiter
from pydantic_ai import RunContext
from pydantic_ai.exceptions import ModelRetry
from pydantic_ai.toolsets import AbstractToolset, FunctionToolset, WrapperToolset
from pydantic_ai.toolsets.abstract import ToolsetTool
from tenacity import AsyncRetrying, retry_if_not_exception_type, stop_after_attempt, wait_exponential

from core.guard.masking import scrub
from core.models import Step, ToolProgress
from core.tools import builtin

log = logging.getLogger("parley.tools")
ENTRY_POINT_GROUP = "parley.tools"
RESULT_SUMMARY_CHARS = 300


@dataclass(frozen=True, kw_only=True)
class ToolPolicy:
    timeout_s: float = 15.0
    retries: int = 1
    """Extra attempts after a failure that is not the caller's fault."""
    rate_per_min: float = 60.0


@dataclass
class ToolRegistry:
    """What tools exist and with which policy; `toolsets_for` picks a workspace's enabled ones."""

    functions: FunctionToolset[Any] = field(default_factory=FunctionToolset)
    policies: dict[str, ToolPolicy] = field(default_factory=dict)
    external: dict[str, AbstractToolset[Any]] = field(default_factory=dict)
    default_policy: ToolPolicy = field(default_factory=ToolPolicy)
    limiters: dict[str, AsyncLimiter] = field(default_factory=dict)
    """Each tool's rate budget, kept by the registry: a turn's toolsets are built per turn, and a budget
    that lived in them started full on every turn, so a per-minute limit never held across turns."""

    def register(
        self, func: Callable[..., Any], *, name: str | None = None, policy: ToolPolicy | None = None
    ) -> None:
        """Add a typed Python function (sync or async, with or without RunContext) as a tool."""
        tool = self.functions.add_function(func, name=name)
        self.policies[tool.name] = policy or self.default_policy

    def add_toolset(self, name: str, toolset: AbstractToolset[Any]) -> None:
        """An MCP server or any other toolset, enabled per workspace by `name`."""
        self.external[name] = toolset

    @property
    def names(self) -> list[str]:
        return [*self.functions.tools, *self.external]

    def toolsets_for(self, enabled: Sequence[str] | None) -> list[AbstractToolset[Any]]:
        """The guarded toolsets for one workspace; `None` enables everything."""
        allowed = set(enabled) if enabled is not None else None
        functions = (
            self.functions
            if allowed is None
            else self.functions.filtered(lambda ctx, tool: tool.name in allowed)
        )
        chosen = [toolset for name, toolset in self.external.items() if allowed is None or name in allowed]
        return [GuardedToolset(t, self.policies, self.default_policy, self.limiters) for t in (functions, *chosen)]


class GuardedToolset(WrapperToolset[Any]):
    def __init__(
        self,
        wrapped: AbstractToolset[Any],
        policies: dict[str, ToolPolicy],
        default: ToolPolicy,
        limiters: dict[str, AsyncLimiter],
    ) -> None:
        super().__init__(wrapped)
        self.policies = policies
        self.default = default
        self.limiters = limiters

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        policy = self.policies.get(name, self.default)
        limiter = self.limiters.setdefault(name, AsyncLimiter(policy.rate_per_min, 60))
        started = time.perf_counter()
        outcome = "ok"
        masked_args: dict[str, object] = {k: scrub(str(v)) for k, v in tool_args.items()}
        progress = ToolProgress(
            call_id=ctx.tool_call_id or f"{name}-{started}", tool=name, args=masked_args, status="pending"
        )
        await _report(ctx, progress)
        try:
            if not limiter.has_capacity():
                raise RuntimeError(f"rate limit of {policy.rate_per_min:g} calls a minute reached")
            await limiter.acquire()
            await _report(ctx, replace(progress, status="in_progress"))
            result = await self._attempts(name, tool_args, ctx, tool, policy)
            summary = str(result)
            return result
        except ModelRetry:
            outcome = "retry"
            summary = "asked the model to retry"
            raise
        except Exception as exc:
            outcome = "error"
            summary = f"Error: the {name} tool failed: {_reason(exc)}"
            return summary
        finally:
            duration_ms = (time.perf_counter() - started) * 1000
            log.info(
                "tool call",
                extra={
                    "tool": name, "tool_args": masked_args, "duration_ms": round(duration_ms, 1), "outcome": outcome
                },
            )
            short = scrub(summary)[:RESULT_SUMMARY_CHARS]
            steps: list[Step] | None = getattr(ctx.deps, "steps", None)
            if steps is not None:
                steps.append(
                    Step(
                        tool=name, args=masked_args, result=short, ok=outcome == "ok", duration_ms=round(duration_ms, 1)
                    )
                )
            await _report(ctx, replace(progress, status="complete" if outcome == "ok" else "error", output=short))

    async def _attempts(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any], policy: ToolPolicy
    ) -> Any:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(policy.retries + 1),
            wait=wait_exponential(multiplier=0.2, max=2),
            retry=retry_if_not_exception_type((ModelRetry, builtin.ToolInputError, asyncio.TimeoutError)),
            reraise=True,
        ):
            with attempt:
                return await asyncio.wait_for(super().call_tool(name, tool_args, ctx, tool), policy.timeout_s)
        raise AssertionError("unreachable")


async def _report(ctx: RunContext[Any], progress: ToolProgress) -> None:
    """Tell the turn's listener (an adapter showing progress); its failure never fails the tool."""
    listener = getattr(ctx.deps, "on_tool", None)
    if listener is None:
        return
    try:
        await listener(progress)
    except Exception as exc:
        log.warning("tool progress listener failed: %s", type(exc).__name__)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "it took too long and was stopped"
    return scrub(str(exc)) or type(exc).__name__


def load_entry_point_tools(registry: ToolRegistry) -> list[str]:
    """Register tools that installed packages declare under the `parley.tools` entry-point group.

    An entry point names a typed function, or a list of them.
    """
    added: list[str] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = ep.load()
        except Exception:
            log.exception("could not load tool plugin %s", ep.name)
            continue
        funcs = loaded if isinstance(loaded, list | tuple) else [loaded]
        for func in funcs:
            registry.register(func)
            added.append(getattr(func, "__name__", ep.name))
    return added


def load_mcp_servers(registry: ToolRegistry, servers: Sequence[dict[str, Any]]) -> list[str]:
    """Add MCP servers from settings: {"name", "url"} or {"name", "command", "args", "env"}.

    The MCP client (about a second to import) is imported only when a server is configured."""
    added: list[str] = []
    for server in servers:
        from pydantic_ai.mcp import MCPToolset

        name = str(server["name"])
        spec = {k: v for k, v in server.items() if k != "name"}
        # An MCP config dict (FastMCP accepts it at run time; the stubs name only its parsed forms).
        registry.add_toolset(name, MCPToolset({"mcpServers": {name: spec}}, id=name))  # type: ignore[arg-type]
        added.append(name)
    return added
