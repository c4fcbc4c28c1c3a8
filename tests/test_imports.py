"""Dependencies point one way: core <- adapters, evals <- bot. Checked on the source, imports inside
functions and under TYPE_CHECKING included. Adapters translate: they hold no SQL and do not import asyncpg,
every statement lives in core's stores."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "core": {"adapters", "bot", "evals"},
    "adapters": {"bot"},
    "evals": {"bot"},
}


def imported_packages(source: str) -> set[tuple[int, str]]:
    """(line, top-level package) of every absolute import in `source`."""
    found: set[tuple[int, str]] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.lineno, node.module.split(".")[0]))
    return found


def wrong_way_imports(package: str) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line} imports {imported}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, imported in sorted(imported_packages(path.read_text(encoding="utf-8")))
        if imported in FORBIDDEN[package]
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_one_above_it(package: str) -> None:
    assert wrong_way_imports(package) == []


def test_the_checker_sees_imports_inside_functions() -> None:
    source = "def f():\n    from bot.app import running\n    import evals.judge\n"
    assert imported_packages(source) == {(2, "bot"), (3, "evals")}


SQL_START = re.compile(r"\s*(SELECT|INSERT\s+INTO|UPDATE|DELETE\s+FROM|WITH|CREATE|ALTER|DROP|TRUNCATE|COPY)\s")
"""How a statement begins (keywords in capitals, as Parley writes them), at the start of a string constant (or of an
f-string's first part)."""
QUERY_METHODS = frozenset({
    "execute", "executemany", "fetch", "fetchrow", "fetchval", "copy_from_query", "copy_from_table",
    "copy_records_to_table", "copy_to_table", "cursor", "prepare",
})
"""asyncpg's methods (on a pool, a connection or core's tenant-scoped stand-in) that send a statement."""
def sql_in(source: str) -> list[tuple[int, str]]:
    """(line, what) of each SQL statement text, query call and asyncpg import in `source`."""
    found = [(line, "import asyncpg") for line, imported in imported_packages(source) if imported == "asyncpg"]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_START.match(node.value):
            found.append((node.lineno, f"SQL {node.value.split()[0]}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in QUERY_METHODS:
            found.append((node.lineno, f"query call .{node.func.attr}()"))
    return sorted(found)


def adapter_sources() -> dict[str, str]:
    return {
        str(path.relative_to(ROOT)): path.read_text(encoding="utf-8")
        for path in sorted((ROOT / "adapters").rglob("*.py"))
    }


def test_no_adapter_holds_sql() -> None:
    found = [
        f"{path}:{line} {what}"
        for path, source in adapter_sources().items()
        for line, what in sql_in(source)
    ]
    assert found == []


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ('q = """\n  SELECT data FROM slack_bots"""', "SQL SELECT"),
        ("q = f\"DELETE FROM t WHERE id = {x}\"", "SQL DELETE"),
        ("async def f(pool):\n    await pool.fetchval(query)", "query call .fetchval()"),
        ("async def f(db):\n    await db.executemany(q, rows)", "query call .executemany()"),
        ("import asyncpg", "import asyncpg"),
        ("from asyncpg import Pool", "import asyncpg"),
    ],
)
def test_the_checker_sees_sql_in_an_adapter(source: str, what: str) -> None:
    assert [w for _, w in sql_in(source)] == [what]


def test_the_checker_leaves_prose_and_other_calls_alone() -> None:
    source = 'UPDATE = "update"\nnote = "Select a channel, then update it."\nawait client.chat_update(x)\n'
    assert sql_in(source) == []
