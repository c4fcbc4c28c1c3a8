"""How the configured rails are run: through NeMo's Colang runtime, or straight to their actions.

Both engines read the same NeMo `RailsConfig` (which flows are on, for which stage) and call the same
registered actions, which return NeMo `RailOutcome`s; the Guard turns those into a verdict.

`NemoEngine` runs `LLMRails.generate_async` with `options={"rails": [stage]}`. Every flow goes through
the Colang 1.0 runtime, which re-evaluates its flow states and expressions on each event: about 25 ms
of CPU per check on this machine (measured; the actions themselves take 1-2 ms once the text is
encoded), which is most of what a turn costs under load.

`DirectEngine` is NeMo's own IORails idea (a compiled path for configurations that only run input and
output rails) applied to Parley's custom rails, which IORails cannot run because it only knows its
built-in manifests. It accepts a flow only when the flow is the plain rail pattern: run one action on
the stage's message, then on a block utter a refusal and stop, on a transform set the message. Such a
flow decides nothing beyond its action's outcome, so calling the actions concurrently gives what NeMo's
parallel rails give. Any other flow (the LLM self-check rails among them) makes `select_engine` fall
back to `NemoEngine` for the whole configuration, as NeMo's `Guardrails` wrapper does.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from nemoguardrails.actions.rail_outcome import RailOutcome

from core.guard.events import Stage
from core.guard.self_check import PARSER_NAME, self_check_verdict

log = logging.getLogger(__name__)

Action = Callable[..., Awaitable[RailOutcome]]
EngineChoice = Literal["auto", "nemo"]

_MESSAGE = {"input": "user_message", "output": "bot_message"}
_CONDITION = re.compile(r"\$(?P<key>\w+)\.(is_blocked|is_transform)")


class RailEngine(Protocol):
    """Runs one stage's rails on a text and returns every rail's outcome."""

    async def outcomes(self, stage: Stage, text: str, context: dict[str, Any]) -> list[RailOutcome]: ...


class NemoEngine:
    """The rails through NeMo's LLMRails and its Colang runtime (any flow, LLM rails included)."""

    def __init__(self, config: Any, *, llm: Any, actions: Mapping[str, Action]) -> None:
        from nemoguardrails import LLMRails

        self.rails = LLMRails(config, llm=llm)
        # LLMRails keeps every conversation's event history for reuse by the next message of the
        # same conversation. Rails-only calls never continue one, so the cache only grows: measured
        # +80 % resident memory over 10,000 turns. A mapping that forgets what it is given stops that.
        self.rails.events_history_cache = _Forgetful()
        self.rails.register_output_parser(self_check_verdict, PARSER_NAME)
        for name, action in actions.items():
            self.rails.register_action(action, name)

    async def outcomes(self, stage: Stage, text: str, context: dict[str, Any]) -> list[RailOutcome]:
        if stage == "input":
            messages = [{"role": "context", "content": context}, {"role": "user", "content": text}]
        else:
            messages = [
                {"role": "context", "content": context},
                {"role": "user", "content": ""},
                {"role": "assistant", "content": text},
            ]
        response = await self.rails.generate_async(
            messages=messages, options={"rails": [stage], "log": {"activated_rails": True}}
        )
        return [
            action.return_value
            for rail in (response.log.activated_rails if response.log else [])
            for action in rail.executed_actions
            if isinstance(action.return_value, RailOutcome)
        ]


@dataclass(frozen=True, kw_only=True, slots=True)
class DirectRail:
    """One flow reduced to the action it runs and the parameters that receive the stage's message."""

    flow: str
    action: Action
    message_params: tuple[str, ...]
    wants_context: bool
    """Whether the action takes NeMo's `context` (workspace, attachments), as NeMo's dispatcher checks."""


class DirectEngine:
    """The rails' actions called concurrently, with no Colang runtime in between."""

    def __init__(self, rails: Mapping[Stage, list[DirectRail]]) -> None:
        self._rails = rails

    async def outcomes(self, stage: Stage, text: str, context: dict[str, Any]) -> list[RailOutcome]:
        """Every rail's outcome in flow order, up to the first that blocks, as NeMo reports them; the
        rails run concurrently, and a block cancels the rails after it once those before it are in.
        Where two rails would block, the earlier in the flow is the one reported, whichever finished
        first (the reported rail decides the message the person gets and the event's rail); a rail after
        it that failed changes nothing."""
        tasks: list[asyncio.Task[RailOutcome]] = []
        for rail in self._rails[stage]:
            kwargs: dict[str, Any] = dict.fromkeys(rail.message_params, text)
            if rail.wants_context:
                kwargs["context"] = context
            tasks.append(asyncio.ensure_future(rail.action(**kwargs)))
        # Awaited in flow order: a block is reported once every rail before it is in, exactly when a wait for
        # the first to finish would have reported it, without re-arming a wait on every pending rail each time
        # one finishes (asyncio.wait adds and removes a callback on each of them per round).
        outcomes: list[RailOutcome] = []
        try:
            for task in tasks:
                outcome = await task
                outcomes.append(outcome)
                if outcome.is_blocked:
                    break
        finally:
            for task in tasks:
                task.cancel()  # also marks a finished rail's failure as seen (a rail after the block)
        return outcomes


def compile_direct(config: Any, actions: Mapping[str, Action]) -> DirectEngine | str:
    """A DirectEngine for `config`, or why its flows need the Colang runtime."""
    flows = {flow["id"]: flow for flow in config.flows}
    compiled: dict[Stage, list[DirectRail]] = {}
    stages: dict[Stage, list[str]] = {"input": config.rails.input.flows, "output": config.rails.output.flows}
    for stage, names in stages.items():
        compiled[stage] = []
        for name in names:
            rail = _compile_flow(flows.get(name), stage, actions)
            if isinstance(rail, str):
                return f"flow {name!r} {rail}"
            compiled[stage].append(rail)
    return DirectEngine(compiled)


def select_engine(config: Any, *, llm: Any, actions: Mapping[str, Action], choice: EngineChoice) -> RailEngine:
    """The direct engine where every configured flow is a plain rail, else NeMo's runtime."""
    if choice == "auto" and llm is None:
        direct = compile_direct(config, actions)
        if isinstance(direct, DirectEngine):
            return direct
        log.info("guard rails run through NeMo's Colang runtime: %s", direct)
    return NemoEngine(config, llm=llm, actions=actions)


def _compile_flow(flow: dict[str, Any] | None, stage: Stage, actions: Mapping[str, Action]) -> DirectRail | str:
    if flow is None:
        return "is not defined"
    first, *rest = flow["elements"]
    message = f"${_MESSAGE[stage]}"
    if first.get("_type") != "run_action" or first.get("action_name") not in actions:
        return "does not start with a registered action"
    params: dict[str, Any] = first.get("action_params") or {}
    if not params or any(value != message for value in params.values()):
        return f"passes its action something other than {message}"
    key = first.get("action_result_key")
    for element in rest:
        if not _plain(element, key, _MESSAGE[stage]):
            return f"does more than act on its outcome ({element.get('_type')})"
    action = actions[first["action_name"]]
    return DirectRail(
        flow=flow["id"],
        action=action,
        message_params=tuple(params),
        wants_context="context" in inspect.signature(action).parameters,
    )


def _plain(element: dict[str, Any], key: str | None, message: str) -> bool:
    """An element the rail pattern allows: test the outcome, utter a refusal or stop, set the message."""
    kind = element.get("_type")
    if kind == "if":
        match = _CONDITION.fullmatch(element.get("expression", ""))
        return match is not None and match["key"] == key
    if kind == "run_action":
        return element.get("action_name") == "utter"
    if kind == "set":
        return element.get("key") == message and element.get("expression") == (
            f'${key}.transform_text["{message}"]'
        )
    return False


class _Forgetful(dict[str, Any]):
    """A dict that drops every write: LLMRails' event-history cache, which rails-only calls never read."""

    def __setitem__(self, key: str, value: Any) -> None:
        return None
