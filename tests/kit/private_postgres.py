"""A throwaway PostgreSQL instance that checks passwords, for the tests of generated
credentials: the machine's server trusts every connection from 127.0.0.1, so a password
shown to a person is never checked there. This one, made by ``initdb`` in a temporary
directory and started by ``pg_ctl`` on a free port, asks for a SCRAM password on TCP and
trusts only its own Unix socket (for the test's superuser). Skipped, saying why, where
the binaries are missing or cannot be run as an ordinary user."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.fakes.processes import free_port

_BIN_GLOB = "/usr/lib/postgresql/*/bin"
#: initdb and the server refuse to run as root: as root, they run as this user.
_SERVER_USER = "postgres"


class PrivatePostgres:
    def __init__(self) -> None:
        found = sorted(glob.glob(f"{_BIN_GLOB}/initdb"))
        if not found:
            pytest.skip(f"no PostgreSQL server binaries under {_BIN_GLOB}")
        self._bin = Path(found[-1]).parent
        self._as: list[str] = []
        if os.geteuid() == 0:
            if not shutil.which("runuser"):
                pytest.skip("running as root without runuser: initdb will not run as root")
            self._as = ["runuser", "-u", _SERVER_USER, "--"]
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="jit-pg-"))
        self.data = self.dir / "data"
        if self._as:
            shutil.chown(self.dir, _SERVER_USER)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-w",
            "-l",
            str(self.dir / "log"),
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
            "start",
        )

    @property
    def url(self) -> str:
        """The superuser's URL, over the trusted socket."""
        return f"postgresql://postgres@/postgres?host={self.dir}&port={self.port}"

    def _run(self, program: str, *args: str) -> None:
        command: Sequence[str] = [*self._as, str(self._bin / program), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            pytest.skip(f"{program} failed: {(done.stderr or done.stdout).strip()[-500:]}")

    def stop(self) -> None:
        subprocess.run(
            [*self._as, str(self._bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(self.dir, ignore_errors=True)
