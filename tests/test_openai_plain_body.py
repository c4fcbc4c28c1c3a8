"""Chat completions sent without the SDK's request transform: the same bytes on the wire, less CPU."""

from __future__ import annotations

import re

import httpx2
import pytest
from openai import AsyncOpenAI
from pydantic_ai import Agent, BinaryContent
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from core.openai_compat import PlainBodyCompletions, PlainBodyOpenAI, plain_json
from tests.fakes.openai_server import FakeOpenAI, ToolCalls

pytestmark = pytest.mark.usefixtures("allow_model_requests")

CALL_ID = re.compile(rb"call_[0-9]+")
"""The fake numbers its tool calls across runs; the two runs' ids differ by design."""
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def clock(zone: str, precise: bool = False) -> str:
    """The time in a zone.

    Args:
        zone: an IANA zone name.
        precise: with seconds.
    """
    return f"10:00 in {zone}"


async def bodies(server: FakeOpenAI, client_class: type[AsyncOpenAI]) -> list[bytes]:
    """The request bodies of a tool-calling run with history and an image, then a streamed run, as sent."""
    sent: list[bytes] = []

    async def record(request: httpx2.Request) -> None:
        sent.append(request.content)

    http = httpx2.AsyncClient(event_hooks={"request": [record]})
    client = client_class(base_url=server.base_url, api_key="sk-test", http_client=http, max_retries=0)
    agent = Agent(OpenAIChatModel("m", provider=OpenAIProvider(openai_client=client)), tools=[clock])
    server.queue(ToolCalls([("clock", {"zone": "Europe/Paris"})]))
    question = ["What time is it? ✓", BinaryContent(PNG, media_type="image/png")]
    first = await agent.run(question, instructions="Be brief.")
    async with agent.run_stream("and now?", message_history=first.all_messages()) as stream:
        await stream.get_output()
    await http.aclose()
    return sent


async def test_the_request_bodies_are_the_bytes_the_sdks_transform_would_send(openai_server: FakeOpenAI) -> None:
    stock = await bodies(openai_server, AsyncOpenAI)
    plain = await bodies(openai_server, PlainBodyOpenAI)
    assert len(stock) == 3
    assert [CALL_ID.sub(b"call", body) for body in plain] == [CALL_ID.sub(b"call", body) for body in stock]


async def test_messages_that_are_not_plain_json_take_the_sdks_typed_path(openai_server: FakeOpenAI) -> None:
    client = PlainBodyOpenAI(base_url=openai_server.base_url, api_key="sk-test", max_retries=0)
    completions = client.chat.completions
    assert isinstance(completions, PlainBodyCompletions)
    answer = await completions.create(model="m", messages=iter([{"role": "user", "content": "hi"}]))
    assert answer.choices[0].message.content == "You said: hi"
    assert openai_server.requests[-1]["messages"] == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        ([{"role": "user", "content": [{"type": "text", "text": "hi"}]}], True),
        ({"a": [1, 2.5, None, True]}, True),
        ([("role", "user")], False),
        ({1: "key not a string"}, False),
        ([b"bytes"], False),
    ],
)
def test_plain_json_is_dicts_lists_and_scalars_only(value: object, plain: bool) -> None:
    assert plain_json(value) is plain
