"""The `parley` command as a newcomer uses it: a real subprocess, a real embedded Postgres."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.openai_server import Error, FakeOpenAI, Text, ToolCalls

PARLEY = [sys.executable, "-m", "bot"]


@pytest.fixture(scope="module")
def cli_data() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pc", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


CONFIG_PREFIXES = ("PARLEY_", "OPENAI_", "ANTHROPIC_", "SLACK_", "DISCORD_", "ELEVENLABS_", "DATABASE_URL")


def parley(
    *args: str, data: Path, env: dict[str, str] | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(CONFIG_PREFIXES)}
    clean.update({"PARLEY_DATA_DIR": str(data), "COLUMNS": "200", "PARLEY_FACT_EXTRACTION": "off", **(env or {})})
    return subprocess.run([*PARLEY, *args], capture_output=True, text=True, env=clean, timeout=timeout,
                          cwd=data)


def _text(content: object) -> str:
    if isinstance(content, list):
        return " ".join(part["text"] for part in content if part.get("type") == "text")
    return str(content)


def model_env(server: FakeOpenAI) -> dict[str, str]:
    return {"PARLEY_MODEL": "openai:some-model", "OPENAI_BASE_URL": server.base_url}


def test_chat_prints_the_servers_answer_and_a_thread_continues(cli_data: Path, openai_server: FakeOpenAI) -> None:
    first = parley("chat", "-m", "hi", "--json", "--thread", "t-cli", data=cli_data, env=model_env(openai_server))
    assert first.returncode == 0, first.stderr
    body = json.loads(first.stdout)
    assert body["reply"] == "You said: hi"
    assert body["blocked"] is False and body["thread"] == "t-cli"
    assert set(body) >= {"reply", "blocked", "thread", "steps", "usage", "latency_ms"}
    assert body["usage"]["input_tokens"] == 12

    second = parley("chat", "-m", "and again", "--json", "--thread", "t-cli", data=cli_data,
                    env=model_env(openai_server))
    assert second.returncode == 0, second.stderr
    sent = openai_server.requests[-1]["messages"]
    assert [_text(m["content"]) for m in sent if m["role"] in {"user", "assistant"}] == [
        "hi", "You said: hi", "and again"
    ]


def test_a_one_shot_chat_prints_the_answer_without_log_lines(cli_data: Path, openai_server: FakeOpenAI) -> None:
    result = parley("chat", "-m", "hi", data=cli_data, env=model_env(openai_server))
    assert result.returncode == 0, result.stderr
    assert "You said: hi" in result.stdout
    assert "turn done" not in result.stderr and " INFO " not in result.stderr


def test_a_one_shot_chat_learns_what_the_person_said_before_it_exits(cli_data: Path, openai_server: FakeOpenAI) -> None:
    said = parley("chat", "-m", "Hi, I'm Sam. What's 17% of 2,340?", "--user", "sam-rules", data=cli_data,
                  env=model_env(openai_server))
    assert said.returncode == 0, said.stderr
    known = parley("memory", "list", "--user", "sam-rules", data=cli_data)
    assert known.returncode == 0, known.stderr
    assert "is called Sam" in known.stdout
    assert "sam-rules" in known.stdout  # whom the fact is for, by id


def test_memory_list_without_facts_says_where_facts_come_from_and_where_the_conversation_is(cli_data: Path) -> None:
    known = parley("memory", "list", "--user", "nobody-yet", data=cli_data)
    assert known.returncode == 0, known.stderr
    words = " ".join(known.stdout.split())
    assert "No facts about nobody-yet" in words and "parley memory export" in words


def test_a_one_shot_chat_waits_for_the_models_fact_extraction(cli_data: Path, openai_server: FakeOpenAI) -> None:
    prefers = {"op": "add", "fact": "prefers answers in euros"}
    openai_server.queue(Text("Noted."), ToolCalls([("final_result", {"operations": [prefers]})]))
    said = parley("chat", "-m", "I prefer answers in euros", "--user", "sam-model", data=cli_data,
                  env={**model_env(openai_server), "PARLEY_FACT_EXTRACTION": "on"})
    assert said.returncode == 0, said.stderr
    known = parley("memory", "list", "--user", "sam-model", data=cli_data)
    assert "prefers answers in euros" in known.stdout


def test_chat_survives_429_twice_then_answers(cli_data: Path, openai_server: FakeOpenAI) -> None:
    openai_server.queue(Error(429, retry_after=0), Error(429, retry_after=0), Text("third time lucky"))
    result = parley("chat", "-m", "hi", "--json", data=cli_data, env=model_env(openai_server))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["reply"] == "third time lucky"


def test_a_one_shot_chat_whose_model_cannot_be_reached_exits_1_naming_the_fix(cli_data: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    env = {"PARLEY_MODEL": "openai:some-model", "OPENAI_BASE_URL": f"http://127.0.0.1:{closed}/v1",
           "PARLEY_MODEL_RETRIES": "0"}
    result = parley("chat", "-m", "hi", "--json", data=cli_data, env=env)
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["error"] == "model_unreachable"
    assert "OPENAI_BASE_URL" in result.stderr and "Traceback" not in result.stderr


def test_without_a_model_chat_says_what_to_set_before_starting_a_database(tmp_path: Path) -> None:
    result = parley("chat", "-m", "hi", data=tmp_path, timeout=60, env={"PARLEY_MODEL": "none"})
    assert result.returncode != 0
    assert list(tmp_path.iterdir()) == [], "no embedded database was created for a chat that cannot answer"
    for name in ("PARLEY_MODEL", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        assert name in result.stderr


def test_config_show_masks_secrets(cli_data: Path) -> None:
    result = parley("config", "show", data=cli_data,
                    env={"OPENAI_API_KEY": "sk-supersecretvalue123456", "SLACK_BOT_TOKEN": "xoxb-123-456-abc",
                         "SLACK_SIGNING_SECRET": "0123456789abcdef"})
    assert result.returncode == 0, result.stderr
    assert "OPENAI_API_KEY" in result.stdout
    assert "sk-supersecretvalue123456" not in result.stdout + result.stderr
    assert "xoxb-123-456-abc" not in result.stdout + result.stderr


def test_config_show_says_which_model_and_database_answer_when_none_is_set(cli_data: Path) -> None:
    from bot.settings import local_extra_installed

    result = parley("config", "show", data=cli_data)
    rows = {line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("│")}
    assert ("local" if local_extra_installed() else "no model") in rows["PARLEY_MODEL"]
    assert "embedded Postgres" in rows["DATABASE_URL"]


def test_usage_and_feedback_list_read_the_store(cli_data: Path, openai_server: FakeOpenAI) -> None:
    assert parley("chat", "-m", "count me", data=cli_data, env=model_env(openai_server)).returncode == 0
    usage = parley("usage", "--since", "1d", data=cli_data)
    assert usage.returncode == 0, usage.stderr
    assert "some-model" in usage.stdout
    feedback = parley("feedback", "list", "--json", data=cli_data)
    assert feedback.returncode == 0 and isinstance(json.loads(feedback.stdout), list)


def test_db_migrate_is_idempotent(cli_data: Path) -> None:
    result = parley("db", "migrate", data=cli_data)
    assert result.returncode == 0, result.stderr
    assert "applied" in result.stdout


def test_chat_reads_an_attached_image_and_writes_a_voice_reply(
    cli_data: Path, openai_server: FakeOpenAI, tmp_path: Path
) -> None:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 36)
    text = "The launch code is PINEAPPLE"
    image = Image.new("RGB", (60 + int(font.getlength(text)), 100), "white")
    ImageDraw.Draw(image).text((30, 30), text, font=font, fill="black")
    note = tmp_path / "note.png"
    image.save(note)
    voice = tmp_path / "reply.ogg"
    result = parley("chat", "-m", "What does it say?", "--attach", str(note), "--voice-reply", str(voice),
                    "--json", data=cli_data, env=model_env(openai_server))
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["attachments"] == [{"name": "note.png", "kind": "image", "text": text}]
    assert "PINEAPPLE" in str(openai_server.requests[-1]["messages"])
    assert voice.read_bytes()[:4] == b"OggS"


def test_chat_names_a_corrupt_attachment_and_still_answers(
    cli_data: Path, openai_server: FakeOpenAI, tmp_path: Path
) -> None:
    broken = tmp_path / "report.pdf"
    broken.write_bytes(b"%PDF-1.7\n" + b"\x00garbage" * 50)
    result = parley("chat", "-m", "summarise", "--attach", str(broken), "--json", data=cli_data,
                    env=model_env(openai_server))
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["attachments"][0]["name"] == "report.pdf" and body["attachments"][0]["error"]
    assert body["reply"].startswith("You said: summarise")


def test_config_show_lists_every_setting_and_then_what_needs_fixing(cli_data: Path) -> None:
    from bot.settings import Settings

    result = parley("config", "show", data=cli_data, env={"PARLEY_MODEL": "bogus:x"})
    assert result.returncode == 2
    for name in Settings.model_fields:
        assert name.upper() in result.stdout
    assert "PARLEY_MODEL=bogus:x" in result.stderr and "Traceback" not in result.stderr


def test_the_test_model_gives_one_plain_answer_without_tool_calls(cli_data: Path) -> None:
    from core.llm import TEST_MODEL_ANSWER

    result = parley("chat", "-m", "what's the time? then forget me", "--json", data=cli_data,
                    env={"PARLEY_MODEL": "test"})
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["reply"] == TEST_MODEL_ANSWER and body["steps"] == []
    assert "cost_usd" in body["usage"]


def test_an_interactive_chat_given_one_shot_flags_says_they_need_m_before_starting_anything(tmp_path: Path) -> None:
    picture = tmp_path / "screenshot.png"
    picture.write_bytes(b"\x89PNG")
    result = parley("chat", "--attach", str(picture), "--json", data=tmp_path, timeout=30)
    assert result.returncode == 2
    assert " ".join(result.stderr.split()) == (
        'Only a one-shot chat (-m "...") takes --attach and --json: add -m with the message, or leave them out '
        "for the interactive chat."
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["screenshot.png"], "nothing was started"
