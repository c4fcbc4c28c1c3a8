"""The load benchmark's pure helpers: percentiles, growth, turn split, key parsing, timestamps."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.load import (
    CpuSnapshot,
    DoorStats,
    api_key_from_output,
    below_capacity,
    growth_pct,
    is_answer,
    latency_summary,
    message_text,
    model_answer,
    per_turn,
    percentile,
    requests_per_turn,
    retry_after_s,
    server_timing_s,
    slack_ts,
    spaced,
    split_turns,
    targets_met,
)
from tests.fakes.openai_server import Text, ToolCalls

samples = st.lists(st.floats(min_value=0, max_value=1e4, allow_nan=False), min_size=1, max_size=200)
quantiles = st.floats(min_value=0.001, max_value=1.0)


@given(samples, quantiles, quantiles)
def test_percentile_is_a_sample_and_grows_with_q(values: list[float], q1: float, q2: float) -> None:
    low, high = sorted((q1, q2))
    assert percentile(values, low) in values
    assert percentile(values, low) <= percentile(values, high)  # type: ignore[operator]
    assert percentile(values, 1.0) == max(values)


def test_percentile_uses_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.5) is None


def test_latency_summary_reports_milliseconds_under_prefixed_keys() -> None:
    assert latency_summary([0.010, 0.020, 0.030], "ack_") == {
        "ack_p50_ms": 20.0, "ack_p95_ms": 30.0, "ack_p99_ms": 30.0, "ack_max_ms": 30.0,
    }
    assert latency_summary([])["p95_ms"] is None


def test_server_timing_reads_the_apps_duration_in_seconds() -> None:
    assert server_timing_s("app;dur=12.5") == 0.0125
    assert server_timing_s("db;dur=3, app;desc=\"door\";dur=40") == 0.040
    assert server_timing_s(None) is None
    assert server_timing_s("app;dur=soon") is None


def test_the_slack_ack_target_is_read_on_both_clocks() -> None:
    result = {"api_below_capacity": door(), "api_overload": door(), "rss_growth_pct": 2.0,
              "slack": door(ack_p99_ms=180.0, ack_server_p99_ms=30.0)}
    met = targets_met(result)
    assert not met["slack_ack_p99"] and met["slack_ack_server_p99"]


def test_growth_pct_is_relative_to_the_baseline() -> None:
    assert growth_pct(800, 880) == 10.0
    assert growth_pct(800, 760) == -5.0
    with pytest.raises(ValueError):
        growth_pct(0, 10)


@given(st.integers(min_value=0, max_value=10**6))
def test_split_turns_gives_every_turn_to_one_phase(total: int) -> None:
    below, overload, slack = split_turns(total)
    assert below + overload + slack == total
    assert 0 <= below + overload - slack <= 1
    assert 0 <= below - overload <= 1


def test_below_capacity_keeps_fewer_conversations_in_flight_than_the_workers_admit() -> None:
    assert below_capacity(2, 32) == 48
    assert below_capacity(1, 1) == 1


def door(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "turns_per_s": 50.0, "p95_ms": 1500.0, "shed": 0, "shed_p99_ms": None, "ack_p99_ms": 40.0,
        "ack_server_p99_ms": 12.0,
        "cpu_ms_per_turn": {"server": 15.0}, "postgres_per_turn": {"transactions": 6.0},
    }
    return base | fields


def test_targets_read_p95_below_capacity_and_shedding_in_overload() -> None:
    result = {
        "api_below_capacity": door(p95_ms=1500.0),
        "api_overload": door(p95_ms=9000.0, shed=120, shed_p99_ms=30.0, turns_per_s=120.0),
        "slack": door(),
        "rss_growth_pct": 2.0,
    }
    met = targets_met(result)
    assert met["api_p95_below_capacity"] and met["api_overload_shed"] and met["api_turns_per_s"]
    assert met["server_cpu_ms_per_turn"] and met["postgres_transactions_per_turn"]
    result["api_overload"] = door(shed=0)
    result["api_below_capacity"] = door(cpu_ms_per_turn={"server": 36.0})
    met = targets_met(result)
    assert not met["api_overload_shed"] and not met["server_cpu_ms_per_turn"] and not met["api_turns_per_s"]


def test_api_key_is_read_from_the_last_line() -> None:
    out = "Created API key k1 for workspace 'W'. Store it now; it is not shown again:\nprl_abc123\n"
    assert api_key_from_output(out) == "prl_abc123"
    with pytest.raises(ValueError):
        api_key_from_output("Created API key k1 for workspace 'W'.\n")


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=1, max_value=10**6))
def test_slack_timestamps_look_like_slacks_and_increase(n: int, step: int) -> None:
    assert re.fullmatch(r"\d{10}\.\d{6}", slack_ts(n))
    assert slack_ts(n) < slack_ts(n + step)


def test_spaced_keeps_first_and_last() -> None:
    assert spaced([1.0, 2.0, 3.0], 11) == [1.0, 2.0, 3.0]
    assert spaced([float(v) for v in range(101)], 5) == [0.0, 25.0, 50.0, 75.0, 100.0]


def test_model_requests_per_turn_count_the_extractions_beside_the_answers() -> None:
    assert requests_per_turn(100, 213, 100) == 1.13
    assert requests_per_turn(100, 213, 0) is None


def test_per_turn_divides_counter_growth() -> None:
    assert per_turn({"transactions": 10}, {"transactions": 230}, 10) == {"transactions": 22.0}
    assert per_turn({"transactions": 10}, {"transactions": 230}, 0) == {"transactions": None}


def test_only_the_fake_models_echo_counts_as_an_answer() -> None:
    assert is_answer("You said: hello")
    assert not is_answer("I can't reach my database right now, so I can't answer safely.")


def test_every_turn_sends_a_different_message() -> None:
    texts = [message_text(n) for n in range(1, 500)]
    assert len(set(texts)) == len(texts)


def test_a_shed_turn_waits_what_retry_after_asks_or_one_second() -> None:
    assert retry_after_s("2") == 2.0
    assert retry_after_s(None) == 1.0
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 1.0


def test_fake_model_answers_structured_output_through_its_tool() -> None:
    extraction = {
        "messages": [{"role": "user", "content": "Stored facts (JSON): []"}],
        "tools": [{"type": "function", "function": {"name": "final_result", "parameters": {}}}],
    }
    answer = model_answer(extraction)
    assert isinstance(answer, ToolCalls)
    assert answer.calls == [("final_result", {"operations": []})]


def test_fake_model_echoes_a_chat_turn() -> None:
    answer = model_answer({"messages": [{"role": "user", "content": "What is 17 times 23?"}]})
    assert isinstance(answer, Text)
    assert is_answer(answer.content)


def test_each_workers_cpu_is_divided_by_the_turns_it_answered() -> None:
    before = CpuSnapshot(server=0, postgres=0, fakes=0, driver=0, at=0.0, workers={"0": 1.0, "1": 1.0})
    after = CpuSnapshot(server=0, postgres=0, fakes=0, driver=0, at=10.0, workers={"0": 5.0, "1": 1.2})
    stats = DoorStats(name="api", by_worker=Counter({"0": 200}), shed_by_worker=Counter({"0": 7}))
    assert before.per_worker(after, stats) == {
        "0": {"turns": 200, "shed": 7, "cpu_ms_per_turn": 20.0, "cores_used": 0.4},
        "1": {"turns": 0, "shed": 0, "cpu_ms_per_turn": None, "cores_used": 0.02},
    }
