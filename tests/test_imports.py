"""Dependencies point one way: core <- adapters, evals <- bot. Checked on the source, imports inside
functions and under TYPE_CHECKING included."""

from __future__ import annotations

import ast
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
