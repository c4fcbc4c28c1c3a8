"""The Dockerfile and fly.toml agree with each other, with pyproject and with the CLI they call."""

from __future__ import annotations

import itertools
import re
import shlex
import tomllib
from pathlib import Path

from typer.testing import CliRunner

from bot.cli import app as parley
from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
FLY = tomllib.loads((ROOT / "fly.toml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def resolves(command: str) -> bool:
    """Whether `parley ...` names a real command of the CLI: its --help answers."""
    words = shlex.split(command)
    assert words[0] == "parley", command
    path = list(itertools.takewhile(lambda w: not w.startswith("-"), words[1:]))
    return CliRunner().invoke(parley, [*path, "--help"]).exit_code == 0


def test_resolves_tells_real_commands_from_missing_ones() -> None:
    assert resolves("parley db migrate") and not resolves("parley no-such-command")


def test_fly_processes_and_release_command_are_parley_commands() -> None:
    processes = FLY["processes"]
    assert processes["web"].startswith("parley serve") and processes["discord"].startswith("parley discord")
    assert FLY["deploy"]["release_command"] == "parley db migrate"
    for command in [*processes.values(), FLY["deploy"]["release_command"]]:
        assert resolves(command), f"fly.toml runs {command!r}, which the parley CLI does not have"


def test_fly_health_checks_the_web_port_and_lets_turns_finish() -> None:
    service = FLY["http_service"]
    port = int(FLY["env"]["PORT"])
    assert service["internal_port"] == port
    assert service["processes"] == ["web"]
    assert [c["path"] for c in service["checks"]] == ["/healthz"]
    turn_timeout = Settings(_env_file=None).parley_model_timeout * 2 + 30  # type: ignore[call-arg]
    assert int(FLY["kill_timeout"].removesuffix("s")) > turn_timeout


def test_fly_scrapes_the_private_metrics_port_which_no_service_publishes() -> None:
    """Fly's scraper sends no token, so it reads the tokenless PARLEY_METRICS_PORT, which must stay unpublished."""
    metrics_port = int(FLY["env"]["PARLEY_METRICS_PORT"])
    assert FLY["metrics"]["port"] == metrics_port and FLY["metrics"]["path"] == "/metrics"
    assert FLY["metrics"]["processes"] == ["web"]
    published = [FLY["http_service"]["internal_port"], *(s["internal_port"] for s in FLY.get("services", []))]
    assert metrics_port not in published


def test_dockerfile_is_multi_stage_slim_non_root_and_runs_parley_serve() -> None:
    stages = re.findall(r"^FROM (\S+)", DOCKERFILE, re.M)
    assert len(stages) >= 2 and all("slim" in s for s in stages)
    users = re.findall(r"^USER (\S+)", DOCKERFILE, re.M)
    assert users and users[-1] not in {"root", "0"}
    assert re.search(r'^CMD \["parley", "serve"\]', DOCKERFILE, re.M)
    assert "ENTRYPOINT" not in DOCKERFILE, "fly.toml process commands must replace CMD, not follow an entrypoint"
    assert f"EXPOSE {FLY['env']['PORT']}" in DOCKERFILE and f"PORT={FLY['env']['PORT']}" in DOCKERFILE
    for package in ("tesseract-ocr", "espeak-ng", "ffmpeg"):
        assert package in DOCKERFILE
    torch_pin = re.search(r'"(torch==[^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert torch_pin and f"cpu {torch_pin.group(1)}" in DOCKERFILE


def test_the_image_carries_the_datasets_parley_eval_reads() -> None:
    env = re.search(r"PARLEY_DATASETS_DIR=(\S+)", DOCKERFILE)
    assert env is not None, "the runtime stage must tell `parley eval` where its goldens are"
    assert re.search(rf"^COPY datasets {re.escape(env.group(1))}$", DOCKERFILE, re.M)


def test_parley_eval_reads_its_datasets_folder_from_the_environment(tmp_path: Path) -> None:
    missing = str(tmp_path / "none")
    result = CliRunner().invoke(parley, ["eval", "--suite", "smoke"], env={"PARLEY_DATASETS_DIR": missing})
    assert result.exit_code == 2 and "none" in result.output
