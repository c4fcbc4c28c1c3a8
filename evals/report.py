"""The three reports of a run: JSON (everything), JUnit XML (for CI), one self-contained HTML page."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment

from evals.charts import Point, trend_svg
from evals.results import MetricResult, Status
from evals.run import Baseline, EvalRun, TrendPoint
from evals.transcripts import Transcript

JSON_NAME = "eval-report.json"
JUNIT_NAME = "eval-junit.xml"
HTML_NAME = "eval-report.html"
TEMPLATE = Path(__file__).with_name("report.html")


@dataclass(frozen=True, kw_only=True, slots=True)
class ReportFiles:
    json: Path
    junit: Path
    html: Path


def write_reports(
    run: EvalRun,
    folder: Path,
    *,
    trends: dict[str, list[TrendPoint]] | None = None,
    baseline: Baseline | None = None,
) -> ReportFiles:
    folder.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(json=folder / JSON_NAME, junit=folder / JUNIT_NAME, html=folder / HTML_NAME)
    files.json.write_text(json.dumps(run_json(run, baseline=baseline), indent=2, ensure_ascii=False, default=str),
                          encoding="utf-8")
    files.junit.write_text(junit_xml(run), encoding="utf-8")
    files.html.write_text(html_page(run, trends=trends or {}, baseline=baseline), encoding="utf-8")
    return files


def delta(metric: MetricResult, baseline: Baseline | None) -> float | None:
    """This run's score minus the baseline's, when both scored the metric."""
    if baseline is None or metric.score is None:
        return None
    before = baseline.scores.get(metric.name)
    return None if before is None else metric.score - before


def run_json(run: EvalRun, *, baseline: Baseline | None = None) -> dict[str, Any]:
    info = run.info
    return {
        "suite": info.suite,
        "model": info.model,
        "judge": info.judge,
        "judge_skip_reason": info.judge_skip_reason,
        "candidate": info.candidate,
        "release": info.release,
        "git_ref": info.git_ref,
        "started_at": info.started_at.isoformat(),
        "finished_at": info.finished_at.isoformat(),
        "passed": run.passed,
        "failing": run.failing,
        "baseline": {"run_id": baseline.run_id, "label": baseline.label} if baseline else None,
        "metrics": [
            {
                "name": m.name,
                "kind": m.kind,
                "needs_judge": m.needs_judge,
                "status": m.status,
                "score": m.score,
                "threshold": {"direction": m.threshold.direction, "value": m.threshold.value},
                "reason": m.reason,
                "baseline_delta": delta(m, baseline),
                "cases": [asdict(c) for c in m.cases],
            }
            for m in run.metrics
        ],
        "transcripts": [transcript_json(t) for t in run.transcripts],
    }


def transcript_json(t: Transcript) -> dict[str, Any]:
    return {
        "case_id": t.case_id,
        "kind": t.kind,
        "golden": t.golden.model_dump(mode="json"),
        "context": list(t.context),
        "exchanges": [
            {
                "role": e.role,
                "user_id": e.user_id,
                "thread_id": e.thread_id,
                "message": e.message,
                "reply": e.reply,
                "blocked": e.blocked,
                "error": e.error,
                "latency_ms": e.latency_ms,
                "steps": [asdict(s) for s in e.steps],
            }
            for e in t.exchanges
        ],
    }


def junit_xml(run: EvalRun) -> str:
    """One test case per metric: failures list the failing goldens, skips carry their reason."""
    suite = ET.Element(
        "testsuite",
        name=f"parley-eval.{run.info.suite}",
        tests=str(len(run.metrics)),
        failures=str(sum(m.status is Status.FAILED for m in run.metrics)),
        skipped=str(sum(m.status is Status.SKIPPED for m in run.metrics)),
        errors=str(sum(m.status is Status.JUDGE_FAILED for m in run.metrics)),
        timestamp=run.info.started_at.isoformat(timespec="seconds"),
        time=f"{(run.info.finished_at - run.info.started_at).total_seconds():.1f}",
    )
    for m in run.metrics:
        case = ET.SubElement(suite, "testcase", classname=f"evals.{m.kind or 'all'}", name=m.name)
        if m.status is Status.SKIPPED:
            ET.SubElement(case, "skipped", message=m.reason or "skipped")
        elif m.status is Status.JUDGE_FAILED:
            ET.SubElement(case, "error", message=f"{m.name}: {m.reason}", type="judge failed")
        elif m.status is Status.FAILED:
            failure = ET.SubElement(case, "failure", message=f"{m.name}: {m.reason}", type="threshold")
            failure.text = "\n".join(
                f"{c.case_id}: score={'-' if c.score is None else f'{c.score:.3f}'} {c.error or c.reason or ''}"
                for c in m.failures
            )
        if m.score is not None:
            ET.SubElement(case, "system-out").text = f"score={m.score:.4f} threshold {m.threshold.describe()}"
    root = ET.Element("testsuites", name="parley-eval")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def html_page(run: EvalRun, *, trends: dict[str, list[TrendPoint]], baseline: Baseline | None) -> str:
    template = Environment(autoescape=True).from_string(TEMPLATE.read_text(encoding="utf-8"))
    charts = {
        m.name: trend_svg(_points(trends.get(m.name), m), m.threshold, title=f"{m.name} over recent runs")
        for m in run.metrics
    }
    failures = [
        (m, [(c, run.transcript(c.case_id)) for c in m.failures])
        for m in run.metrics
        if m.status is not Status.SKIPPED and m.failures
    ]
    return template.render(
        run=run, info=run.info, charts=charts, failures=failures, baseline=baseline,
        deltas={m.name: delta(m, baseline) for m in run.metrics},
        better={m.name: _better(m, delta(m, baseline)) for m in run.metrics},
    )


def _better(metric: MetricResult, change: float | None) -> str:
    """'up' when the change moves the score the good way for its threshold, 'down' the bad way."""
    if not change:
        return ""
    improved = change > 0 if metric.threshold.direction == "min" else change < 0
    return "up" if improved else "down"


def _points(history: list[TrendPoint] | None, current: MetricResult) -> list[Point]:
    """The stored history (which ends with this run once saved), or this run alone."""
    if history:
        return [
            Point(label=f"run {p.run_id}{' · ' + p.release if p.release else ''} · "
                        f"{p.finished_at:%Y-%m-%d %H:%M}", score=p.score)
            for p in history
        ]
    return [Point(label="this run", score=current.score)]
