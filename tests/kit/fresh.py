"""Running a snippet in a fresh interpreter: for what this process has long since done
(imported every SDK, set the garbage collector), with this checkout on its path."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def last_value(snippet: str, cwd: Path) -> Any:
    """Run ``snippet`` (dedented) in a new interpreter in ``cwd``; the Python literal its
    last line of output prints. Fails the test, with its stderr, if it does not exit 0."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(snippet)],
        cwd=cwd,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(cwd)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return ast.literal_eval(done.stdout.strip().splitlines()[-1])
