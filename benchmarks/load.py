"""How much one Parley instance carries: many concurrent conversations through both doors.

The real server (`python -m bot serve --workers 2`, one process per core) runs as a subprocess on an
embedded Postgres in a fresh folder. A second subprocess holds the fakes, off the server's process and off this one: an
OpenAI-compatible model that takes `--model-delay` (1 s) per answer, and the Slack Web API, which
reports every finished reply back here. This process drives load, closed-loop: `--concurrency`
conversations at a time, each `--conversation-turns` turns long, one after another.

- API door: `POST /v1/chat` with an API key, in two phases of equal turns. `api_below_capacity`:
  `--below-concurrency` conversations (default three quarters of what the workers admit,
  workers x `--max-turns`), where p95 must stay under 2 s. `api_overload`: `--concurrency`
  conversations, more than the workers admit, where the extra turns must be shed fast rather than
  queued. turns/s = completed turns / wall time; latency is the HTTP request's. A turn the server sheds
  (503 `overloaded` with Retry-After) is counted apart (`shed`, `shed_p99_ms`) and sent again after
  Retry-After, as a client would. Each conversation slot is its own person (`user_id`, one conversation
  at a time, as people talk), so the below-capacity phase is 48 people and the overload phase 200 by default.
- Slack door: signed Events API `app_mention` requests to `/slack/events`, the first turn of a
  conversation at the top level and the rest in its thread. ack = the event POST's response time, as
  this process sees it (`ack_*`) and as the server timed it (`ack_server_*`, its `Server-Timing`, from the
  request's first byte to the answer). They differ when this process is the slow one: each conversation
  opens with an event at the same moment, 200 POSTs that this one loop signs and sends before it reads the
  first answer, so the opening burst's acks read 286 ms p50 here where the server took 79 (docs/performance.md).
  turns/s = replies finished at the fake Slack (chat.stopStream, or chat.postMessage without a stream) / wall
  time; reply latency = event sent to reply finished.

The doors are measured one after the other, after a warm-up through both; the server's resident
memory is sampled after the warm-up, every second during the run and at the end. CPU seconds of the
server, its Postgres, the fakes and this driver are reported per turn, to show where time goes. Each phase
also reports every worker apart (`workers`): the turns (Slack: acks) and sheds it answered, read from
the X-Parley-Worker header, its own CPU per turn it answered and the cores it used, so an uneven spread
of connections over the workers shows.
Progress goes to stderr; the JSON to stdout:

    {"api_below_capacity": {"turns_per_s", "p95_ms", ...}, "api_overload": {"turns_per_s", "shed", ...},
     "slack": {"turns_per_s", "ack_p99_ms", ...},
     "rss_growth_pct": ..., "rss_mb": {...}, "machine": {...}, ...}

Run: python benchmarks/load.py --json [--turns 10000] [--concurrency 200] [--below-concurrency N] [--workers 2]
     [--max-turns 32] [--time-limit 1800]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg
import psutil
from pydantic_ai.output import DEFAULT_OUTPUT_TOOL_NAME
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from slack_sdk.signature import SignatureVerifier

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import OFFLINE_ENV, machine, percentile
from bot.front_door import WORKER_HEADER
from tests.fakes.openai_server import FakeOpenAI, Response, ToolCalls, echo
from tests.fakes.slack_api import FakeSlack, Workspace, event_callback, mention

TELEMETRY_OFF = OFFLINE_ENV
"""Set for the server and the CLI it runs (this process loads no model)."""
T = TypeVar("T")
HOST = "127.0.0.1"
SIGNING_SECRET = "load-signing-secret"
WORKSPACE = "W-load"
SLACK_TEAM = "T0LOAD"
UNLIMITED = str(10**9)
REPLY_PREFIX = "You said: "
QUESTIONS = (
    "When is the standup tomorrow?",
    "Can you remind me what we decided about the release train?",
    "What's my preferred answer style again?",
    "Summarise what I told you about the Falcon project.",
    "Which room do we use on Thursdays?",
    "Draft a two-line note thanking the team for the offsite.",
    "What is 17 times 23?",
)
TARGETS = {
    "turns_per_s_min": 100.0,
    "slack_ack_p99_ms_max": 100.0,
    "rss_growth_pct_max": 10.0,
    "api_p95_ms_max": 2000,
    "server_cpu_ms_per_turn_max": 20.0,
    "postgres_transactions_per_turn_max": 6.0,
}
STARTUP_TIMEOUT_S = 180.0
REQUEST_TIMEOUT_S = 120.0
KEEPALIVE_S = 3.0
RSS_POINTS = 11
err = Console(stderr=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=10_000, help="measured turns, split evenly over the two doors")
    parser.add_argument("--warmup", type=int, default=400, help="unmeasured turns per door before measuring")
    parser.add_argument(
        "--concurrency", type=int, default=200, help="conversations in flight: Slack, and the API's overload phase"
    )
    parser.add_argument(
        "--below-concurrency",
        type=int,
        default=None,
        help="conversations in flight in the API's below-capacity phase (default: 3/4 of workers x --max-turns)",
    )
    parser.add_argument("--conversation-turns", type=int, default=5, help="turns per conversation")
    parser.add_argument("--model-delay", type=float, default=1.0, help="seconds the fake model takes per answer")
    parser.add_argument("--time-limit", type=float, default=1800.0, help="stop sending after this many seconds")
    parser.add_argument("--workers", type=int, default=2, help="server processes (parley serve --workers)")
    parser.add_argument(
        "--max-turns", type=int, default=32, help="turns each worker works on at once (PARLEY_MAX_CONCURRENT_TURNS)"
    )
    parser.add_argument("--server-log-level", default="INFO", help="the server's PARLEY_LOG_LEVEL")
    parser.add_argument(
        "--fact-extraction",
        choices=("on", "off"),
        default="on",
        help="the server's PARLEY_FACT_EXTRACTION: the background fact extraction by the model (default on, as served)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data folder (server log, database)")
    parser.add_argument("--json", action="store_true", help="print the JSON on one line")
    args = parser.parse_args()
    if args.turns < 3 or args.concurrency < 1 or args.conversation_turns < 1:
        parser.error("--turns must be at least 3, --concurrency and --conversation-turns at least 1")
    if args.below_concurrency is None:
        args.below_concurrency = below_capacity(args.workers, args.max_turns)
    if args.below_concurrency < 1:
        parser.error("--below-concurrency must be at least 1")
    try:
        result = asyncio.run(stoppable(run(args)))
    except BenchmarkError as exc:
        err.print(f"[red]load benchmark failed:[/red] {exc}")
        raise SystemExit(2) from exc
    except (asyncio.CancelledError, KeyboardInterrupt) as exc:
        err.print("[yellow]load benchmark stopped by a signal; server and fakes shut down[/yellow]")
        raise SystemExit(130) from exc
    print(json.dumps(result, indent=None if args.json else 2))
    sys.stdout.flush()


async def stoppable(work: Coroutine[Any, Any, T]) -> T:
    """Run `work`, cancelling it on SIGTERM or SIGINT (even where the shell ignores SIGINT), so
    its cleanup stops the server, its Postgres and the fakes instead of orphaning them."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        return await task
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


# -- pure helpers ------------------------------------------------------------------------------
def latency_summary(seconds: Sequence[float], prefix: str = "") -> dict[str, float | None]:
    """p50/p95/p99/max in milliseconds, rounded, under keys like `ack_p99_ms`."""
    out: dict[str, float | None] = {}
    for name, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)):
        value = percentile(seconds, q)
        out[f"{prefix}{name}_ms"] = None if value is None else round(value * 1000, 1)
    return out


def server_timing_s(header: str | None) -> float | None:
    """Seconds in a `Server-Timing: app;dur=MS` header (bot/front_door.py), None without one."""
    for metric in (header or "").split(","):
        name, _, params = metric.strip().partition(";")
        if name == "app":
            for param in params.split(";"):
                key, _, value = param.strip().partition("=")
                if key == "dur":
                    with contextlib.suppress(ValueError):
                        return float(value) / 1000
    return None


def growth_pct(before: float, after: float) -> float:
    """How much `after` grew over `before`, in percent (negative when it shrank)."""
    if before <= 0:
        raise ValueError("the baseline must be positive")
    return round((after - before) / before * 100, 2)


def split_turns(total: int) -> tuple[int, int, int]:
    """Measured turns for (API below capacity, API overload, Slack): half to each door, the API's half
    split evenly over its two phases, odd ones to the earlier phases."""
    api, slack = total - total // 2, total // 2
    return api - api // 2, api // 2, slack


def below_capacity(workers: int, max_turns: int) -> int:
    """Conversations the API phase below capacity keeps in flight: three quarters of what the workers
    admit (the kernel does not spread connections perfectly evenly over the workers)."""
    return max(1, workers * max_turns * 3 // 4)


def api_key_from_output(stdout: str) -> str:
    """`parley apikey create` prints the key alone on its last line."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines or " " in lines[-1]:
        raise ValueError("no API key on the last line of `apikey create`'s output")
    return lines[-1]


def slack_ts(n: int) -> str:
    """The n-th unique Slack message timestamp ("seconds.micros", increasing with n)."""
    return f"{1_700_000_000 + n // 1_000_000}.{n % 1_000_000:06d}"


def message_text(serial: int) -> str:
    """A different message every turn, as people write: no cache or dedupe may make turns cheaper."""
    return f"{QUESTIONS[serial % len(QUESTIONS)]} This is about item {serial}."


def model_answer(body: dict[str, Any]) -> Response:
    """The fake model's answer, as a real one would give it: a request for structured output (the background
    fact extraction offers pydantic-ai's output tool) is answered through that tool, here with nothing to
    remember, which is what a real model decides for the benchmark's questions; anything else is echoed. An
    echo there would fail every extraction, which no working model does."""
    offered = {tool.get("function", {}).get("name") for tool in body.get("tools", [])}
    if DEFAULT_OUTPUT_TOOL_NAME in offered:
        return ToolCalls([(DEFAULT_OUTPUT_TOOL_NAME, {"operations": []})])
    return echo(body)


def retry_after_s(header: str | None) -> float:
    """The seconds a 503's Retry-After asks for (1 when absent or not a number of seconds)."""
    try:
        return max(0.0, float(header)) if header is not None else 1.0
    except ValueError:
        return 1.0


def is_answer(text: str) -> bool:
    """The fake model echoes; anything else is an error message or a refusal."""
    return REPLY_PREFIX in text


# -- measurement records -----------------------------------------------------------------------
@dataclass
class Budget:
    """Turns left to start and a deadline; every worker takes from the same one."""

    left: int
    deadline: float

    def take(self) -> bool:
        if self.left <= 0 or time.monotonic() >= self.deadline:
            return False
        self.left -= 1
        return True

    def give_back(self) -> None:
        """A turn refused by load shedding: it is sent again after Retry-After."""
        self.left += 1


@dataclass
class DoorStats:
    """What one phase through one door saw."""

    name: str
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    latencies: list[float] = field(default_factory=list)
    """API: request time. Slack: event sent -> reply finished at the fake."""
    acks: list[float] = field(default_factory=list)
    """Slack: event POST sent -> its answer read, on this process's clock."""
    acks_server: list[float] = field(default_factory=list)
    """Slack: the server's own time for each ack (its `Server-Timing`), from the request's first byte to the answer."""
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    shed: list[float] = field(default_factory=list)
    """API: response times of turns refused with 503 + Retry-After (load shedding), not counted as turns."""
    by_worker: Counter[str] = field(default_factory=Counter)
    """Turns (API) or acks (Slack) per worker that answered (its X-Parley-Worker header)."""
    shed_by_worker: Counter[str] = field(default_factory=Counter)

    @property
    def turns(self) -> int:
        return len(self.latencies)

    @property
    def wall_s(self) -> float:
        return (self.finished or time.monotonic()) - self.started


@dataclass(frozen=True, kw_only=True)
class CpuSnapshot:
    """Cumulative CPU seconds (user + system) of each process group at one moment."""

    server: float
    postgres: float
    fakes: float
    driver: float
    at: float
    workers: dict[str, float] = field(default_factory=dict)
    """Each worker process's own CPU seconds, by its number (the supervisor's are only in `server`)."""

    def per_turn_ms(self, later: CpuSnapshot, turns: int) -> dict[str, float | None]:
        def per(a: float, b: float) -> float | None:
            return round((b - a) / turns * 1000, 2) if turns else None

        return {
            "server": per(self.server, later.server),
            "postgres": per(self.postgres, later.postgres),
            "fakes": per(self.fakes, later.fakes),
            "driver": per(self.driver, later.driver),
        }

    def utilisation(self, later: CpuSnapshot) -> dict[str, float]:
        """Cores used on average over the interval, per group."""
        wall = max(later.at - self.at, 1e-9)
        return {
            "server": round((later.server - self.server) / wall, 2),
            "postgres": round((later.postgres - self.postgres) / wall, 2),
            "fakes": round((later.fakes - self.fakes) / wall, 2),
            "driver": round((later.driver - self.driver) / wall, 2),
        }

    def per_worker(self, later: CpuSnapshot, stats: DoorStats) -> dict[str, dict[str, Any]]:
        """Each worker's share of the phase: its turns (API) or acks (Slack), sheds, CPU per turn it
        answered, and cores used. A worker that answered nothing shows its CPU per turn as None."""
        wall = max(later.at - self.at, 1e-9)
        report: dict[str, dict[str, Any]] = {}
        for worker in sorted(set(later.workers) | set(stats.by_worker)):
            cpu = later.workers.get(worker, 0.0) - self.workers.get(worker, 0.0)
            turns = stats.by_worker.get(worker, 0)
            report[worker] = {
                "turns": turns,
                "shed": stats.shed_by_worker.get(worker, 0),
                "cpu_ms_per_turn": round(cpu / turns * 1000, 2) if turns else None,
                "cores_used": round(cpu / wall, 2),
            }
        return report


class BenchmarkError(RuntimeError):
    """The server or the fakes did not come up, or the server died mid-run; the message says why."""


# -- the fakes' process ------------------------------------------------------------------------
@dataclass
class CountingSlack(FakeSlack):
    """The fake Slack, counting calls instead of keeping them (10,000 turns would pile up) and
    reporting every finished reply to the driver as (channel, thread_ts, time.time(), answered)."""

    sink: Any = None
    counts: Counter[str] = field(default_factory=Counter)

    def _record(self, method: str, args: dict[str, Any], token: str | None, status: int, client: Any = None) -> None:
        self.counts[f"{method}:{status}"] += 1

    def _stop_stream(self, args: dict[str, Any], ws: Workspace | None) -> dict[str, Any]:
        result = super()._stop_stream(args, ws)
        if result["ok"]:
            message = self.messages.pop((str(args["channel"]), str(args["ts"])))
            self.sink.put((message.channel, message.thread_ts, time.time(), is_answer(message.text)))
        return result

    def _post_message(self, args: dict[str, Any], ws: Workspace | None) -> dict[str, Any]:
        result = super()._post_message(args, ws)
        if result["ok"]:
            text = str(args.get("text") or "")
            self.sink.put((str(args["channel"]), args.get("thread_ts") or None, time.time(), is_answer(text)))
        return result


def serve_fakes(conn: multiprocessing.connection.Connection, sink: Any, delay: float) -> None:
    """The fakes' process: start them, send their addresses, answer `stats` until `stop`."""
    model = FakeOpenAI(responder=model_answer, delay=delay).start()
    slack = CountingSlack(sink=sink)
    slack.start()
    workspace = slack.add_workspace(SLACK_TEAM)
    conn.send({"model_url": model.base_url, "slack_url": slack.base_url, "workspace": workspace})
    model_requests = 0
    while True:
        command = conn.recv()
        seen = len(model.requests)
        del model.requests[:seen], model.headers[:seen]
        model_requests += seen
        if command == "stop":
            break
        conn.send({"model_requests": model_requests, "slack_calls": dict(slack.counts)})
    slack.stop()
    model.stop()
    conn.send({"model_requests": model_requests, "slack_calls": dict(slack.counts)})


@dataclass
class Fakes:
    """The fakes' process as the driver sees it."""

    process: multiprocessing.process.BaseProcess
    conn: multiprocessing.connection.Connection
    sink: Any
    model_url: str
    slack_url: str
    workspace: Workspace

    @classmethod
    def start(cls, delay: float) -> Fakes:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        sink = ctx.Queue()
        process = ctx.Process(target=serve_fakes, args=(child, sink, delay), name="parley-load-fakes", daemon=True)
        process.start()
        if not parent.poll(60):
            process.kill()
            raise BenchmarkError("the fake model and fake Slack did not start within 60 s")
        info = parent.recv()
        return cls(
            process=process,
            conn=parent,
            sink=sink,
            model_url=info["model_url"],
            slack_url=info["slack_url"],
            workspace=info["workspace"],
        )

    def stats(self) -> dict[str, Any]:
        if not self.process.is_alive():
            raise BenchmarkError(f"the fakes' process died (exit code {self.process.exitcode})")
        self.conn.send("stats")
        stats: dict[str, Any] = self.conn.recv()
        return stats

    def stop(self) -> dict[str, Any]:
        stats: dict[str, Any] = {}
        with contextlib.suppress(OSError, EOFError):
            self.conn.send("stop")
            if self.conn.poll(15):
                stats = self.conn.recv()
        self.sink.put(None)
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
        return stats


# -- the server's process ----------------------------------------------------------------------
@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def check_alive(self) -> None:
        """A server that has died ends the run, with its log."""
        if self.process.poll() is not None:
            raise BenchmarkError(f"the server exited with {self.process.returncode} mid-run:\n{self.log_tail()}")

    def workers(self) -> dict[str, psutil.Process]:
        """The worker processes by number (`--worker-index`); a single server is worker 0."""
        root = psutil.Process(self.process.pid)
        found: dict[str, psutil.Process] = {}
        for child in root.children():
            with contextlib.suppress(psutil.Error):
                cmdline = child.cmdline()
                if "--worker-index" in cmdline:
                    found[cmdline[cmdline.index("--worker-index") + 1]] = child
        return found or {"0": root}

    def processes(self) -> list[psutil.Process]:
        """The server (the supervisor and its workers with --workers), without the embedded Postgres."""
        root = psutil.Process(self.process.pid)
        postgres = {p.pid for p in postgres_processes(self.data_dir)}
        return [p for p in [root, *root.children(recursive=True)] if p.pid not in postgres]

    def rss_bytes(self) -> int:
        self.check_alive()
        total = 0
        for process in self.processes():
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return total

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM (the server drains), then SIGKILL after `timeout_s`."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def server_env(
    data_dir: Path, fakes: Fakes, log_level: str, max_turns: int, fact_extraction: str = "on"
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith(("SLACK_", "PARLEY_"))}
    env.update(TELEMETRY_OFF)
    env.update(
        {
            "PARLEY_DATA_DIR": str(data_dir),
            "PARLEY_MODEL": "openai:fake",
            "OPENAI_BASE_URL": fakes.model_url,
            "OPENAI_API_KEY": "sk-load",
            "PARLEY_MODEL_TIMEOUT": "30",
            "PARLEY_RATE_USER_PER_MIN": UNLIMITED,
            "PARLEY_RATE_WORKSPACE_PER_MIN": UNLIMITED,
            "PARLEY_API_RATE_PER_MIN": UNLIMITED,
            "PARLEY_LOG_LEVEL": log_level,
            "PARLEY_MAX_CONCURRENT_TURNS": str(max_turns),
            "PARLEY_FACT_EXTRACTION": fact_extraction,
            "SLACK_BOT_TOKEN": fakes.workspace.token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": fakes.slack_url,
        }
    )
    return env


def create_api_key(env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "apikey", "create", "--workspace", WORKSPACE, "--name", "load"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise BenchmarkError(f"`parley apikey create` failed ({done.returncode}):\n{done.stderr[-3000:]}")
    try:
        return api_key_from_output(done.stdout)
    except ValueError as exc:
        raise BenchmarkError(f"{exc}:\n{done.stdout[-1000:]}") from exc


async def start_server(env: dict[str, str], data_dir: Path, workers: int) -> Server:
    port = free_port()
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--host", HOST, "--port", str(port), "--workers", str(workers)],
            env=env,
            cwd=data_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(process=process, url=f"http://{HOST}:{port}", data_dir=data_dir, log_path=log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise BenchmarkError(
                    f"the server exited with {process.returncode} while starting:\n{server.log_tail()}"
                )
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{server.url}/readyz", timeout=aiohttp.ClientTimeout(total=5)) as response:
                    if response.status == 200:
                        return server
            await asyncio.sleep(0.5)
    server.stop(10)
    raise BenchmarkError(f"the server was not ready within {STARTUP_TIMEOUT_S:.0f} s:\n{server.log_tail()}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def postgres_processes(data_dir: Path) -> list[psutil.Process]:
    """The embedded Postgres serving `data_dir`: its postmaster and every backend."""
    marker = str((data_dir / "pg").resolve())
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if process.info.get("name") == "postgres" and marker in " ".join(cmdline):
            with contextlib.suppress(psutil.Error):
                return [process, *process.children(recursive=True)]
    return []


async def postgres_counters(server: Server) -> dict[str, int]:
    """Cumulative transactions and row counts of the server's database (pg_stat_database)."""
    server.check_alive()
    socket_dir = str((server.data_dir / "pg").resolve())
    conn = await asyncpg.connect(host=socket_dir, user="postgres", database="postgres")
    try:
        row = await conn.fetchrow(
            """SELECT xact_commit + xact_rollback AS transactions, tup_returned AS rows_read,
                      tup_inserted AS rows_inserted, tup_updated AS rows_updated, tup_deleted AS rows_deleted
               FROM pg_stat_database WHERE datname = current_database()"""
        )
    finally:
        await conn.close()
    assert row is not None
    return {key: int(value) for key, value in row.items()}


def requests_per_turn(before: int, after: int, turns: int) -> float | None:
    """The fake model's requests in a phase per turn: 1 for the answer, more for extractions and tool steps."""
    return round((after - before) / turns, 2) if turns else None


async def phase_snapshot(server: Server, fakes: Fakes) -> tuple[CpuSnapshot, dict[str, int], int]:
    """What a phase is measured by, at its start and end: CPU, Postgres's counters, and the requests the fake
    model has answered (the turns' own and the background fact extractions', which may finish in the next phase)."""
    cpu = cpu_snapshot(server, fakes)
    postgres = await postgres_counters(server)
    stats = await asyncio.to_thread(fakes.stats)
    return cpu, postgres, int(stats["model_requests"])


def per_turn(before: dict[str, int], after: dict[str, int], turns: int) -> dict[str, float | None]:
    """Each counter's growth divided by `turns`."""
    return {key: round((after[key] - before[key]) / turns, 1) if turns else None for key in after}


def spaced(values: Sequence[float], points: int) -> list[float]:
    """`points` values picked evenly from `values`, first and last included."""
    if len(values) <= points:
        return list(values)
    step = (len(values) - 1) / (points - 1)
    return [values[round(i * step)] for i in range(points)]


def wait_for_postgres_exit(data_dir: Path, timeout_s: float = 30.0) -> None:
    """The embedded Postgres stops after the server exits; deleting its folder before would race it."""
    deadline = time.monotonic() + timeout_s
    while postgres_processes(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)


def cpu_seconds(processes: Sequence[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def cpu_snapshot(server: Server, fakes: Fakes) -> CpuSnapshot:
    return CpuSnapshot(
        server=cpu_seconds(server.processes()),
        postgres=cpu_seconds(postgres_processes(server.data_dir)),
        fakes=cpu_seconds([psutil.Process(fakes.process.pid)]),
        driver=cpu_seconds([psutil.Process()]),
        at=time.monotonic(),
        workers={worker: cpu_seconds([process]) for worker, process in server.workers().items()},
    )


# -- driving load ------------------------------------------------------------------------------
@dataclass
class Driver:
    """Both doors' clients, sharing one HTTP session and the Slack reply waiters."""

    session: aiohttp.ClientSession
    server: Server
    api_key: str
    workspace: Workspace
    request_timeout_s: float
    conversation_turns: int
    waiters: dict[tuple[str, str], asyncio.Future[tuple[float, bool]]] = field(default_factory=dict)
    late_replies: int = 0
    _ts: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _texts: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _signer: SignatureVerifier = field(default_factory=lambda: SignatureVerifier(SIGNING_SECRET))

    async def api_conversations(self, slot: int, budget: Budget, stats: DoorStats, tick: Callable[[], None]) -> None:
        user = f"u-load-{slot}"
        headers = {"Authorization": f"Bearer {self.api_key}"}
        for n in itertools.count():
            session_id = f"load-{slot}-{n}-{time.monotonic_ns()}"
            for _ in range(self.conversation_turns):
                if not budget.take():
                    return
                body = {"message": message_text(next(self._texts)), "session_id": session_id, "user_id": user}
                started = time.perf_counter()
                try:
                    async with self.session.post(
                        f"{self.server.url}/v1/chat",
                        json=body,
                        headers=headers,
                        timeout=aiohttp.ClientTimeout(total=self.request_timeout_s),
                    ) as r:
                        data = await r.json(content_type=None)
                        status = r.status
                        answered_by = r.headers.get(WORKER_HEADER, "?")
                except (aiohttp.ClientError, TimeoutError, json.JSONDecodeError) as exc:
                    stats.errors[type(exc).__name__] += 1
                    tick()
                    continue
                elapsed = time.perf_counter() - started
                if status == 503 and data.get("error") == "overloaded":
                    stats.shed.append(elapsed)
                    stats.shed_by_worker[answered_by] += 1
                    budget.give_back()
                    await asyncio.sleep(retry_after_s(r.headers.get("Retry-After")))
                    continue
                stats.latencies.append(elapsed)
                stats.by_worker[answered_by] += 1
                if status != 200:
                    stats.errors[f"http_{status}"] += 1
                elif data.get("error") or not is_answer(str(data.get("reply"))):
                    stats.errors[str(data.get("error") or "not_an_answer")] += 1
                else:
                    stats.ok += 1
                tick()

    async def slack_conversations(
        self, slot: int, budget: Budget, stats: DoorStats, tick: Callable[[], None]
    ) -> None:
        channel, user = f"CLOAD{slot:05d}", f"ULOAD{slot:05d}"
        loop = asyncio.get_running_loop()
        while True:
            root: str | None = None
            for _ in range(self.conversation_turns):
                if not budget.take():
                    return
                ts = slack_ts(next(self._ts))
                root = root or ts
                event = mention(
                    self.workspace,
                    channel=channel,
                    user=user,
                    ts=ts,
                    text=message_text(next(self._texts)),
                    thread_ts=None if root == ts else root,
                )
                waiter: asyncio.Future[tuple[float, bool]] = loop.create_future()
                self.waiters[(channel, root)] = waiter
                sent_at = time.time()
                ack = await self._post_event(event, stats)
                if ack is None:
                    self.waiters.pop((channel, root), None)
                    tick()
                    continue
                stats.acks.append(ack[0])
                if ack[1] is not None:
                    stats.acks_server.append(ack[1])
                try:
                    done_at, answered = await asyncio.wait_for(waiter, self.request_timeout_s)
                except TimeoutError:
                    stats.errors["no_reply"] += 1
                    tick()
                    continue
                finally:
                    self.waiters.pop((channel, root), None)
                stats.latencies.append(done_at - sent_at)
                if answered:
                    stats.ok += 1
                else:
                    stats.errors["not_an_answer"] += 1
                tick()

    async def _post_event(self, event: dict[str, Any], stats: DoorStats) -> tuple[float, float | None] | None:
        """POST one signed event; the ack's time in seconds as seen here and as the server timed it (None
        without its `Server-Timing`), or None when it failed."""
        body = json.dumps(event_callback(self.workspace, event, event_id=f"Ev{next(self._ts):012d}"))
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": str(self._signer.generate_signature(timestamp=stamp, body=body)),
        }
        started = time.perf_counter()
        try:
            async with self.session.post(
                f"{self.server.url}/slack/events",
                data=body.encode(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.request_timeout_s),
            ) as response:
                await response.read()
                status = response.status
                server_s = server_timing_s(response.headers.get("Server-Timing"))
                stats.by_worker[response.headers.get(WORKER_HEADER, "?")] += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            stats.errors[f"ack_{type(exc).__name__}"] += 1
            return None
        elapsed = time.perf_counter() - started
        if status != 200:
            stats.errors[f"ack_http_{status}"] += 1
            return None
        return elapsed, server_s

    def reply_finished(self, channel: str, thread_ts: str | None, at: float, answered: bool) -> None:
        waiter = self.waiters.get((channel, thread_ts or ""))
        if waiter is None or waiter.done():
            self.late_replies += 1
            return
        waiter.set_result((at, answered))


def relay_replies(sink: Any, loop: asyncio.AbstractEventLoop, driver: Driver) -> None:
    """Thread: hand each finished reply from the fakes' process to the driver's loop."""
    while (item := sink.get()) is not None:
        loop.call_soon_threadsafe(driver.reply_finished, *item)


async def run_door(
    name: str, driver: Driver, *, turns: int, concurrency: int, deadline: float, progress: Progress
) -> DoorStats:
    """`turns` turns through one door, `concurrency` conversations at a time; stops at `deadline`."""
    stats = DoorStats(name=name)
    budget = Budget(left=turns, deadline=deadline)
    task = progress.add_task(name, total=turns)
    err.print(f"{name}: started")  # also in a log, where the progress bar is not drawn

    def tick() -> None:
        progress.advance(task)

    conversations = driver.api_conversations if name.startswith("api") else driver.slack_conversations
    await asyncio.gather(*(conversations(i, budget, stats, tick) for i in range(min(concurrency, turns))))
    stats.finished = time.monotonic()
    progress.update(task, description=f"{name} {stats.turns / max(stats.wall_s, 1e-9):.1f} turns/s")
    err.print(f"{name}: finished, {stats.turns} turns")
    return stats


async def sample_rss(server: Server, samples: list[tuple[float, int]], stop: asyncio.Event) -> None:
    while not stop.is_set() and server.process.poll() is None:
        with contextlib.suppress(psutil.Error):
            samples.append((time.monotonic(), server.rss_bytes()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


def door_report(stats: DoorStats, before: CpuSnapshot, after: CpuSnapshot, concurrency: int) -> dict[str, Any]:
    turns_per_s = stats.ok / stats.wall_s if stats.wall_s > 0 else 0.0
    report: dict[str, Any] = {
        "turns_per_s": round(turns_per_s, 1),
        "turns": stats.turns,
        "answered": stats.ok,
        "errors": dict(stats.errors),
        "wall_s": round(stats.wall_s, 1),
        "concurrency": concurrency,
    }
    if stats.name.startswith("api"):
        report.update(latency_summary(stats.latencies))
        report["shed"] = len(stats.shed)
        report.update(latency_summary(stats.shed, "shed_"))
    else:
        report.update(latency_summary(stats.acks, "ack_"))
        report.update(latency_summary(stats.acks_server, "ack_server_"))
        report.update(latency_summary(stats.latencies, "reply_"))
    report["cpu_ms_per_turn"] = before.per_turn_ms(after, stats.turns)
    report["cores_used"] = before.utilisation(after)
    report["workers"] = before.per_worker(after, stats)
    return report


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    deadline = started + args.time_limit
    below_turns, overload_turns, slack_turns = split_turns(args.turns)
    # The measured phases, one after the other: (JSON key, progress label, turns, conversations in flight).
    plan = (
        ("api_below_capacity", "api below capacity", below_turns, args.below_concurrency),
        ("api_overload", "api overload", overload_turns, args.concurrency),
        ("slack", "slack", slack_turns, args.concurrency),
    )
    info = machine()
    data_dir = Path(tempfile.mkdtemp(prefix="plb", dir="/tmp"))
    err.print(f"[dim]data folder {data_dir}[/dim]")
    fakes = Fakes.start(args.model_delay)
    server: Server | None = None
    try:
        env = server_env(data_dir, fakes, args.server_log_level, args.max_turns, args.fact_extraction)
        api_key = await asyncio.to_thread(create_api_key, env, data_dir)
        server = await start_server(env, data_dir, args.workers)
        err.print(f"server ready at {server.url} (pid {server.process.pid}) in {time.monotonic() - started:.0f} s")
        # Idle connections are dropped before uvicorn's 5 s keep-alive ends, so that a request never
        # races the server closing the connection it is sent on.
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=KEEPALIVE_S)
        async with aiohttp.ClientSession(connector=connector) as session:
            driver = Driver(
                session=session,
                server=server,
                api_key=api_key,
                workspace=fakes.workspace,
                request_timeout_s=REQUEST_TIMEOUT_S,
                conversation_turns=args.conversation_turns,
            )
            relay = threading.Thread(
                target=relay_replies,
                args=(fakes.sink, asyncio.get_running_loop(), driver),
                daemon=True,
                name="slack-replies",
            )
            relay.start()
            with Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
            ) as progress:
                if args.warmup:
                    await asyncio.gather(
                        *(
                            run_door(
                                f"{door} warm-up",
                                driver,
                                turns=args.warmup,
                                concurrency=args.concurrency,
                                deadline=deadline,
                                progress=progress,
                            )
                            for door in ("api", "slack")
                        )
                    )
                rss_after_warmup = server.rss_bytes()
                rss_samples: list[tuple[float, int]] = []
                stop_sampling = asyncio.Event()
                sampler = asyncio.create_task(sample_rss(server, rss_samples, stop_sampling))
                snapshots = [await phase_snapshot(server, fakes)]
                phases: list[DoorStats] = []
                for _, name, turns, concurrency in plan:
                    phases.append(
                        await run_door(
                            name, driver, turns=turns, concurrency=concurrency, deadline=deadline, progress=progress
                        )
                    )
                    snapshots.append(await phase_snapshot(server, fakes))
                stop_sampling.set()
                await sampler
            rss_end = server.rss_bytes()
            fake_stats = await asyncio.to_thread(fakes.stats)
        exit_code = server.stop()
    finally:
        if server is not None and server.process.poll() is None:
            server.stop(30)
        final_fakes = fakes.stop()
        if not args.keep:
            wait_for_postgres_exit(data_dir)
            shutil.rmtree(data_dir, ignore_errors=True)
    peak = max([rss_end, *(rss for _, rss in rss_samples)])
    result: dict[str, Any] = {
        **{
            key: door_report(stats, cpu_before, cpu_after, concurrency)
            | {
                "postgres_per_turn": per_turn(pg_before, pg_after, stats.turns),
                "model_requests_per_turn": requests_per_turn(model_before, model_after, stats.turns),
            }
            for (key, _, _, concurrency), stats, (cpu_before, pg_before, model_before), (
                cpu_after,
                pg_after,
                model_after,
            ) in zip(
                plan, phases, snapshots[:-1], snapshots[1:], strict=True
            )
        },
        "rss_growth_pct": growth_pct(rss_after_warmup, rss_end),
        "rss_mb": {
            "after_warmup": round(rss_after_warmup / 2**20, 1),
            "end": round(rss_end / 2**20, 1),
            "peak": round(peak / 2**20, 1),
            "series": [round(r / 2**20, 1) for r in spaced([r for _, r in rss_samples] + [rss_end], RSS_POINTS)],
        },
        "turns_requested": args.turns,
        "time_limit_s": args.time_limit,
        "time_limit_reached": time.monotonic() >= deadline,
        "warmup_turns_per_door": args.warmup,
        "conversation_turns": args.conversation_turns,
        "model_delay_s": args.model_delay,
        "workers": args.workers,
        "max_concurrent_turns": args.max_turns,
        "model_requests": final_fakes.get("model_requests", fake_stats.get("model_requests")),
        "slack_api_calls": final_fakes.get("slack_calls", fake_stats.get("slack_calls")),
        "server_exit_code": exit_code,
        "total_wall_s": round(time.monotonic() - started, 1),
        "machine": info | {"load_avg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "targets": TARGETS,
    }
    result["slack"]["late_replies"] = driver.late_replies
    result["met"] = targets_met(result)
    return result


def targets_met(result: dict[str, Any]) -> dict[str, bool]:
    """turns/s: the API's best phase (the overload phase shows what the workers carry at most); p95: below
    capacity; shedding: the overload phase refused turns rather than queueing them past the p95 target."""
    below, overload, slack = result["api_below_capacity"], result["api_overload"], result["slack"]
    api_cpu = [door["cpu_ms_per_turn"]["server"] for door in (below, overload)]
    transactions = [door["postgres_per_turn"]["transactions"] for door in (below, overload, slack)]
    return {
        "api_turns_per_s": max(below["turns_per_s"], overload["turns_per_s"]) >= TARGETS["turns_per_s_min"],
        "slack_turns_per_s": slack["turns_per_s"] >= TARGETS["turns_per_s_min"],
        "slack_ack_p99": slack["ack_p99_ms"] is not None and slack["ack_p99_ms"] < TARGETS["slack_ack_p99_ms_max"],
        "slack_ack_server_p99": slack["ack_server_p99_ms"] is not None
        and slack["ack_server_p99_ms"] < TARGETS["slack_ack_p99_ms_max"],
        "rss_growth": result["rss_growth_pct"] < TARGETS["rss_growth_pct_max"],
        "api_p95_below_capacity": below["p95_ms"] is not None and below["p95_ms"] < TARGETS["api_p95_ms_max"],
        "api_overload_shed": overload["shed"] > 0
        and overload["shed_p99_ms"] is not None
        and overload["shed_p99_ms"] < TARGETS["api_p95_ms_max"],
        "server_cpu_ms_per_turn": all(
            cpu is not None and cpu <= TARGETS["server_cpu_ms_per_turn_max"] for cpu in api_cpu
        ),
        "postgres_transactions_per_turn": all(
            t is not None and t <= TARGETS["postgres_transactions_per_turn_max"] for t in transactions
        ),
    }


if __name__ == "__main__":
    main()
