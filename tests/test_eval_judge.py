"""The DeepEval judge backed by a pydantic-ai model, against the fake OpenAI-compatible server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from deepeval.evaluate import assert_test
from deepeval.metrics import AnswerRelevancyMetric, BaseMetric, FaithfulnessMetric, ToolCorrectnessMetric
from deepeval.metrics.answer_relevancy.schema import Statements
from deepeval.test_case import LLMTestCase, ToolCall

from bot.app import model_factory
from bot.evaluation import build_judge
from evals.goldens import QualityGolden
from evals.judge import JUDGE_MAX_TOKENS, OUTPUT_MODES, JudgeFailed, JudgeUnavailable, PydanticAIJudge, Unavailable
from evals.metrics import JUDGE_GIVE_UP_AFTER, measure, score_run
from evals.results import METRIC_NAMES, Status
from evals.suites import Suite, SuiteName
from evals.thresholds import DEFAULT_THRESHOLDS, load_thresholds
from evals.transcripts import Exchange, Kind, Transcript
from tests.fakes.judge_responder import judgement, responder
from tests.fakes.openai_server import Error, FakeOpenAI, Response, Text, last_user_text
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


def without_tool_calls(body: dict[str, Any]) -> Response:
    """A server that ignores `tools` (llama.cpp's without a function-calling format) but honours a JSON
    schema in `response_format`."""
    response_format = body.get("response_format") or {}
    if response_format.get("type") == "json_schema":
        schema = response_format["json_schema"]["schema"]
        return Text(json.dumps(judgement(schema, prompt=last_user_text(body), lenient=True)))
    return Text("The statements are: git is a version control system.")


async def test_a_server_without_tool_calls_is_asked_for_a_json_schema_instead(openai_server: FakeOpenAI) -> None:
    openai_server.responder = without_tool_calls
    judge = judge_on(openai_server)
    first = await judge.a_generate("List the statements in: 'git is a VCS.'", schema=Statements)
    again = await judge.a_generate("List the statements in: 'svn is a VCS.'", schema=Statements)
    assert isinstance(first, Statements) and isinstance(again, Statements)
    assert "tool" not in judge.modes
    asked = ["tools" if "tools" in r else r.get("response_format", {}).get("type") for r in openai_server.requests]
    assert asked == ["tools", "tools", "json_schema", "json_schema"], "one retry in the tool form, then never again"


async def test_a_judge_without_a_valid_verdict_fails_fast_and_bounded(openai_server: FakeOpenAI) -> None:
    openai_server.responder = lambda body: Text('{"statements": "not a list"}')
    judge = judge_on(openai_server)
    with pytest.raises(JudgeFailed, match="no valid verdict"):
        await judge.a_generate("List the statements in: 'git is a VCS.'", schema=Statements)
    assert len(openai_server.requests) <= 2 * len(OUTPUT_MODES)
    assert all(r.get("max_completion_tokens", r.get("max_tokens")) == JUDGE_MAX_TOKENS for r in openai_server.requests)


async def test_the_metric_of_a_judge_that_never_answers_is_judge_failed_with_the_reason(
    openai_server: FakeOpenAI,
) -> None:
    openai_server.responder = lambda body: Text("I would rather not.")
    transcripts = [quality_transcript(i) for i in range(6)]
    thresholds = load_thresholds(DEFAULT_THRESHOLDS, METRIC_NAMES)
    suite = Suite(name=SuiteName.QUALITY, quality=6, judge_cases=6)
    results = {m.name: m for m in await score_run(suite, transcripts, judge=judge_on(openai_server),
                                                  judge_reason=None, thresholds=thresholds, concurrency=1)}
    relevancy = results["answer_relevancy"]
    assert relevancy.status is Status.JUDGE_FAILED and relevancy.score is None
    assert "judge failed on 6 of 6" in (relevancy.reason or "")
    assert sum("not asked" in (c.error or "") for c in relevancy.cases) == 6 - JUDGE_GIVE_UP_AFTER


def quality_transcript(i: int) -> Transcript:
    golden = QualityGolden(id=f"q{i}", input="How do I undo a commit?", expected_output="git reset --soft HEAD~1")
    exchange = Exchange(user_id="U1", thread_id="T1", message=golden.input, reply="Use git reset --soft HEAD~1.")
    return Transcript(kind=Kind.QUALITY, golden=golden, exchanges=(exchange,))


async def test_a_server_that_fails_on_a_json_schema_is_asked_for_prompted_json(openai_server: FakeOpenAI) -> None:
    """llama-cpp-python's server ignores tools and answers 500 to `response_format: json_schema`."""

    def llama_like(body: dict[str, Any]) -> Response:
        if body.get("response_format", {}).get("type") == "json_schema":
            return Error(500, message="response_format.type: Input should be 'text' or 'json_object'")
        if body.get("response_format", {}).get("type") == "json_object":
            return Text(json.dumps({"statements": ["git is a VCS."]}))
        return Text("Sure, here are the statements.")

    openai_server.responder = llama_like
    judge = judge_on(openai_server)
    statements = await judge.a_generate("List the statements in: 'git is a VCS.'", schema=Statements)
    assert isinstance(statements, Statements) and statements.statements == ["git is a VCS."]
    assert judge.modes == ["prompted"]
