"""A start that changes the database's schema says so: a fresh folder set up, an older one upgraded."""

from __future__ import annotations

import logging

import pytest

from bot.database import report_migrations
from core.store.migrations import MIGRATIONS_DIR

ALL = sorted(p.name.removesuffix(".sql") for p in MIGRATIONS_DIR.glob("*.sql") if not p.name.endswith(".rollback.sql"))


def test_an_upgrade_names_the_migrations_it_applied(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bot.database"):
        report_migrations(ALL[-2:])
    assert caplog.messages == [f"Database upgraded: 2 migration(s) applied ({ALL[-2]}, {ALL[-1]})"]


def test_a_fresh_database_is_reported_as_set_up(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bot.database"):
        report_migrations(ALL)
    assert caplog.messages == [f"Database set up: {len(ALL)} migrations applied"]


def test_a_start_with_nothing_to_apply_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="bot.database"):
        report_migrations([])
    assert caplog.messages == []
