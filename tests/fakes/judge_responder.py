"""Responders that let the fake OpenAI server play both the candidate model and the DeepEval judge.

A request that offers pydantic-ai's `final_result` output tool is a judge call: it is answered with
a tool call whose arguments fit the tool's JSON schema, built from the schema itself. A `lenient`
judge approves (relevant, faithful, not toxic, nothing forgotten, every intention met, score 10),
a `harsh` one disapproves of everything, so tests can show judge metrics failing as well as passing.

A guardrail self-check (NeMo's "Should the ... be blocked (Yes or No)?", which the guard's `auto`
cascade asks about grey-zone texts) is answered "No": the model as a sensible moderator of the
ordinary texts these suites send. Memory's fact extraction is answered "nothing to add".

Every other request is the candidate. Candidates:
- `helpful`: refuses exactly the prompts the safety sets label harmful (a perfectly aligned model),
  calls the built-in tools when asked for the time, arithmetic or a page, answers from memories in
  its instructions, and obeys one system-prompt instruction: "refuse every request".
- `refuse-all`: declines everything (a deliberately over-cautious candidate).
- `comply-all`: echoes everything, harmful requests included (a candidate without any safety).

Run the server with them: `python -m tests.fakes.judge_responder --port 8765 --candidate helpful`.
"""

from __future__ import annotations

import argparse
import re
import threading
from collections.abc import Callable
from functools import cache
from typing import Any, Literal

from core.memory.extraction import EXTRACTION_INSTRUCTIONS
from evals.goldens import DATASETS_DIR, load_safety
from tests.fakes.openai_server import FakeOpenAI, Response, Text, ToolCalls, echo, is_self_check, last_user_text

OUTPUT_TOOL = "final_result"
REFUSE_ALL_INSTRUCTION = "refuse every request"
REFUSAL = "Sorry, I can't help with that one."
Candidate = Literal["helpful", "refuse-all", "comply-all"]
Judge = Literal["lenient", "harsh"]
_NEGATIVE_IS_GOOD = ("is toxic", "is biased", "**forgets**")
_TIME = re.compile(r"\b(what time|time is it|today's date|what day|date today|current time)\b", re.IGNORECASE)
_ARITHMETIC = re.compile(r"[\d(][\d\s.+\-*/%()]*[+\-*/%][\d\s.+\-*/%()]*[\d)]")
_URL = re.compile(r"https?://\S+[^\s.,;!?)]")


def responder(candidate: Candidate = "helpful", judge: Judge = "lenient") -> Callable[[dict[str, Any]], Response]:
    answer = {"helpful": helpful, "refuse-all": refuse_all, "comply-all": echo}[candidate]

    def respond(body: dict[str, Any]) -> Response:
        schema = output_schema(body)
        if schema is not None and is_fact_extraction(body):
            return ToolCalls([(OUTPUT_TOOL, {"operations": [{"op": "none"}]})])
        if schema is not None:
            arguments = judgement(schema, prompt=last_user_text(body), lenient=judge == "lenient")
            return ToolCalls([(OUTPUT_TOOL, arguments)])
        if is_self_check(body):
            return Text("No")
        return answer(body)

    return respond


def is_fact_extraction(body: dict[str, Any]) -> bool:
    """Memory's background fact extraction (core/memory/extraction.py), which also asks for `final_result`:
    the candidate finds nothing to add, so the rules learn the message, as without a model. Answered as a
    judge, its schema-built arguments failed validation (a verdict sentence where a date goes)."""
    return any(
        message.get("role") == "system" and EXTRACTION_INSTRUCTIONS[:60] in str(message.get("content"))
        for message in body.get("messages", [])
    )


def output_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    for tool in body.get("tools", []):
        function = tool.get("function", {})
        if function.get("name") == OUTPUT_TOOL:
            parameters: dict[str, Any] = function.get("parameters", {})
            return parameters
    return None


def judgement(schema: dict[str, Any], *, prompt: str, lenient: bool) -> dict[str, Any]:
    """Arguments that fit `schema`: approving when `lenient`, disapproving otherwise."""
    head = prompt[:600].lower()
    good_verdict = "no" if any(k in head for k in _NEGATIVE_IS_GOOD) else "yes"
    verdict = good_verdict if lenient else ("yes" if good_verdict == "no" else "no")
    value = _instance(schema, schema.get("$defs", {}), verdict=verdict, lenient=lenient, field="")
    assert isinstance(value, dict)
    return value


def _instance(schema: dict[str, Any], defs: dict[str, Any], *, verdict: str, lenient: bool, field: str) -> Any:
    if "$ref" in schema:
        return _instance(defs[schema["$ref"].rsplit("/", 1)[-1]], defs, verdict=verdict, lenient=lenient, field=field)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return _instance(options[0], defs, verdict=verdict, lenient=lenient, field=field)
    kind = schema.get("type")
    if field == "verdict":
        return verdict
    if kind == "object":
        properties: dict[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        if not properties and isinstance(extra, dict):
            return {"fact": _instance(extra, defs, verdict=verdict, lenient=lenient, field="fact")}
        return {
            name: _instance(sub, defs, verdict=verdict, lenient=lenient, field=name)
            for name, sub in properties.items()
        }
    if kind == "array":
        item = schema.get("items", {})
        if "index" in _resolve(item, defs).get("properties", {}):
            # role adherence lists the replies that broke character, by index
            return [] if lenient else [{"index": i, "reason": "Out of character."} for i in range(10)]
        return [_instance(item, defs, verdict=verdict, lenient=lenient, field=field)]
    if kind in ("number", "integer"):
        if field == "score":
            return 10 if lenient else 0
        return 0
    if kind == "boolean":
        return lenient
    if "enum" in schema:
        return schema["enum"][0]
    return "Fine." if field == "reason" else "The reply addresses the request."


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        resolved: dict[str, Any] = defs[schema["$ref"].rsplit("/", 1)[-1]]
        return resolved
    return schema


def helpful(body: dict[str, Any]) -> Response:
    messages = body.get("messages", [])
    system = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
    if REFUSE_ALL_INSTRUCTION in system.lower():
        return Text(REFUSAL)
    if messages and messages[-1].get("role") == "tool":
        return Text(f"Here is what I found: {messages[-1].get('content')}")
    text = last_user_text(body)
    if text.strip() in harmful_prompts():
        return Text(REFUSAL)
    call = _tool_call(text) if body.get("tools") else None
    if call is not None:
        return ToolCalls([call])
    memories = re.findall(r"<memory>(.*?)</memory>", system, flags=re.DOTALL)
    recalled = f" From what you told me before: {' '.join(memories)}" if memories else ""
    return Text(f"Happy to help with that. You asked: {text}{recalled}")


def refuse_all(body: dict[str, Any]) -> Response:
    return Text(REFUSAL)


def _tool_call(text: str) -> tuple[str, dict[str, Any]] | None:
    if url := _URL.search(text):
        return ("fetch_url", {"url": url.group(0)})
    if _TIME.search(text):
        return ("current_datetime", {"timezone": "UTC"})
    if expression := _ARITHMETIC.search(text):
        return ("calculate", {"expression": expression.group(0).strip()})
    return None


@cache
def harmful_prompts() -> frozenset[str]:
    sets = load_safety(DATASETS_DIR / "safety")
    return frozenset(p.text.strip() for prompts in sets.values() for p in prompts if p.label == "harmful")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--candidate", choices=["helpful", "refuse-all", "comply-all"], default="helpful")
    parser.add_argument("--judge", choices=["lenient", "harsh"], default="lenient")
    args = parser.parse_args()
    server = FakeOpenAI(port=args.port, responder=responder(args.candidate, args.judge)).start()
    print(f"fake OpenAI server (candidate {args.candidate}, judge {args.judge}) on {server.base_url}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
