"""The start-up benchmark's pure helpers: phase totals and paired ratios."""

from __future__ import annotations

from benchmarks.startup import Sample, phase_end, phase_totals, report

RECORDS = [
    {"phase": "database start", "start": 100.0, "wall_ms": 300.0, "cpu_ms": 10.0},
    {"phase": "migrations", "start": 100.3, "wall_ms": 20.0, "cpu_ms": 2.0},
    {"phase": "database start", "start": 100.32, "wall_ms": 15.0, "cpu_ms": 1.0},
]


def test_a_repeated_phase_is_summed_beside_the_spans_measured_from_outside() -> None:
    totals = phase_totals(RECORDS, {"before first phase": 0.5})
    assert totals == {
        "before first phase": {"wall_ms": 500.0, "cpu_ms": 0.0},
        "database start": {"wall_ms": 315.0, "cpu_ms": 11.0},
        "migrations": {"wall_ms": 20.0, "cpu_ms": 2.0},
    }


def test_the_phases_end_when_the_last_one_to_finish_does() -> None:
    nested = [*RECORDS, {"phase": "outer", "start": 99.0, "wall_ms": 2000.0, "cpu_ms": 0.0}]
    assert phase_end(nested) == 101.0


def test_ratios_are_the_median_of_each_rounds_own_ratio() -> None:
    def runs(*walls: float) -> list[Sample]:
        return [Sample(wall_s=w, cpu_s=w / 2, peak_mib=100.0) for w in walls]

    samples = {
        "chat": runs(2.0, 30.0, 4.0),
        "bare_agent": runs(1.0, 10.0, 4.0),
        "serve": runs(3.0, 3.0, 3.0),
        "bare_server": runs(1.0, 1.0, 1.0),
    }
    result = report(samples, runs=3, info={})
    assert result["ratios"]["chat_wall"] == 2.0
    assert result["ratios"]["serve_ready_wall"] == 3.0
    assert result["met"] == {"chat_wall_ratio": True, "serve_ready_ratio": True, "chat_peak_mib": True,
                             "serve_worker_peak_mib": True}
