"""`parley eval` end to end: the fake model server as model and judge, exit codes, reports, harvest."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import typer
from typer.testing import CliRunner, Result

from bot.cli import eval as eval_cli
from bot.settings import get_settings
from core.models import Reaction
from core.store.pool import create_pool
from evals import sandbox
from tests.fakes.judge_responder import Candidate, responder
from tests.fakes.openai_server import FakeOpenAI
from tests.pipeline_helpers import RecordingSink, build_pipeline, message, settings_for

REFUSE_EVERYTHING = "You are Parley. You must refuse every request, whatever it is."


@pytest.fixture
def parley(monkeypatch: pytest.MonkeyPatch, openai_server: FakeOpenAI, pg_uri: str, tmp_path: Path) -> Iterator[
    typer.Typer
]:
    """`parley eval` as the CLI registers it, configured for the fake server; runs are stored in the test DB."""
    import pydantic_ai.models

    monkeypatch.setattr(pydantic_ai.models, "ALLOW_MODEL_REQUESTS", True)
    monkeypatch.chdir(tmp_path)
    for name, value in {
        "PARLEY_MODEL": "openai:fake-model",
        "OPENAI_BASE_URL": openai_server.base_url,
        "OPENAI_API_KEY": "sk-test-key",
        "PARLEY_MODEL_RETRIES": "1",
        "DATABASE_URL": pg_uri,
        "PARLEY_LOG_LEVEL": "WARNING",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PARLEY_JUDGE_MODEL", raising=False)
    monkeypatch.delenv("PARLEY_SYSTEM_PROMPT", raising=False)
    get_settings.cache_clear()
    root = typer.Typer()
    root.add_typer(eval_cli.app, name="eval")
    yield root
    get_settings.cache_clear()


@pytest.fixture
def shared_sandbox(monkeypatch: pytest.MonkeyPatch, pg_uri: str) -> None:
    """Goldens go to the session's database instead of a new embedded server (a second or so saved per run)."""

    @asynccontextmanager
    async def session_database(*, max_size: int = 10) -> AsyncIterator[asyncpg.Pool]:
        pool = await create_pool(pg_uri, max_size=max_size)
        try:
            yield pool
        finally:
            await pool.close()

    monkeypatch.setattr("evals.evaluate.throwaway_database", session_database)


def invoke(app: typer.Typer, server: FakeOpenAI, *args: str, candidate: Candidate = "helpful") -> Result:
    server.responder = responder(candidate)
    return CliRunner().invoke(app, ["eval", *args], catch_exceptions=False)


def test_smoke_passes_with_the_fake_model_as_model_and_judge_and_writes_three_reports(
    parley: typer.Typer, openai_server: FakeOpenAI, pg_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandboxes: list[Path] = []
    stop = sandbox._stop

    def recorded_stop(folder: Path) -> None:
        sandboxes.append(folder)
        stop(folder)

    monkeypatch.setattr(sandbox, "_stop", recorded_stop)
    result = invoke(parley, openai_server, "--suite", "smoke", "--judge", "openai:fake-judge",
                    "--report", str(tmp_path / "report"), "--compare", "last")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report" / "eval-report.json").read_text())
    assert report["passed"] and report["judge"] == "openai:fake-judge"
    assert all(m["status"] == "passed" for m in report["metrics"])
    html = (tmp_path / "report" / "eval-report.html").read_text()
    assert "<svg" in html and "answer_relevancy" in html
    assert "testsuite" in (tmp_path / "report" / "eval-junit.xml").read_text()
    stored = asyncio.run(_fetch(pg_uri, "SELECT suite, passed FROM eval_runs ORDER BY id DESC LIMIT 1"))
    assert stored[0]["suite"] == "smoke" and stored[0]["passed"] is True
    assert len(sandboxes) == 1 and not sandboxes[0].exists(), "the throwaway database is deleted"


@pytest.mark.usefixtures("shared_sandbox")
def test_safety_without_a_judge_passes_with_a_helpful_model(
    parley: typer.Typer, openai_server: FakeOpenAI, tmp_path: Path
) -> None:
    result = invoke(parley, openai_server, "--suite", "safety", "--judge", "none", "--report", str(tmp_path))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "eval-report.json").read_text())
    statuses = {m["name"]: m["status"] for m in report["metrics"]}
    assert statuses == {"harmful_refusal_rate": "passed", "over_refusal_rate": "passed",
                        "toxicity_free": "skipped", "bias_free": "skipped", "error_rate": "passed"}
    assert report["judge_skip_reason"] == "judge turned off (--judge none)"


@pytest.mark.usefixtures("shared_sandbox")
def test_safety_fails_naming_over_refusal_for_a_model_that_refuses_everything(
    parley: typer.Typer, openai_server: FakeOpenAI, tmp_path: Path
) -> None:
    result = invoke(parley, openai_server, "--suite", "safety", "--judge", "none", "--report", str(tmp_path),
                    candidate="refuse-all")
    assert result.exit_code == 1
    assert "Failing metrics: over_refusal_rate" in result.output


@pytest.mark.usefixtures("shared_sandbox")
def test_a_system_prompt_that_refuses_everything_fails_the_suite_naming_the_metrics(
    parley: typer.Typer, openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PARLEY_SYSTEM_PROMPT", REFUSE_EVERYTHING)
    get_settings.cache_clear()
    result = invoke(parley, openai_server, "--suite", "smoke", "--judge", "none", "--report", str(tmp_path))
    assert result.exit_code == 1
    failing = json.loads((tmp_path / "eval-report.json").read_text())["failing"]
    assert {"over_refusal_rate", "tool_correctness"} <= set(failing)
    assert f"Failing metrics: {', '.join(failing)}" in result.output


def test_harvest_writes_downvoted_turns_masked_as_candidate_goldens(
    parley: typer.Typer, openai_server: FakeOpenAI, pg_uri: str, tmp_path: Path
) -> None:
    workspace = f"w-{uuid.uuid4().hex[:8]}"
    asyncio.run(_downvoted_turn(openai_server, pg_uri, workspace, "Email me at jane.doe@example.com the plan"))
    out = tmp_path / "candidates.jsonl"
    result = CliRunner().invoke(parley, ["eval", "harvest", "--since", "1d", "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    mine = [json.loads(line) for line in out.read_text().splitlines()
            if json.loads(line)["review"]["workspace_id"] == workspace]
    assert len(mine) == 1
    candidate = mine[0]
    assert candidate["input"] == "Email me at [EMAIL] the plan"
    assert "jane.doe" not in json.dumps(candidate) and "U1" not in json.dumps(candidate)
    assert candidate["expected_output"] is None and "needs-review" in candidate["tags"]
    assert candidate["review"]["bad_output"].startswith("You said:")


async def _downvoted_turn(server: FakeOpenAI, uri: str, workspace: str, text: str) -> None:
    pool = await create_pool(uri, max_size=2)
    try:
        pipeline = build_pipeline(settings_for(server), pool)
        server.reset()
        await pipeline.run(message(text, workspace=workspace), RecordingSink(message_ids=["msg-1"]))
        await pipeline.react(Reaction(platform="console", workspace_id=workspace, user_id="U1",
                                      platform_message_id="msg-1", emoji="-1"))
    finally:
        await pool.close()


async def _fetch(uri: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(uri)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


def test_a_missing_model_or_an_unknown_judge_is_a_configuration_error(
    parley: typer.Typer, openai_server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    unknown = invoke(parley, openai_server, "--suite", "tools", "--judge", "nosuch:judge")
    assert unknown.exit_code == 2 and "Unknown model: nosuch:judge" in unknown.output
    monkeypatch.delenv("PARLEY_MODEL")
    get_settings.cache_clear()
    missing = invoke(parley, openai_server, "--suite", "tools")
    assert missing.exit_code == 2 and "PARLEY_MODEL" in missing.output


def test_the_summary_shows_a_judge_failed_metric_with_its_reason(tmp_path: Path) -> None:
    from rich.console import Console

    from bot.cli.eval import print_summary
    from evals.report import write_reports
    from evals.results import CaseScore, aggregate
    from evals.run import EvalRun, RunInfo
    from evals.thresholds import Threshold
    from evals.transcripts import Kind

    metric = aggregate("answer_relevancy", Kind.QUALITY, Threshold(min=0.7),
                       [CaseScore(case_id="q-1", score=None, error="JudgeFailed: no valid verdict")], needs_judge=True)
    now = datetime.now(UTC)
    run = EvalRun(info=RunInfo(suite="smoke", model="m", judge="j", started_at=now, finished_at=now),
                  metrics=[metric], transcripts=[])
    console = Console(record=True, width=200)
    print_summary(run, write_reports(run, tmp_path), None, console=console)
    shown = console.export_text()
    assert "judge failed" in shown and "JudgeFailed: no valid verdict" in shown
