"""The README's first command, as a newcomer runs it: ``make run`` in a fresh clone, with
an empty environment, installs everything and serves the local workspace.

The clone is of the committed tree (what CI checks out); the install reuses pip's cache,
as the suite's own ``make install`` has just filled it. The wait is the install's, not a
measure of speed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.fakes.processes import REPO, free_port, get

INSTALL_TIME = 900.0  # seconds: a venv and every dependency, from pip's cache or PyPI
URL_LINE = re.compile(r"local mode, open (http://127\.0\.0\.1:\d+/)")


def _newcomers_env(port: int) -> dict[str, str]:
    """A shell with nothing set up: PATH and HOME (for pip's cache), and the port."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "PORT": str(port),
    }


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_in_a_fresh_clone_serves_the_local_workspace(tmp_path: Path) -> None:
    clone = tmp_path / "jit-bot"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    port = free_port()
    output = tmp_path / "make-run.log"
    with output.open("wb") as log:
        make = subprocess.Popen(
            ["make", "run"],
            cwd=clone,
            env=_newcomers_env(port),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # make, its shell and the bot: stopped together
        )
    try:
        url = _wait_for_url(make, output)
        status, page = get(url, timeout=10)
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        make.wait(timeout=60)

    assert url == f"http://127.0.0.1:{port}/"
    assert status == 200 and b"local mode" in page
    # A newcomer's clone is left as it was: the bot's data lived in its own directory.
    assert not (clone / "jit-bot-local.db").exists()


def _wait_for_url(make: subprocess.Popen[bytes], output: Path) -> str:
    deadline = time.monotonic() + INSTALL_TIME
    while time.monotonic() < deadline:
        found = URL_LINE.search(output.read_text(errors="replace"))
        if found:
            return found.group(1)
        if make.poll() is not None:
            raise AssertionError(f"make run stopped ({make.returncode}):\n{_tail(output)}")
        time.sleep(0.5)  # polling a log file for a line; nothing to wait on instead
    raise AssertionError(f"no local-mode URL within {INSTALL_TIME:.0f}s:\n{_tail(output)}")


def _tail(output: Path) -> str:
    return "\n".join(output.read_text(errors="replace").splitlines()[-40:])
