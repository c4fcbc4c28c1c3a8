"""A DATABASE_URL the server answers but refuses: a setting to fix, said as one, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config_check import shown_url
from tests.test_cli import parley


@pytest.mark.parametrize(("change", "said"), [
    (("/postgres?", "/no_such_db?"), 'database "no_such_db" does not exist'),
    (("postgres:@", "nobody_here:@"), 'role "nobody_here" does not exist'),
])
def test_a_database_url_the_server_refuses_is_named_with_its_fix_and_exit_2(
    pg_uri: str, tmp_path: Path, change: tuple[str, str], said: str
) -> None:
    refused = pg_uri.replace(*change)

    result = parley("memory", "export", data=tmp_path, env={"DATABASE_URL": refused})

    assert result.returncode == 2, result.stderr
    words = " ".join(result.stderr.split())
    assert f"DATABASE_URL={shown_url(refused)}: the server refused it ({said})" in words
    assert "--debug" not in words
