"""Where local mode's parts may be imported from: product code never imports the test
suite, and the bot's normal start-up never loads `bot.local` (only local mode and the
tests do), so a production process carries no embedded Slack or webhook service."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_no_product_module_imports_the_test_suite() -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(
            name for name in imported_modules(path) if name.split(".")[0] in {"tests", "bench"}
        )
        for package in ("bot", "providers")
        for path in sorted((REPO / package).rglob("*.py"))
    }

    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_normal_start_up_path_does_not_load_local_mode() -> None:
    probe = (
        "import json, sys\n"
        "import bot.cli, bot.cli.serve, bot.app, bot.server\n"
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m.startswith(('bot.local', 'tests')))))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
