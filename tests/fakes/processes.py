"""Real bot processes for tests: start ``python -m bot …`` with a clean environment,
capture its output to files, wait for /healthz, SIGKILL it, and make sure every process
is gone at teardown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
JIT_BOT_SCRIPT = Path(sys.executable).with_name("jit-bot")
# How long to wait for a bot process to start, answer or stop. A wait for an event, not a
# measure of speed: a machine under load may take many seconds to import four cloud SDKs,
# and a slow start must not read as a broken one.
START_TIMEOUT = 60.0
AUDIT_KEY = "test-audit-key-0123456789abcdef"  # tests/conftest.py's; PostgreSQL needs one


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    # Talk to the bot directly even if the environment configures an HTTP proxy.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def clean_env(**overrides: str | None) -> dict[str, str]:
    """This process's environment minus every Slack/JIT/database setting of the developer's,
    with this checkout first on PYTHONPATH, plus ``overrides`` (None removes a name)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "JIT_", "DATABASE_URL", "PORT"))
    }
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        PYTHONUNBUFFERED="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def wait_healthy(
    name: str,
    popen: subprocess.Popen[bytes],
    url: str,
    output: Callable[[], str],
    timeout: float = START_TIMEOUT,
    poll: float = 0.05,
) -> dict[str, Any]:
    """Poll ``url``/healthz every ``poll`` seconds until it answers 200 and return what it
    said; fail at once if the process died, and after ``timeout`` seconds, with its
    ``output``."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        code = popen.poll()
        if code is not None:
            raise AssertionError(f"{name} exited with {code}\n{output()}")
        try:
            status, body = get(f"{url}/healthz", timeout=1.0)
        except OSError as exc:
            last = repr(exc)
        else:
            if status == 200:
                parsed: dict[str, Any] = json.loads(body)
                return parsed
            last = f"HTTP {status}: {body[:200]!r}"
        time.sleep(poll)
    raise AssertionError(f"{name}: /healthz not ready ({last})\n{output()}")


@dataclass
class BotProcess:
    """One ``jit-bot`` process with its output captured to files."""

    name: str
    popen: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return (
            f"--- {self.name} stdout ---\n{self.stdout.read_text(errors='replace')}"
            f"--- {self.name} stderr ---\n{self.stderr.read_text(errors='replace')}"
        )

    def wait_exit(self, timeout: float = START_TIMEOUT) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not exit\n{self.output()}") from None

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        """Poll /healthz until it answers 200 (bounded); fail early if the process died."""
        return wait_healthy(self.name, self.popen, self.url, self.output, timeout)

    def crash(self) -> None:
        """SIGKILL: no shutdown hooks, no goodbye, as when a host dies."""
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=START_TIMEOUT)

    def terminate(self) -> None:
        if self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=5)


@dataclass
class Launcher:
    """Starts bot processes and guarantees they are all gone at teardown."""

    tmp_path: Path
    started: list[BotProcess] = field(default_factory=list)

    def env(self, **overrides: str | None) -> dict[str, str]:
        """A clean environment: nothing of the developer's Slack/JIT settings leaks in."""
        return clean_env(**{"JIT_AUDIT_KEY": AUDIT_KEY, **overrides})

    def start(
        self, args: list[str], env: dict[str, str], name: str = "bot", *, script: bool = False
    ) -> BotProcess:
        """Run ``python -m bot ARGS``, or the installed ``jit-bot`` console script."""
        name = f"{name}-{len(self.started) + 1}"
        command = [str(JIT_BOT_SCRIPT)] if script else [sys.executable, "-m", "bot"]
        stdout = self.tmp_path / f"{name}.stdout"
        stderr = self.tmp_path / f"{name}.stderr"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            popen = subprocess.Popen(
                [*command, *args],
                env=env,
                cwd=self.tmp_path,
                stdout=out,
                stderr=err,
            )
        port = int(env["PORT"]) if env.get("PORT") else None
        process = BotProcess(name, popen, stdout, stderr, port)
        self.started.append(process)
        return process

    def serve(self, env: dict[str, str]) -> BotProcess:
        env = {**env, "PORT": str(free_port())}
        return self.start(["serve"], env, name="serve")

    def stop_all(self) -> None:
        for process in self.started:
            try:
                process.terminate()
            finally:
                if process.popen.poll() is None:
                    process.popen.kill()
                    process.popen.wait(timeout=5)


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m bot ARGS`` to completion with ``env`` added to this environment."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={**os.environ, "JIT_AUDIT_KEY": AUDIT_KEY, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
