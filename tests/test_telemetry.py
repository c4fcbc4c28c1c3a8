"""Third-party telemetry and hub downloads are off in every `parley` process unless the operator says."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from core.telemetry import QUIET_ENV, quiet_libraries


def test_missing_variables_are_set_and_an_operators_choice_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in QUIET_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    quiet_libraries()
    assert os.environ["HF_HUB_OFFLINE"] == "0"
    assert os.environ["NEMO_GUARDRAILS_NO_USAGE_STATS"] == "1"
    assert os.environ["DEEPEVAL_TELEMETRY_OPT_OUT"] == "YES"


def test_the_parley_command_turns_library_telemetry_off() -> None:
    env = {k: v for k, v in os.environ.items() if k not in QUIET_ENV}
    code = "import json, os, bot.cli; print(json.dumps({k: os.environ.get(k) for k in os.environ}))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    seen = json.loads(done.stdout)
    assert {name: seen.get(name) for name in QUIET_ENV} == QUIET_ENV
