"""The schema can be sharded by workspace (docs/deployment.md, "The scale-out path"): every table is
placed in the documentation's table, and every key of a distributed table includes the distribution
columns, as a distributed Postgres (Citus) requires."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg
import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "deployment.md"
DISTRIBUTION = {"platform", "workspace_id"}
PLACEMENTS = {"distributed", "reference", "coordinator"}
ROW = re.compile(r"^\| `(?P<table>\w+)` \| (?P<placement>\w+) \|", re.M)


def placements() -> dict[str, str]:
    """The documentation's table: table name -> placement."""
    found = {m["table"]: m["placement"] for m in ROW.finditer(DOC.read_text())}
    assert found and set(found.values()) <= PLACEMENTS, found
    return found


async def schema_tables(pool: asyncpg.Pool) -> set[str]:
    rows = await pool.fetch(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname NOT LIKE '%yoyo%'"""
    )
    return {r["relname"] for r in rows}


async def unique_keys(pool: asyncpg.Pool, table: str) -> dict[str, set[str]]:
    """Every unique index (primary keys and unique constraints included) -> its columns."""
    rows = await pool.fetch(
        """SELECT i.relname AS name, array(SELECT a.attname FROM unnest(x.indkey) k
                                           JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k) AS cols
           FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
           WHERE x.indrelid = $1::regclass AND x.indisunique""",
        table,
    )
    return {r["name"]: set(r["cols"]) for r in rows}


async def foreign_keys(pool: asyncpg.Pool, table: str) -> list[tuple[str, str, set[str], set[str]]]:
    """(constraint, referenced table, columns here, columns there) of each foreign key of `table`."""
    rows = await pool.fetch(
        """SELECT c.conname, c.confrelid::regclass::text AS target,
                  array(SELECT a.attname FROM unnest(c.conkey) k
                        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k) AS here,
                  array(SELECT a.attname FROM unnest(c.confkey) k
                        JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k) AS there
           FROM pg_constraint c WHERE c.conrelid = $1::regclass AND c.contype = 'f'""",
        table,
    )
    return [(r["conname"], r["target"], set(r["here"]), set(r["there"])) for r in rows]


async def test_every_table_has_a_documented_placement(pool: asyncpg.Pool) -> None:
    tables, documented = await schema_tables(pool), placements()
    assert sorted(tables - documented.keys()) == [], "place new tables in docs/deployment.md"
    assert sorted(documented.keys() - tables) == [], "docs/deployment.md names tables that do not exist"


@pytest.mark.parametrize("table", sorted(t for t, p in placements().items() if p == "distributed"))
async def test_every_key_of_a_distributed_table_includes_the_distribution_columns(
    pool: asyncpg.Pool, table: str
) -> None:
    keys = await unique_keys(pool, table)
    assert keys, f"{table} has no primary key"
    assert {name: cols for name, cols in keys.items() if not cols >= DISTRIBUTION} == {}


@pytest.mark.parametrize("table", sorted(placements()))
async def test_foreign_keys_stay_within_a_workspace_or_point_at_reference_tables(
    pool: asyncpg.Pool, table: str
) -> None:
    documented = placements()
    for name, target, here, there in await foreign_keys(pool, table):
        if documented[target] == "distributed":
            assert documented[table] == "distributed", f"{name}: only a distributed table may point at {target}"
            assert here >= DISTRIBUTION and there >= DISTRIBUTION, f"{name} must join on the workspace"
