"""Prometheus metrics of the process (seed properties 35-37, 42, 43): one registry, shared; with several workers,
added up over them (`scrape_registry`). Counters and histograms, which multiprocess mode adds up as they are, and
each server process's memory and CPU by worker (`ProcessSampler`), in place of the `process_*` metrics that mode
drops. `listen` serves them on a port of their own (PARLEY_METRICS_PORT) for a scraper that sends no token."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import psutil
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

TURNS = Counter("parley_turns_total", "Turns handled", ["platform", "outcome"])
TURN_LATENCY = Histogram(
    "parley_turn_latency_seconds",
    "Time from a message arriving to its reply being ready",
    ["platform"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
TOKENS = Counter("parley_tokens_total", "Model tokens", ["direction"])
COST = Counter("parley_cost_usd_total", "Model cost in US dollars")
ERRORS = Counter("parley_errors_total", "Errors by type", ["type"])
CACHE = Counter("parley_cache_requests_total", "Response cache lookups", ["result"])
FEEDBACK = Counter("parley_feedback_total", "Ratings received", ["score"])
GUARD_BLOCKS_PIPELINE = Counter("parley_pipeline_blocks_total", "Turns blocked by a rail", ["stage"])
SHED = Counter("parley_shed_total", "Turns refused at once because the worker was full (load shedding)", ["door"])
WORKER_MEMORY = Gauge(
    "parley_worker_resident_memory_bytes", "Resident memory of each server process, sampled every few seconds",
    ["worker"], multiprocess_mode="livesum",
)
WORKER_CPU = Counter("parley_worker_cpu_seconds", "CPU time (user and system) each server process used", ["worker"])
SAMPLE_EVERY_S = 10.0
"""How often a server process samples its own memory and CPU for `/metrics`."""

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's multiprocess mode: set (by `parley serve --workers N`'s supervisor) before a process imports
prometheus_client, its counters live in files under this folder, one per process, which a scrape adds up."""
METRICS_PATH = "/metrics"


def scrape_registry(directory: str | None = None) -> Collector:
    """What a scrape shows: with a multiprocess folder (`directory`, else PROMETHEUS_MULTIPROC_DIR), every worker's
    counters added up, dead workers' included, so the totals never go back when a scrape reaches another worker
    or a worker restarts; without one, this process's own registry."""
    directory = directory or os.environ.get(MULTIPROCESS_DIR)
    if not directory:
        return REGISTRY
    aggregate = CollectorRegistry()
    MultiProcessCollector(aggregate, path=directory)
    return aggregate


class ProcessSampler:
    """This process's resident memory and CPU time into `WORKER_MEMORY` / `WORKER_CPU` under `worker`'s label.
    With several workers, multiprocess mode cannot add up the `process_*` metrics and leaves them out: an operator
    watching one worker's memory grow saw nothing. A live worker's memory shows under its number (a dead one's is
    dropped with its files, `multiprocess.mark_process_dead`); CPU is counted on, so a restarted worker's keeps
    growing and `rate()` reads it as any counter."""

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self._process = psutil.Process()
        self._cpu_s = 0.0

    def sample(self) -> None:
        with self._process.oneshot():
            rss = self._process.memory_info().rss
            times = self._process.cpu_times()
        cpu_s = times.user + times.system
        WORKER_MEMORY.labels(self.worker).set(rss)
        WORKER_CPU.labels(self.worker).inc(max(0.0, cpu_s - self._cpu_s))
        self._cpu_s = cpu_s


async def keep_sampling(sampler: ProcessSampler, every_s: float = SAMPLE_EVERY_S) -> None:
    """`sampler.sample()` now and every `every_s` until cancelled (a few tens of microseconds each)."""
    while True:
        sampler.sample()
        await asyncio.sleep(every_s)


class _Quiet(WSGIRequestHandler):
    """No access line per scrape on stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _MetricsServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _MetricsServer6(_MetricsServer):
    address_family = socket.AF_INET6


def listen(host: str, port: int, registry: Collector) -> WSGIServer:
    """Serve `registry` at /metrics (and nothing else) on (host, port), from a daemon thread, with no token: the
    port is for a scraper on a private network (Fly's, a cluster's), never to be published. Port 0 picks one
    (`server_port`); `shutdown()` then `server_close()` stop it. Raises OSError where the port cannot be bound."""
    exposition = make_wsgi_app(registry)

    def only_metrics(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != METRICS_PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"This port serves only /metrics.\n"]
        return exposition(environ, start_response)  # type: ignore[no-any-return]

    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    server_class = _MetricsServer6 if family == socket.AF_INET6 else _MetricsServer
    server = make_server(host, port, only_metrics, server_class, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="parley-metrics", daemon=True).start()
    return server
