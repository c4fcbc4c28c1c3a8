"""The DeepEval judge backed by a pydantic-ai model, against the fake OpenAI-compatible server."""

from __future__ import annotations

from pathlib import Path

import pytest
from deepeval.evaluate import assert_test
from deepeval.metrics import AnswerRelevancyMetric, BaseMetric, FaithfulnessMetric, ToolCorrectnessMetric
from deepeval.metrics.answer_relevancy.schema import Statements
from deepeval.test_case import LLMTestCase, ToolCall

from bot.app import model_factory
from bot.evaluation import build_judge
from evals.judge import JudgeUnavailable, PydanticAIJudge, Unavailable
from evals.metrics import measure
from tests.fakes.judge_responder import responder
from tests.fakes.openai_server import FakeOpenAI, Text
from tests.pipeline_helpers import settings_for

CASE = LLMTestCase(
    input="How do I undo my last commit but keep the changes?",
    actual_output="Run `git reset --soft HEAD~1`; your changes stay staged.",
    retrieval_context=["git reset --soft moves HEAD and keeps the index and working tree."],
)


@pytest.fixture(autouse=True)
def _allow_requests(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import pydantic_ai.models

    monkeypatch.setattr(pydantic_ai.models, "ALLOW_MODEL_REQUESTS", True)
    monkeypatch.chdir(tmp_path)


def judge_on(server: FakeOpenAI) -> PydanticAIJudge:
    settings = settings_for(server)
    models = model_factory(settings)
    assert models is not None
    return build_judge(settings, models, "openai:fake-judge")


async def test_the_judge_answers_with_the_schema_deepeval_asks_for(openai_server: FakeOpenAI) -> None:
    openai_server.responder = responder(judge="lenient")
    judge = judge_on(openai_server)
    statements = await judge.a_generate("List the statements in: 'git is a VCS.'", schema=Statements)
    assert isinstance(statements, Statements) and statements.statements
    offered = openai_server.requests[-1]["tools"][0]["function"]
    assert offered["name"] == "final_result" and "statements" in offered["parameters"]["properties"]
    assert openai_server.requests[-1]["model"] == "fake-judge"


async def test_the_judge_answers_in_text_without_a_schema(openai_server: FakeOpenAI) -> None:
    openai_server.queue(Text("plain verdict"))
    assert await judge_on(openai_server).a_generate("Say something.") == "plain verdict"
    assert "tools" not in openai_server.requests[-1]


def test_deepeval_assert_test_passes_with_an_approving_judge(openai_server: FakeOpenAI) -> None:
    openai_server.responder = responder(judge="lenient")
    metrics: list[BaseMetric] = [AnswerRelevancyMetric(threshold=0.7, model=judge_on(openai_server))]
    assert_test(CASE, metrics)


async def test_a_disapproving_judge_scores_zero(openai_server: FakeOpenAI) -> None:
    openai_server.responder = responder(judge="harsh")
    metric = FaithfulnessMetric(threshold=0.7, model=judge_on(openai_server))
    await metric.a_measure(CASE, _show_indicator=False)
    assert metric.score == 0.0 and not metric.success


async def test_a_judge_that_returns_nonsense_leaves_the_case_unscored(openai_server: FakeOpenAI) -> None:
    openai_server.responder = lambda body: Text("I refuse to answer in JSON.")
    scored = await measure(AnswerRelevancyMetric(model=judge_on(openai_server)), CASE, "q-1")
    assert scored.score is None and scored.error


async def test_tool_correctness_by_name_never_asks_the_judge() -> None:
    metric = ToolCorrectnessMetric(threshold=0.8, model=Unavailable("no judge"))
    case = LLMTestCase(
        input="what time is it?", actual_output="It is 10:00.",
        tools_called=[ToolCall(name="current_datetime", input_parameters={"timezone": "UTC"})],
        expected_tools=[ToolCall(name="current_datetime", input_parameters=None)],
    )
    await metric.a_measure(case, _show_indicator=False)
    assert metric.score == 1.0
    with pytest.raises(JudgeUnavailable):
        await Unavailable("no judge").a_generate("hello")
