"""The interactive terminal chat as a person sees it: a real `parley chat` in a pseudo-terminal (tmux),
answering from the fake model server, its screen read back after each key."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from adapters.console.chat import command
from tests.fakes.openai_server import FakeOpenAI
from tests.test_cli import CONFIG_PREFIXES

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux for a pseudo-terminal")
PROMPT = "you>"


class Terminal:
    """One tmux session running a command at 120x40: keys in, the visible screen out."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.name = f"parley-{uuid.uuid4().hex[:8]}"
        self.env = env
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        command = f"cd {shlex.quote(str(cwd))} && env -i {exports} {shlex.join(argv)}; echo EXITED $?; sleep 30"
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, "-x", "120", "-y", "40", command], check=True)

    def screen(self) -> str:
        return subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True, check=False
        ).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def type(self, text: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, "-l", text], check=True)
        self.keys("Enter")

    def wait_for(self, ready: Callable[[str], bool], timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if ready(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"screen never got there:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True, check=False)


@pytest.fixture
def terminal(openai_server: FakeOpenAI) -> Iterator[Terminal]:
    data = Path(tempfile.mkdtemp(prefix="ct", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(CONFIG_PREFIXES) and k not in {"CI", "TMUX"}}
    env.pop("PYTEST_VERSION", None)
    env.pop("PYTEST_CURRENT_TEST", None)
    env.update({
        "PARLEY_DATA_DIR": str(data), "PARLEY_MODEL": "openai:some-model", "OPENAI_BASE_URL": openai_server.base_url,
        "PARLEY_FACT_EXTRACTION": "off",
        "TERM": "xterm-256color", "PYTHONPATH": os.pathsep.join(sys.path),
    })
    term = Terminal([sys.executable, "-m", "bot", "chat"], env, data)
    yield term
    term.close()
    shutil.rmtree(data, ignore_errors=True)


def test_a_chat_shows_only_the_conversation_help_stays_local_and_ctrl_c_quits(
    terminal: Terminal, openai_server: FakeOpenAI
) -> None:
    terminal.wait_for(lambda s: PROMPT in s)
    terminal.type("/help")
    terminal.wait_for(lambda s: "/forget" in s and s.count(PROMPT) >= 2)
    assert openai_server.requests == []
    terminal.type("hello there")
    screen = terminal.wait_for(lambda s: "You said: hello there" in s and s.count(PROMPT) >= 3)
    for noise in ("Logfire", "logfire", "INFO", "WARNING", "Traceback", "Loading weights"):
        assert noise not in screen
    for name in ("/new", "/profile", "/memory", "/exit"):
        assert name in screen
    terminal.keys("C-c")
    screen = terminal.wait_for(lambda s: "EXITED" in s, timeout=30)
    assert "EXITED 0" in screen and "Traceback" not in screen


def test_ctrl_c_during_an_answer_stops_it_and_the_chat_goes_on(
    terminal: Terminal, openai_server: FakeOpenAI
) -> None:
    terminal.wait_for(lambda s: PROMPT in s)
    openai_server.delay = 10
    terminal.type("take your time")
    terminal.wait_for(lambda s: openai_server.requests != [], timeout=60)
    terminal.keys("C-c")
    terminal.wait_for(lambda s: "(stopped)" in s and s.count(PROMPT) >= 2, timeout=30)
    openai_server.delay = 0
    terminal.type("still there?")
    screen = terminal.wait_for(lambda s: "You said: still there?" in s)
    assert "EXITED" not in screen


def test_memory_lists_the_facts_a_person_told_in_the_chat(terminal: Terminal) -> None:
    terminal.wait_for(lambda s: PROMPT in s)
    terminal.type("/memory")
    terminal.wait_for(lambda s: "knows no facts about you yet" in s and s.count(PROMPT) >= 2)
    terminal.type("Call me Sam, please.")
    terminal.wait_for(lambda s: "You said: Call me Sam" in s and s.count(PROMPT) >= 3)
    terminal.type("/memory")
    screen = terminal.wait_for(lambda s: s.count(PROMPT) >= 4)
    assert "• is called Sam" in screen


@pytest.mark.parametrize(
    ("text", "expected"),
    [("/help", "/help"), ("/quit", "/exit"), ("/EXIT", "/exit"), ("/frobnicate", "unknown"),
     ("hello", None), (" /help", None), ("/usr/bin is a path", None)],
)
def test_slash_words_are_commands_and_everything_else_is_a_message(text: str, expected: str | None) -> None:
    assert command(text) == expected
