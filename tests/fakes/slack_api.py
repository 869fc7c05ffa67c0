"""The test suite's fake Slack: the product's embedded Web API plus test-only controls.

`FakeSlack` is `bot.local.slack.LocalSlack` (see its module docstring for what it answers
and refuses) with what only tests need: fault injection (`fail_next`, `outage`), waiting
for the bot to do something (`wait_for`, `wait_for_calls`, `wait_for_response`) and
`assert_clean`, which every fixture that starts one calls at the end.

Typical use::

    slack = FakeSlack(token="xoxb-test").start()
    slack.add_user("U1", "alice@example.com")
    client = WebClient(token="xoxb-test", base_url=slack.api_url)
    ...  # exercise the code under test
    call = slack.wait_for_calls("chat.postMessage")[0]
    slack.stop()

Time. The shared fixture passes a frozen ``clock=``, so that no ordinary test's outcome
depends on how fast a loaded machine runs. A test that wants Slack's time to pass while the
app waits (a slow directory answering 429 with Retry-After) gives the app
``sleep=slack.advance``: the app's back-off then costs fake seconds, and a trigger_id is as
stale as it would be.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from bot.local.slack import (
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    BOT_USER_NAME,
    TEAM_DOMAIN,
    TEAM_ID,
    TRIGGER_TTL,
    LocalSlack,
    SlackCall,
)
from bot.local.slack.wire import HttpAnswer, json_answer

__all__ = [
    "APP_ID",
    "BOT_ID",
    "BOT_USER_ID",
    "BOT_USER_NAME",
    "TEAM_DOMAIN",
    "TEAM_ID",
    "TRIGGER_TTL",
    "FakeSlack",
    "SlackCall",
]

T = TypeVar("T")

_POLL_INTERVAL = 0.01


@dataclass
class _Fault:
    """A pending injected failure (see `FakeSlack.fail_next`)."""

    method: str
    remaining: int
    status: int
    retry_after: int | None
    error: str
    where: dict[str, str] | None = None  # only calls whose params include these


class FakeSlack(LocalSlack):
    """The embedded Web API with fault injection, waits and `assert_clean`."""

    # Every test that starts a bot stops a fake Slack and waits for its loop to notice:
    # a short poll keeps teardown from costing the suite a poll interval per test.
    poll_seconds = 0.005

    def __init__(
        self,
        token: str = "xoxb-test",
        *,
        app_token: str = "xapp-test",
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(token, app_token=app_token, host=host, port=port, clock=clock)
        self._faults: list[_Fault] = []
        self._outage = False

    # ------------------------------------------------------------------ fault injection

    def fail_next(
        self,
        method: str,
        *,
        times: int = 1,
        status: int | None = None,
        retry_after: int | None = None,
        error: str | None = None,
        where: dict[str, str] | None = None,
    ) -> None:
        """Make the next `times` calls of `method` ("*" = any method) fail; with `where`,
        only calls whose parameters include those (e.g. ``{"usergroup": "S1"}``).

        `status` defaults to 429 (body ``{"ok": false, "error": "ratelimited"}``), or to 200
        when `error` is given, which answers ``{"ok": false, "error": error}`` the way Slack
        reports API-level errors. `retry_after` adds a ``Retry-After`` header (seconds).
        Failures queue up in order; failed calls are recorded but change no state.
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        if status is None:
            status = 200 if error is not None else 429
        if error is None:
            if status == 200:
                raise ValueError("status 200 needs an error code to fail with")
            error = {429: "ratelimited", 503: "service_unavailable"}.get(status, "fatal_error")
        with self._lock:
            self._faults.append(_Fault(method, times, status, retry_after, error, where))

    def clear_faults(self) -> None:
        """Forget every pending ``fail_next``: the storm is over."""
        with self._lock:
            self._faults.clear()

    def outage(self, on: bool = True) -> None:
        """While on, every Web API method answers HTTP 503."""
        with self._lock:
            self._outage = on

    def reset(self) -> None:
        """Forget recorded calls, responses, messages, views and pending faults; end any
        outage. The user directory and tokens are kept."""
        with self._lock:
            super().reset()
            self._faults.clear()
            self._outage = False

    def _answer_api(
        self, method: str, params: dict[str, Any], token: str | None, parse_error: str | None
    ) -> HttpAnswer:
        # An outage or an injected fault answers before Slack looks at the call at all.
        if self._outage:
            return json_answer(503, {"ok": False, "error": "service_unavailable"})
        fault = self._take_fault(method, params)
        if fault is not None:
            headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            return json_answer(fault.status, {"ok": False, "error": fault.error}, headers)
        return super()._answer_api(method, params, token, parse_error)

    def _take_fault(self, method: str, params: dict[str, Any]) -> _Fault | None:
        for fault in self._faults:
            if fault.method in (method, "*") and all(
                params.get(key) == value for key, value in (fault.where or {}).items()
            ):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    # ------------------------------------------------------------------ checks

    def assert_clean(self) -> None:
        """Fail unless the fake saw no bug of its own and the bot sent nothing Slack would
        refuse as malformed: every fixture that starts a FakeSlack calls this at the end."""
        assert not self.internal_errors, self.internal_errors
        assert not self.malformed, self.malformed

    # ------------------------------------------------------------------ waiting

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0) -> T:
        """Poll `predicate` (every 10 ms, or sooner when a request arrives) until it
        returns something truthy, and return that. Raises AssertionError on timeout."""
        name = getattr(predicate, "__qualname__", repr(predicate))
        return self._wait(predicate, timeout, lambda: f"{name} to become truthy")

    def wait_for_calls(
        self,
        method: str,
        count: int = 1,
        timeout: float = 10.0,
        where: Callable[[SlackCall], bool] | None = None,
    ) -> list[SlackCall]:
        """Wait until at least `count` ok calls of `method` (matching `where`) were
        received; return all such calls, oldest first."""

        def matching() -> list[SlackCall]:
            return [c for c in self.calls_to(method) if where is None or where(c)]

        def ready() -> list[SlackCall] | None:
            found = matching()
            return found if len(found) >= count else None

        def describe() -> str:
            cond = "" if where is None else " matching `where`"
            return f"{count} ok call(s) to {method}{cond} (got {len(matching())})"

        result = self._wait(ready, timeout, describe)
        assert result is not None
        return result

    def wait_for_response(
        self,
        timeout: float = 10.0,
        where: Callable[[dict[str, Any]], bool] | None = None,
        *,
        name: str | None = None,
    ) -> dict[str, Any]:
        """Wait for the first response_url POST (optionally for response URL `name` and
        matching `where`) and return its body."""

        def ready() -> dict[str, Any] | None:
            for body in self.responses:
                if (name is None or body["_url_name"] == name) and (where is None or where(body)):
                    return body
            return None

        def describe() -> str:
            target = "any response_url" if name is None else f"response_url {name!r}"
            got = [r["_url_name"] for r in self.responses]
            return f"a POST to {target} (received for: {got})"

        result = self._wait(ready, timeout, describe)
        assert result is not None
        return result

    def _wait(self, predicate: Callable[[], T], timeout: float, describe: Callable[[], str]) -> T:
        deadline = time.monotonic() + timeout
        while True:
            # The predicate runs without the lock: it may itself call the fake over HTTP.
            result = predicate()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {describe()}; "
                    f"Slack calls so far: {self._describe_calls()}"
                )
            with self._changed:
                self._changed.wait(min(_POLL_INTERVAL, remaining))

    def _describe_calls(self, limit: int = 50) -> str:
        calls = self.calls
        shown = [f"{c.method}[{c.status} {'ok' if c.ok else c.error}]" for c in calls[-limit:]]
        prefix = f"... {len(calls) - limit} earlier, " if len(calls) > limit else ""
        return prefix + (", ".join(shown) or "none")
