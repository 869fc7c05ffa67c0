"""The kit of the local-mode tests: a real ``jit-bot serve`` process started with no Slack
app in an empty directory, and a small client of the page's JSON routes."""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.processes import REPO, START_TIMEOUT, BotProcess, Launcher, free_port

ADA, GRACE, LINUS, SAM = "U0ADA", "U0GRACE", "U0LINUS", "U0SAM"  # examples/local/people.yaml
URL_LINE = re.compile(r"http://127\.0\.0\.1:(\d+)/")


def empty_env(**extra: str) -> dict[str, str]:
    """Only PATH and HOME, as a newcomer's shell might have, and ``extra``. PYTHONPATH
    points at this checkout so the process runs the code under test."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    return {**env, "PYTHONPATH": str(REPO), **extra}


def wait_for_url(process: BotProcess, timeout: float = START_TIMEOUT) -> str:
    """The URL local mode printed on its one line, once it has (the process still runs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise AssertionError(
                f"local mode exited with {process.popen.poll()}\n{process.output()}"
            )
        found = URL_LINE.search(process.stdout.read_text())
        if found:
            return found.group(0)
        time.sleep(0.05)
    raise AssertionError(f"local mode printed no URL in {timeout}s\n{process.output()}")


@dataclass
class Answer:
    status: int
    json: Any
    headers: dict[str, str]
    body: bytes


class LocalPage:
    """Talks to the page's routes as the page's JavaScript does."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(
        self,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        method: str | None = None,
    ) -> Answer:
        request = urllib.request.Request(
            self.url + path, data=body, headers=headers or {}, method=method
        )
        try:
            with self._opener.open(request, timeout=30) as response:
                raw = response.read()
                return Answer(response.status, _json(raw), dict(response.headers.items()), raw)
        except urllib.error.HTTPError as error:
            with error:
                raw = error.read()
                return Answer(error.code, _json(raw), dict(error.headers.items()), raw)

    def post(self, route: str, user: str, **fields: Any) -> Answer:
        body = json.dumps({"as": user, **fields}).encode()
        return self.request(
            f"/local/api/{route}", body, {"Content-Type": "application/json"}, "POST"
        )

    def state(self, user: str, since: int | None = None) -> dict[str, Any]:
        query = f"?as={user}" + ("" if since is None else f"&since={since}")
        answer = self.request(f"/local/api/state{query}")
        assert answer.status == 200, answer
        state: dict[str, Any] = answer.json
        return state

    def wait(self, user: str, predicate: Callable[[dict[str, Any]], Any], what: str) -> Any:
        """Long-poll the state until ``predicate`` finds something in it (bounded)."""
        deadline = time.monotonic() + 30
        state = self.state(user)
        while time.monotonic() < deadline:
            found = predicate(state)
            if found:
                return found
            state = self.state(user, since=state["version"])
        raise AssertionError(f"timed out waiting for {what}; last state: {state}")

    def command(self, user: str, text: str, channel: str | None = None) -> Answer:
        return self.post("command", user, text=text, channel=channel or dm(user))

    def messages(self, state: dict[str, Any], channel: str) -> list[dict[str, Any]]:
        [conversation] = [c for c in state["conversations"] if c["id"] == channel]
        return list(conversation["messages"])


def dm(user: str) -> str:
    """The id of ``user``'s DM with the bot."""
    return "D" + user[1:]


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


@pytest.fixture(scope="module")
def local_mode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalPage, BotProcess]]:
    """One local-mode bot for a module's tests, started as ``jit-bot serve`` with an
    empty environment in an empty directory."""
    launcher = Launcher(Path(tmp_path_factory.mktemp("local-mode")))
    try:
        process = launcher.start(["serve"], empty_env(PORT=str(free_port())), name="local")
        yield LocalPage(wait_for_url(process)), process
    finally:
        launcher.stop_all()
