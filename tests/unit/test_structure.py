"""The code keeps the shape that lets a new capability be a new file (issue 16): no module
in bot/ over 400 lines, no class over 400 lines and no function over 60 lines in bot/ or
providers/, and no ``assert`` doing the product's checking (``python -O`` removes them)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("bot", "providers")
MODULE_LINES = 400
CLASS_LINES = 400
FUNCTION_LINES = 60


def _sources(*packages: str) -> Iterator[Path]:
    for package in packages:
        yield from sorted((ROOT / package).rglob("*.py"))


def _lines(node: ast.AST) -> int:
    return (getattr(node, "end_lineno", 0) or 0) - getattr(node, "lineno", 0) + 1


def _named(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_no_module_in_bot_is_over_400_lines() -> None:
    long = {
        _named(path): lines
        for path in _sources("bot")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MODULE_LINES
    }
    assert long == {}


@pytest.mark.parametrize(
    ("kind", "limit"),
    [(ast.ClassDef, CLASS_LINES), ((ast.FunctionDef, ast.AsyncFunctionDef), FUNCTION_LINES)],
    ids=["classes", "functions"],
)
def test_no_class_or_function_in_the_product_is_over_its_limit(
    kind: type[ast.AST] | tuple[type[ast.AST], ...], limit: int
) -> None:
    long = {
        f"{_named(path)}:{node.lineno} {node.name}": _lines(node)  # type: ignore[attr-defined]
        for path in _sources(*PRODUCT)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, kind) and _lines(node) > limit
    }
    assert long == {}


def test_the_product_checks_with_errors_not_asserts() -> None:
    asserts = [
        f"{_named(path)}:{node.lineno}"
        for path in _sources(*PRODUCT)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Assert)
    ]
    assert asserts == []


def test_the_limits_are_seen() -> None:
    # The scan itself must be able to fail: a function of 61 lines is caught.
    body = "\n".join(f"    x{i} = {i}" for i in range(60))
    [function] = ast.parse(f"def f():\n{body}\n").body
    assert _lines(function) == 61 > FUNCTION_LINES
    assert any(True for _ in _sources(*PRODUCT))
