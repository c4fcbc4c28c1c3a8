"""PARLEY_METRICS_PORT: /metrics alone, without a token, on a port of its own for a scraper that sends none (Fly's);
and with several workers one scrape adds up every worker's counters (prometheus_client's multiprocess mode)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY, multiprocess

from bot.config_check import ConfigError
from bot.front_door import WORKER_HEADER
from bot.settings import Settings
from bot.workers import BALANCING_KERNEL, metrics_port
from core.metrics import MULTIPROCESS_DIR, ProcessSampler, listen, scrape_registry
from tests.conftest import StartServe, free_port
from tests.test_workers import both_workers_listening

ROOT = Path(__file__).resolve().parents[1]
COUNT_A_TURN = "from core.metrics import TURNS; TURNS.labels('api', 'ok').inc()"
SAMPLE_AS_WORKER = (
    "import os, sys; from core.metrics import ProcessSampler; ProcessSampler(sys.argv[1]).sample(); print(os.getpid())"
)


def settings_with_port(port: int) -> Settings:
    return Settings(_env_file=None, parley_metrics_port=port)  # type: ignore[call-arg]


def test_the_metrics_port_answers_a_scraper_without_a_token_on_a_server_listening_everywhere() -> None:
    """On Fly the server listens on 0.0.0.0 with no token set, where /metrics on the main port answers 403."""
    port = free_port()
    with metrics_port(settings_with_port(port), "0.0.0.0"):
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert scraped.status_code == 200 and "parley_turns_total" in scraped.text


@pytest.mark.parametrize("path", ["/", "/v1/sessions", "/healthz", "/metrics/extra"])
def test_the_metrics_port_serves_nothing_but_metrics(path: str) -> None:
    server = listen("127.0.0.1", 0, scrape_registry())
    try:
        answered = httpx.get(f"http://127.0.0.1:{server.server_port}{path}", timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    assert answered.status_code == 404 and "parley_" not in answered.text


def test_a_metrics_port_in_use_is_a_setting_to_fix() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as refused, metrics_port(settings_with_port(port), "127.0.0.1"):
            pass
    assert refused.value.problems[0].variable == "PARLEY_METRICS_PORT"


def test_without_a_metrics_port_nothing_listens() -> None:
    with metrics_port(Settings(_env_file=None), "127.0.0.1"):  # type: ignore[call-arg]
        pass


def test_one_scrape_adds_up_the_turns_counted_by_two_worker_processes(tmp_path: Path) -> None:
    env = {**os.environ, MULTIPROCESS_DIR: str(tmp_path), "PYTHONPATH": str(ROOT)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", COUNT_A_TURN], env=env, check=True, timeout=60)
    server = listen("127.0.0.1", 0, scrape_registry(str(tmp_path)))
    try:
        scraped = httpx.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=5).text
    finally:
        server.shutdown()
        server.server_close()
    assert 'parley_turns_total{outcome="ok",platform="api"} 2.0' in scraped


def test_a_workers_own_scrape_adds_up_every_worker_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """/metrics on the main port reads PROMETHEUS_MULTIPROC_DIR, which the supervisor sets for its workers."""
    env = {**os.environ, MULTIPROCESS_DIR: str(tmp_path), "PYTHONPATH": str(ROOT)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", COUNT_A_TURN], env=env, check=True, timeout=60)
    monkeypatch.setenv(MULTIPROCESS_DIR, str(tmp_path))
    assert {s.value for m in scrape_registry().collect() if m.name == "parley_turns" for s in m.samples} == {2.0}


def test_a_server_process_reports_its_memory_and_cpu_under_its_worker_number() -> None:
    sampler = ProcessSampler("7")
    sampler.sample()
    cpu_before = REGISTRY.get_sample_value("parley_worker_cpu_seconds_total", {"worker": "7"})
    sum(i * i for i in range(300_000))
    sampler.sample()
    rss = REGISTRY.get_sample_value("parley_worker_resident_memory_bytes", {"worker": "7"})
    assert rss is not None and rss > 10 * 2**20
    cpu_after = REGISTRY.get_sample_value("parley_worker_cpu_seconds_total", {"worker": "7"})
    assert cpu_before is not None and cpu_after is not None and cpu_after > cpu_before


def test_a_scrape_of_several_workers_shows_each_live_ones_memory_and_keeps_a_dead_ones_cpu(tmp_path: Path) -> None:
    """Multiprocess mode drops `process_*`; each worker's own memory shows under its number until it is marked dead."""
    env = {**os.environ, MULTIPROCESS_DIR: str(tmp_path), "PYTHONPATH": str(ROOT)}
    pids = {
        worker: int(subprocess.run([sys.executable, "-c", SAMPLE_AS_WORKER, worker], env=env, check=True, timeout=60,
                                   capture_output=True, text=True).stdout)
        for worker in ("0", "1")
    }

    def scraped(name: str) -> dict[str, float]:
        return {s.labels["worker"]: s.value for m in scrape_registry(str(tmp_path)).collect() for s in m.samples
                if s.name == name}

    assert set(scraped("parley_worker_resident_memory_bytes")) == {"0", "1"}
    assert all(v > 10 * 2**20 for v in scraped("parley_worker_resident_memory_bytes").values())
    multiprocess.mark_process_dead(pids["1"], str(tmp_path))
    assert set(scraped("parley_worker_resident_memory_bytes")) == {"0"}
    assert set(scraped("parley_worker_cpu_seconds_total")) == {"0", "1"}


def readyz_count(text: str) -> float:
    """parley_http_requests_total for GET /readyz answered 200, in a scrape."""
    line = 'parley_http_requests_total{method="GET",route="/readyz",status="200"} '
    return sum(float(row.removeprefix(line)) for row in text.splitlines() if row.startswith(line))


@pytest.mark.skipif(not BALANCING_KERNEL, reason="the kernel balances SO_REUSEPORT sockets on Linux only")
@pytest.mark.timeout(300)
async def test_a_scrape_of_two_workers_shows_the_requests_both_answered(serve: StartServe, tmp_path: Path) -> None:
    """Each worker had its own registry: a scrape showed whichever worker it reached, so the totals went back and
    forth. Here both scrapes (the metrics port, and /metrics on the main port) show the sum, and the folder the
    counters lived in is gone once the server stops."""
    port = free_port()
    server = serve({"PARLEY_WORKERS": "2", "PARLEY_MODEL": "none", "PARLEY_METRICS_PORT": str(port),
                    "TMPDIR": str(tmp_path)})
    await both_workers_listening(server.url)
    answered: list[str] = []
    while set(answered) != {"0", "1"} or len(answered) < 8:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:  # a new connection each time
            ready = await client.get("/readyz")
        assert ready.status_code == 200
        answered.append(ready.headers[WORKER_HEADER])
    deadline = time.monotonic() + 10
    async with httpx.AsyncClient(timeout=10) as client:
        while True:
            private = await client.get(f"http://127.0.0.1:{port}/metrics")
            main = await client.get(f"{server.url}/metrics")
            if readyz_count(private.text) == readyz_count(main.text) == len(answered) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    assert readyz_count(private.text) == readyz_count(main.text) == len(answered), answered
    assert 'parley_worker_resident_memory_bytes{worker="0"}' in private.text
    assert 'parley_worker_resident_memory_bytes{worker="1"}' in private.text
    assert await asyncio.to_thread(server.stop) == 0, server.log()[-3000:]
    assert not list(tmp_path.glob("parley-metrics-*"))
