"""How fast Parley starts: a cold one-shot `parley chat -m` and `parley serve` until `/readyz` answers 200.

Each is measured beside a bare pydantic-ai agent on the same fake model server, in the same run, one
after the other in every round so that both see the same machine load:

- chat: `parley chat -m ... --json` on an existing data folder (migrated, the encoder's ONNX graph
  exported, one chat answered before measuring), against a script that builds
  `Agent("openai:...")` and answers the same message once (`bare_agent`).
- serve: `parley serve --playground-key` until `/readyz` is 200, then a few turns through `/v1/chat`,
  against a FastAPI app under uvicorn that answers with a pydantic-ai agent (`bare_server`), also
  until its `/readyz` is 200 and through the same turns.

Per command: wall seconds, CPU seconds (user + system of the process and the children it waited
for; the embedded Postgres runs as a daemon of its own and is not counted), and peak resident memory
(MiB). Parley's phases come from `PARLEY_STARTUP_PHASES` (core/telemetry.py): each phase's own wall
and CPU milliseconds, plus `before first phase` (interpreter, CLI, settings) and, for chat, `exit`
(draining and closing) or, for serve, `until ready` (the app and uvicorn). The fake model answers at
once, so the ratios show start-up alone. Every figure is the median of `--runs` rounds, and every
ratio the median of the rounds' own ratios.

Progress goes to stderr; the JSON to stdout:

    {"chat": {...}, "bare_agent": {...}, "serve": {...}, "bare_server": {...},
     "ratios": {"chat_wall", "serve_ready_wall", ...}, "targets": {...}, "met": {...}, "machine": {...}}

Run: python benchmarks/startup.py --json [--runs 5]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import OFFLINE_ENV, REPO, machine
from core.telemetry import PHASES_ENV

HOST = "127.0.0.1"
MODEL = "openai:gpt-4.1-mini"
BARE_MODEL = "openai-chat:gpt-4.1-mini"
"""The same model as pydantic-ai names it for a custom base URL (chat completions, as Parley uses)."""
MESSAGE = "What is on the agenda for the Thursday standup?"
REPLY = f"You said: {MESSAGE}"
TARGETS = {"chat_wall_ratio_max": 2.0, "serve_ready_ratio_max": 3.0, "chat_peak_mib_max": 400,
           "serve_worker_peak_mib_max": 600}
TURNS_AFTER_READY = 5
READY_TIMEOUT_S = 180.0
err = Console(stderr=True)

BARE_AGENT = """
import json, sys, time
from pydantic_ai import Agent
imported = time.time()
agent = Agent(sys.argv[1])
reply = agent.run_sync(sys.argv[2]).output
print(json.dumps({"imported": imported, "answered": time.time(), "reply": reply}))
"""
"""The baseline one-shot: pydantic-ai's agent on the same model, nothing else."""

BARE_SERVER = """
import sys
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from pydantic_ai import Agent

class Turn(BaseModel):
    message: str

agent = Agent(sys.argv[1])
app = FastAPI()

@app.get("/readyz")
async def ready() -> dict[str, str]:
    return {"status": "ready"}

@app.post("/v1/chat")
async def chat(turn: Turn) -> dict[str, str]:
    return {"reply": (await agent.run(turn.message)).output}

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""
"""The baseline server: a pydantic-ai agent behind FastAPI and uvicorn, as Parley serves its API."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="measured rounds (each runs all four commands)")
    parser.add_argument("--keep", action="store_true", help="keep the data folder (logs, phases, database)")
    parser.add_argument("--json", action="store_true", help="print the JSON on one line")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    try:
        result = run(args.runs, keep=args.keep)
    except BenchmarkError as exc:
        err.print(f"[red]start-up benchmark failed:[/red] {exc}")
        raise SystemExit(2) from exc
    except KeyboardInterrupt as exc:
        err.print("[yellow]start-up benchmark stopped; its processes were shut down[/yellow]")
        raise SystemExit(130) from exc
    print(json.dumps(result, indent=None if args.json else 2))


class BenchmarkError(Exception):
    """Something the benchmark needs did not work; the message says what."""


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One measured command."""

    wall_s: float
    cpu_s: float
    peak_mib: float
    phases_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    """Phase -> {"wall_ms", "cpu_ms"}, a repeated phase summed."""


@dataclass(frozen=True, kw_only=True)
class Bench:
    """The run's folder, fake model and the environment every command gets."""

    folder: Path
    env: dict[str, str]
    python: str = sys.executable

    def parley(self, *args: str) -> list[str]:
        return [self.python, "-m", "bot", *args]


def run(runs: int, *, keep: bool) -> dict[str, Any]:
    info = machine()
    folder = Path(tempfile.mkdtemp(prefix="pst", dir="/tmp"))
    try:
        with fake_model(folder) as base_url:
            env = {
                **os.environ,
                **OFFLINE_ENV,
                "PARLEY_MODEL": MODEL,
                "OPENAI_BASE_URL": base_url,
                "OPENAI_API_KEY": "sk-startup-benchmark",
                "PARLEY_DATA_DIR": str(folder / "data"),
                "PYTHONPATH": str(REPO),
            }
            env.pop("DATABASE_URL", None)
            bench = Bench(folder=folder, env=env)
            samples: dict[str, list[Sample]] = {"chat": [], "bare_agent": [], "serve": [], "bare_server": []}
            with progress() as bar:
                task = bar.add_task("preparing the data folder", total=runs * len(samples) + 1)
                prepare(bench)
                bar.advance(task)
                for round_no in range(runs):
                    for name, measure in MEASURES.items():
                        bar.update(task, description=f"round {round_no + 1}/{runs}: {name}")
                        samples[name].append(measure(bench, round_no))
                        bar.advance(task)
    finally:
        if keep:
            err.print(f"data folder kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return report(samples, runs=runs, info=info)


def report(samples: dict[str, list[Sample]], *, runs: int, info: dict[str, Any]) -> dict[str, Any]:
    summary = {name: median_of(found) for name, found in samples.items()}

    def ratio(a: str, b: str, key: str) -> float:
        """The median over rounds of a round's ratio: each round runs both back to back, so a busy
        moment of the machine weighs on both sides of it."""
        pairs = zip(samples[a], samples[b], strict=True)
        return round(statistics.median(getattr(x, key) / getattr(y, key) for x, y in pairs), 2)

    ratios = {
        "chat_wall": ratio("chat", "bare_agent", "wall_s"),
        "chat_cpu": ratio("chat", "bare_agent", "cpu_s"),
        "chat_peak_mib": ratio("chat", "bare_agent", "peak_mib"),
        "serve_ready_wall": ratio("serve", "bare_server", "wall_s"),
        "serve_ready_cpu": ratio("serve", "bare_server", "cpu_s"),
        "serve_peak_mib": ratio("serve", "bare_server", "peak_mib"),
        "serve_ready_wall_vs_bare_agent": ratio("serve", "bare_agent", "wall_s"),
    }
    met = {
        "chat_wall_ratio": ratios["chat_wall"] <= TARGETS["chat_wall_ratio_max"],
        "serve_ready_ratio": ratios["serve_ready_wall"] <= TARGETS["serve_ready_ratio_max"],
        "chat_peak_mib": summary["chat"]["peak_mib"] <= TARGETS["chat_peak_mib_max"],
        "serve_worker_peak_mib": summary["serve"]["peak_mib"] <= TARGETS["serve_worker_peak_mib_max"],
    }
    return {
        **summary,
        "ratios": ratios,
        "targets": TARGETS,
        "met": met,
        "runs": runs,
        "model": MODEL,
        "machine": info | {"load_avg_at_end": [round(x, 2) for x in os.getloadavg()]},
    }


def median_of(samples: Sequence[Sample]) -> dict[str, Any]:
    """Medians of every figure, phases included (a phase missing from a run counts as 0)."""
    names = dict.fromkeys(name for s in samples for name in s.phases_ms)
    return {
        "wall_s": round(statistics.median(s.wall_s for s in samples), 3),
        "cpu_s": round(statistics.median(s.cpu_s for s in samples), 3),
        "peak_mib": round(statistics.median(s.peak_mib for s in samples), 1),
        "wall_s_all": [round(s.wall_s, 3) for s in samples],
        "phases_ms": {
            name: {
                key: round(statistics.median(s.phases_ms.get(name, {}).get(key, 0.0) for s in samples), 1)
                for key in ("wall_ms", "cpu_ms")
            }
            for name in names
        },
    }


# -- the four commands -------------------------------------------------------------------------
def prepare(bench: Bench) -> None:
    """An existing data folder: the database created and migrated, the ONNX graph exported, one chat
    answered (the files the commands read are in the page cache for every command alike)."""
    for args in (["db", "migrate"], ["chat", "-m", "hello", "--json"]):
        waited(bench.parley(*args), env=bench.env, log=bench.folder / f"prepare-{args[0]}")
    bare_agent(bench, -1)


def chat(bench: Bench, round_no: int) -> Sample:
    phases = bench.folder / f"chat-{round_no}.jsonl"
    started = time.time()
    out, sample = waited(
        bench.parley("chat", "-m", MESSAGE, "--json"), env={**bench.env, PHASES_ENV: str(phases)},
        log=bench.folder / f"chat-{round_no}",
    )
    if json.loads(out).get("reply") != REPLY:
        raise BenchmarkError(f"parley chat answered {out[:300]!r}")
    records = read_phases(phases)
    around = {"before first phase": records[0]["start"] - started, "exit": started + sample.wall_s - phase_end(records)}
    return replace(sample, phases_ms=phase_totals(records, around))


def bare_agent(bench: Bench, round_no: int) -> Sample:
    started = time.time()
    out, sample = waited([bench.python, "-c", BARE_AGENT, BARE_MODEL, MESSAGE], env=bench.env,
                         log=bench.folder / f"bare-agent-{round_no}")
    body = json.loads(out)
    if body["reply"] != REPLY:
        raise BenchmarkError(f"the bare agent answered {body['reply']!r}")
    around = {"imports": body["imported"] - started, "first model call": body["answered"] - body["imported"]}
    return replace(sample, phases_ms=phase_totals([], around))


def serve(bench: Bench, round_no: int) -> Sample:
    port = free_port()
    phases = bench.folder / f"serve-{round_no}.jsonl"
    log = bench.folder / f"serve-{round_no}.log"
    started = time.time()
    command = bench.parley("serve", "--port", str(port), "--playground-key")
    with served(command, {**bench.env, PHASES_ENV: str(phases)}, log) as process:
        ready = wait_ready(process, port)
        cpu = cpu_s(process)
        turns(port, playground_key(log))
        peak = peak_mib(process.pid)
    records = read_phases(phases)
    around = {"before first phase": records[0]["start"] - started, "until ready": ready - phase_end(records)}
    return Sample(wall_s=ready - started, cpu_s=cpu, peak_mib=peak, phases_ms=phase_totals(records, around))


def bare_server(bench: Bench, round_no: int) -> Sample:
    port = free_port()
    started = time.time()
    command = [bench.python, "-c", BARE_SERVER, BARE_MODEL, str(port)]
    with served(command, bench.env, bench.folder / f"bare-server-{round_no}.log") as process:
        ready = wait_ready(process, port)
        cpu = cpu_s(process)
        turns(port, None)
        peak = peak_mib(process.pid)
    return Sample(wall_s=ready - started, cpu_s=cpu, peak_mib=peak)


MEASURES: dict[str, Callable[[Bench, int], Sample]] = {
    "bare_agent": bare_agent,
    "chat": chat,
    "bare_server": bare_server,
    "serve": serve,
}


# -- measuring processes ------------------------------------------------------------------------
def waited(command: list[str], *, env: dict[str, str], log: Path) -> tuple[str, Sample]:
    """Run to the end; its stdout, and wall, CPU and peak memory from the kernel's own account (wait4)."""
    out_path, err_path = log.with_suffix(".out"), log.with_suffix(".err")
    with out_path.open("wb") as out, err_path.open("wb") as errors:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=out, stderr=errors, cwd=REPO)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise BenchmarkError(f"{' '.join(command[:4])} exited {process.returncode}:\n{err_path.read_text()[-2000:]}")
    sample = Sample(wall_s=wall, cpu_s=usage.ru_utime + usage.ru_stime, peak_mib=usage.ru_maxrss / 1024)
    return out_path.read_text(), sample


def cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def peak_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise BenchmarkError(f"no VmHWM for process {pid}")


@contextlib.contextmanager
def served(command: list[str], env: dict[str, str], log: Path) -> Iterator[psutil.Process]:
    """A server process writing to `log`, stopped with SIGTERM (then SIGKILL) on the way out."""
    with log.open("wb") as out:
        process = psutil.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            yield process
        finally:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except psutil.TimeoutExpired:
                process.kill()
                process.wait(10)


def wait_ready(process: psutil.Process, port: int) -> float:
    """The time (epoch seconds) `/readyz` first answered 200; polled every 10 ms."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    url = f"http://{HOST}:{port}/readyz"
    while time.monotonic() < deadline:
        if not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
            raise BenchmarkError(f"the server exited before it was ready (exit {process.wait(1)})")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as answer:
            if answer.status == 200:
                return time.time()
        time.sleep(0.01)
    raise BenchmarkError(f"{url} was not 200 within {READY_TIMEOUT_S:.0f} s")


def turns(port: int, key: str | None) -> None:
    """A few answered turns, so that the peak memory is a serving worker's, not an idle one's."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    for n in range(TURNS_AFTER_READY):
        body = json.dumps({"message": f"{MESSAGE} ({n})"}).encode()
        request = urllib.request.Request(f"http://{HOST}:{port}/v1/chat", data=body, headers=headers)
        with urllib.request.urlopen(request, timeout=60) as answer:
            reply = json.loads(answer.read())["reply"]
        if not reply.startswith("You said: "):
            raise BenchmarkError(f"/v1/chat answered {reply!r}")


def playground_key(log: Path) -> str:
    for line in log.read_text(errors="replace").splitlines():
        if "#key=" in line:
            return line.rsplit("#key=", 1)[1].strip()
    raise BenchmarkError(f"parley serve printed no playground key (see {log})")


def read_phases(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise BenchmarkError(f"no start-up phases were written to {path}")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted(records, key=lambda r: r["start"])


def phase_end(records: list[dict[str, Any]]) -> float:
    """When the last phase to finish finished (epoch seconds); phases nest, so not always the last one."""
    return max(float(r["start"]) + float(r["wall_ms"]) / 1000 for r in records)


def phase_totals(records: list[dict[str, Any]], around_s: dict[str, float]) -> dict[str, dict[str, float]]:
    """Phase -> its own wall and CPU milliseconds (a phase met twice summed), with the spans measured
    from outside (`around_s`, seconds; their CPU is unknown and shown as 0)."""
    phases = {name: {"wall_ms": round(seconds * 1000, 1), "cpu_ms": 0.0} for name, seconds in around_s.items()}
    for record in records:
        into = phases.setdefault(record["phase"], {"wall_ms": 0.0, "cpu_ms": 0.0})
        into["wall_ms"] = round(into["wall_ms"] + record["wall_ms"], 1)
        into["cpu_ms"] = round(into["cpu_ms"] + record["cpu_ms"], 1)
    return phases


# -- the fake model -------------------------------------------------------------------------------
@contextlib.contextmanager
def fake_model(folder: Path) -> Iterator[str]:
    """tests/fakes/openai_server.py in a process of its own, answering every message at once."""
    port = free_port()
    with served([sys.executable, "-m", "tests.fakes.openai_server", "--port", str(port)],
                {**os.environ, "PYTHONPATH": str(REPO)}, folder / "fake-model.log") as process:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
                yield f"http://{HOST}:{port}/v1"
                return
            if not process.is_running():
                break
            time.sleep(0.05)
        raise BenchmarkError(f"the fake model server did not start (see {folder / 'fake-model.log'})")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    )


if __name__ == "__main__":
    main()
