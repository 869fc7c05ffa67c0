"""A local, in-process fake of the Slack Web API for tests.

`FakeSlack` runs a real HTTP server (stdlib `ThreadingHTTPServer` in a daemon thread) on
127.0.0.1 with an OS-chosen port, so the code under test talks to it through the real
`slack_sdk.WebClient` (``WebClient(base_url=slack.api_url)``) or Bolt (``SLACK_API_URL``)
exactly as it would talk to slack.com: same transport, same headers, same
``{"ok": false, "error": ...}`` envelopes and the same error codes for the subset of methods
the bot uses.

Typical use::

    slack = FakeSlack(token="xoxb-test").start()
    slack.add_user("U1", "alice@example.com")
    client = WebClient(token="xoxb-test", base_url=slack.api_url)
    ...  # exercise the code under test
    call = slack.wait_for_calls("chat.postMessage")[0]
    slack.stop()

Besides answering, the fake records every request (`calls`), keeps the messages and views
the app created (`messages`, `views`) so tests can read their latest content, captures what
the app POSTs to slash-command/interaction ``response_url``s (`responses`), and can inject
faults (`fail_next`, `outage`).

It deliberately models only what the bot needs; any other method answers ``unknown_method``
so a test notices immediately when the app starts depending on something new.

It refuses what Slack refuses, with Slack's answer (HTTP 200, ``{"ok": false, "error":
...}``; response_urls answer like Slack's webhooks, with an HTTP error status and the code
as plain text):

- blocks of messages (``invalid_blocks``) and views (``invalid_arguments``) that Slack's
  Block Kit schema refuses, checked with slack_sdk's models (`tests.fakes.block_kit`):
  section text 3,000 characters, 50 blocks in a message, 100 in a view, button value 2,000,
  action_id/block_id 255, a modal's title required and 24 characters at most (submit and
  close too), unknown fields;
- ``channel_not_found`` for a conversation it does not know: a channel must be registered
  with `add_channel`, a user id (or its DM) must belong to a user added with `add_user`;
  ``user_not_found`` for an unknown user (users.info, conversations.open,
  chat.postEphemeral's ``user``);
- trigger_ids that it did not issue (`issue_trigger_id`, which `SlackSim` uses), that are
  older than 3 s (``expired_trigger_id``) or that already opened a view
  (``exchanged_trigger_id``);
- response_urls (`response_url`) used more than 5 times (404 ``used_url``) or more than
  30 minutes after they were issued (404 ``expired_url``).

Calls refused for malformed content (``invalid_blocks``, ``invalid_arguments``, a
response_url body Slack cannot use) are also kept in `malformed`: the app under test never
has a reason to send one, so the shared fixture fails a test that did.

Time. The expiries run on the fake's own clock, `now()`: by default real monotonic
seconds, as on Slack. Pass ``clock=`` to replace it (the shared fixture passes a frozen
one, so that no ordinary test's outcome depends on how fast a loaded machine runs) and
move it with `advance(seconds)`. A test that wants Slack's time to pass while the app
waits (a slow directory answering 429 with Retry-After) gives the app ``sleep=slack.advance``:
the app's back-off then costs fake seconds, and a trigger_id is as stale as it would be.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import itertools
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from bot.local.slack.block_kit import block_problems, view_problems

__all__ = [
    "APP_ID",
    "BOT_ID",
    "BOT_USER_ID",
    "BOT_USER_NAME",
    "TEAM_DOMAIN",
    "TEAM_ID",
    "FakeSlack",
    "SlackCall",
]

T = TypeVar("T")

# Identity of the workspace and of the bot, as reported by auth.test.
TEAM_ID = "T0001"
TEAM_DOMAIN = "jit-test"
APP_ID = "A0001"
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
BOT_USER_NAME = "jit-bot"

# Parameters Slack documents as JSON-encoded strings when sent form-encoded. They are decoded
# so tests can inspect them as Python objects however the client chose to send them. Other
# values are left alone so a message text such as "[1]" is never mistaken for JSON.
_JSON_VALUED_KEYS = frozenset(
    {"blocks", "attachments", "view", "metadata", "unfurls", "options", "user_auth_blocks"}
)

# First message ts handed out; later ones grow by 100 µs, like real (strictly increasing) ts.
_TS_BASE_MICROS = 1_700_000_000_000_000
_TS_STEP_MICROS = 100

_POLL_INTERVAL = 0.01
# conversations.history page sizes, as Slack documents them.
_HISTORY_DEFAULT_LIMIT = 100
_HISTORY_MAX_LIMIT = 999
_JSON_CONTENT_TYPE = "application/json; charset=utf-8"

# Slack's lifetimes: a trigger_id can open a view within 3 s of the interaction; a
# response_url takes 5 posts within 30 minutes.
TRIGGER_TTL = 3.0
RESPONSE_URL_TTL = 30 * 60.0
RESPONSE_URL_USES = 5
# Slack cuts chat.postMessage text at 40,000 characters and refuses longer.
_TEXT_MAX = 40_000
# Errors that mean the caller sent something Slack could never accept.
MALFORMED_ERRORS = frozenset(
    {"invalid_blocks", "invalid_blocks_format", "invalid_arguments", "no_text", "msg_too_long"}
)


@dataclass(frozen=True)
class SlackCall:
    """One request the fake received, whatever its outcome.

    `params` merges query string, form and JSON body (minus the token); `status` is the HTTP
    status answered; `ok`/`error` mirror the response envelope and `response` is the whole
    JSON body sent back.
    """

    method: str
    params: dict[str, Any]
    status: int
    at: float
    ok: bool = False
    error: str | None = None
    response: dict[str, Any] = field(default_factory=dict)


class _SlackError(Exception):
    """Raised by a method implementation to answer ``{"ok": false, "error": code}``,
    with Slack's ``response_metadata.messages`` saying what was wrong when given."""

    def __init__(self, code: str, messages: list[str] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.messages = messages or []


@dataclass
class _Fault:
    """A pending injected failure (see `FakeSlack.fail_next`)."""

    method: str
    remaining: int
    status: int
    retry_after: int | None
    error: str
    where: dict[str, str] | None = None  # only calls whose params include these


@dataclass(frozen=True)
class _HttpAnswer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _json_answer(
    status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> _HttpAnswer:
    return _HttpAnswer(
        status=status,
        body=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": _JSON_CONTENT_TYPE, **(headers or {})},
    )


def _truthy(value: Any) -> bool:
    """Interpret a Slack boolean argument; slack_sdk sends form booleans as "1"/"0"."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes"}
    return bool(value)


def _decode_json_values(params: dict[str, Any]) -> dict[str, Any]:
    for key in _JSON_VALUED_KEYS & params.keys():
        value = params[key]
        if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
            # Undecodable values are left as they are for the method to reject, as Slack does.
            with contextlib.suppress(ValueError):
                params[key] = json.loads(value)
    return params


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Tests start and stop many fakes; never wait for TIME_WAIT sockets to expire.
    allow_reuse_address = True

    def __init__(self, fake: FakeSlack, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.fake = fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-answer (e.g. a timed-out test) is not worth a traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        fake = self.server.fake
        try:
            answer = fake._handle_http(
                path=self.path,
                content_type=self.headers.get("Content-Type", ""),
                authorization=self.headers.get("Authorization", ""),
                body=body,
            )
        except Exception as exc:
            # A bug in the fake must surface in the test, not as a hung or reset connection.
            fake._internal_errors.append(exc)
            answer = _json_answer(500, {"ok": False, "error": "fake_internal_error"})
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # Keep test output clean; `FakeSlack.calls` is the log.


class FakeSlack:
    """A fake Slack Web API server. See the module docstring for an overview."""

    def __init__(
        self,
        token: str = "xoxb-test",
        *,
        app_token: str = "xapp-test",
        host: str = "127.0.0.1",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`token` is the bot token accepted by every method; `app_token` is the app-level
        token accepted (only) by ``apps.connections.open``, as for Socket Mode. `clock`
        gives the seconds the expiries run on (see the module docstring)."""
        self.token = token
        self._clock = clock
        self._skew = 0.0
        self.app_token = app_token
        self.host = host
        #: What ``apps.connections.open`` answers; point it at a fake Socket Mode server.
        self.socket_url = "ws://127.0.0.1:1/"

        self._lock = threading.RLock()
        # Notified whenever something is recorded, so waits wake up promptly.
        self._changed = threading.Condition(self._lock)
        self._calls: list[SlackCall] = []
        self._responses: list[dict[str, Any]] = []
        self._messages: list[dict[str, Any]] = []
        self._ephemerals: list[dict[str, Any]] = []
        self._views: dict[str, dict[str, Any]] = {}
        self._used_trigger_ids: set[str] = set()
        self._triggers: dict[str, float] = {}  # trigger_id -> when issued
        self._response_urls: dict[str, list[float]] = {}  # name -> [issued at, uses]
        self._channels: set[str] = set()
        self._homes: dict[str, str] = {}  # user id -> id of their Home tab view
        self._closed_views: set[str] = set()
        self._malformed: list[dict[str, Any]] = []
        self._faults: list[_Fault] = []
        self._outage = False
        self._users: dict[str, dict[str, Any]] = {}
        self._usergroups: dict[str, dict[str, Any]] = {}
        self._internal_errors: list[BaseException] = []
        # Never reset: ts and ids stay unique across `reset()`, as they would on Slack.
        self._ts_counter = itertools.count(1)
        self._id_counter = itertools.count(1)
        self._response_url_counter = itertools.count(1)

        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "conversations.open": self._conversations_open,
            "conversations.history": self._conversations_history,
            "views.open": self._views_open,
            "views.update": self._views_update,
            "views.push": self._views_push,
            "views.publish": self._views_publish,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "usergroups.list": self._usergroups_list,
            "usergroups.users.list": self._usergroups_users_list,
            "apps.connections.open": self._apps_connections_open,
        }

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeSlack:
        """Bind an OS-chosen port on `host` and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("FakeSlack already started")
        self._server = _Server(self, (self.host, 0))
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FakeSlack:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port. Safe to call twice."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakeSlack:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeSlack is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """Web API base URL for ``WebClient(base_url=...)`` / ``SLACK_API_URL``."""
        return f"{self.base_url}/api/"

    def response_url(self, name: str) -> str:
        """A response_url whose POSTs are recorded in `responses` under ``_url_name``.

        Issued (its 30 minutes start) the first time `name` is asked for."""
        with self._lock:
            self._response_urls.setdefault(name, [self.now(), 0])
        return f"{self.base_url}/respond/{name}"

    def issue_response_url(self, prefix: str) -> tuple[str, str]:
        """A new response_url, issued now, and its name (``<prefix>-<n>``): unique on this
        fake, as Slack's are, however many SlackSims share it."""
        name = f"{prefix}-{next(self._response_url_counter)}"
        return name, self.response_url(name)

    def issue_trigger_id(self) -> str:
        """A fresh trigger_id in Slack's shape, issued now: it can open one view within
        `TRIGGER_TTL` seconds."""
        trigger_id = f"{next(self._id_counter)}.{int(time.time())}.{uuid.uuid4().hex[:20]}"
        with self._lock:
            self._triggers[trigger_id] = self.now()
        return trigger_id

    # ------------------------------------------------------------------ time

    def now(self) -> float:
        """Seconds on the fake's clock (only differences matter)."""
        with self._lock:
            return self._clock() + self._skew

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward; also usable as the app's ``sleep``."""
        if seconds < 0:
            raise ValueError("time does not run backwards")
        with self._changed:
            self._skew += seconds
            self._changed.notify_all()

    # ------------------------------------------------------------------ directory

    def add_user(
        self,
        user_id: str,
        email: str,
        name: str | None = None,
        deleted: bool = False,
        *,
        real_name: str | None = None,
        email_confirmed: bool = True,
        team_id: str = TEAM_ID,
        enterprise_id: str | None = None,
        is_restricted: bool = False,
        is_ultra_restricted: bool = False,
        is_stranger: bool = False,
        is_bot: bool = False,
    ) -> None:
        """Add (or replace) a user visible to users.* methods: by default a full member
        of this workspace. `is_restricted` / `is_ultra_restricted` make a multi- / single-
        channel guest, `team_id` (with `is_stranger`) a Slack Connect user of another
        workspace, whom users.lookupByEmail finds too, as Slack's does."""
        handle = name or email.split("@", 1)[0]
        with self._lock:
            self._users[user_id] = {
                "id": user_id,
                "email": email,
                "name": handle,
                "real_name": real_name or handle,
                "deleted": deleted,
                "email_confirmed": email_confirmed,
                "team_id": team_id,
                "enterprise_id": enterprise_id,
                "is_restricted": is_restricted,
                "is_ultra_restricted": is_ultra_restricted,
                "is_stranger": is_stranger,
                "is_bot": is_bot,
            }

    def add_channel(self, channel_id: str) -> None:
        """Make a channel (``C…``/``G…``) known, so messages can be posted to it."""
        with self._lock:
            self._channels.add(channel_id)

    def add_usergroup(
        self,
        group_id: str,
        handle: str,
        user_ids: list[str],
        *,
        name: str | None = None,
        description: str = "",
    ) -> None:
        """Add (or replace) a user group (``S…`` id) with the given members."""
        with self._lock:
            self._usergroups[group_id] = {
                "id": group_id,
                "handle": handle,
                "name": name or handle,
                "description": description,
                "users": list(user_ids),
            }

    def get_user(self, user_id: str) -> dict[str, Any] | None:
        """The directory entry ``{id, email, name, real_name, deleted, team_id, …}`` or None."""
        with self._lock:
            user = self._users.get(user_id)
            return dict(user) if user is not None else None

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
            self._calls.clear()
            self._responses.clear()
            self._messages.clear()
            self._ephemerals.clear()
            self._views.clear()
            self._homes.clear()
            self._used_trigger_ids.clear()
            self._faults.clear()
            self._outage = False
            self._internal_errors.clear()
            self._malformed.clear()

    # ------------------------------------------------------------------ inspection

    @property
    def calls(self) -> list[SlackCall]:
        """Every request received so far, oldest first (a snapshot)."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[SlackCall]:
        """Calls of `method` that were answered ``ok``."""
        with self._lock:
            return [c for c in self._calls if c.method == method and c.ok]

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Posted messages, oldest first, each ``{channel, ts, text, blocks, thread_ts,
        updates}`` holding the *latest* text/blocks; `updates` lists the chat.update params
        applied, in order."""
        with self._lock:
            return copy.deepcopy(self._messages)

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        """The message at (`channel`, `ts`); a ``U…`` channel means the DM with that user."""
        wanted = self._dm_channel(channel)
        for msg in self.messages:
            if msg["channel"] == wanted and msg["ts"] == ts:
                return msg
        raise KeyError(f"no message {ts} in {channel}")

    def messages_in(self, channel: str) -> list[dict[str, Any]]:
        """Messages in `channel` (a ``U…`` id means the DM with that user), oldest first."""
        wanted = self._dm_channel(channel)
        return [m for m in self.messages if m["channel"] == wanted]

    @property
    def ephemerals(self) -> list[dict[str, Any]]:
        """Ephemeral messages, each ``{channel, user, ts, text, blocks}``."""
        with self._lock:
            return copy.deepcopy(self._ephemerals)

    @property
    def views(self) -> list[dict[str, Any]]:
        """Views opened/pushed, oldest first, as Slack last returned them (with ``id``,
        ``hash``, ``callback_id``, ``private_metadata``, ``blocks``, ``state``)."""
        with self._lock:
            return copy.deepcopy(list(self._views.values()))

    def close_view(self, view_id: str) -> None:
        """The user closes modal `view_id` (its X or Cancel): Slack keeps no such view, so
        views.update of it answers ``not_found``. It stays readable in `views`."""
        with self._lock:
            self._closed_views.add(view_id)

    def view(self, view_id: str) -> dict[str, Any]:
        """The current state of view `view_id`."""
        with self._lock:
            return copy.deepcopy(self._views[view_id])

    @property
    def responses(self) -> list[dict[str, Any]]:
        """JSON bodies POSTed to response URLs, each with ``_url_name`` added."""
        with self._lock:
            return copy.deepcopy(self._responses)

    @property
    def malformed(self) -> list[dict[str, Any]]:
        """Calls refused because what they sent could never be accepted (invalid blocks or
        views, missing arguments or text, a message too long) and response_url posts Slack
        refused (a body it cannot take, a URL unknown, used up or expired), each
        ``{method, error, messages}``; should be empty."""
        with self._lock:
            return copy.deepcopy(self._malformed)

    def assert_clean(self) -> None:
        """Fail unless the fake saw no bug of its own and the bot sent nothing Slack would
        refuse as malformed: every fixture that starts a FakeSlack calls this at the end."""
        assert not self.internal_errors, self.internal_errors
        assert not self.malformed, self.malformed

    @property
    def internal_errors(self) -> list[BaseException]:
        """Exceptions raised inside the fake itself (answered as HTTP 500); should be empty."""
        with self._lock:
            return list(self._internal_errors)

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

    # ------------------------------------------------------------------ HTTP plumbing

    def _handle_http(
        self, *, path: str, content_type: str, authorization: str, body: bytes
    ) -> _HttpAnswer:
        parts = urlsplit(path)
        if parts.path.startswith("/api/"):
            method = unquote(parts.path[len("/api/") :]).strip("/")
            return self._handle_api(method, parts.query, content_type, authorization, body)
        if parts.path.startswith("/respond/"):
            return self._handle_response_url(unquote(parts.path[len("/respond/") :]), body)
        return _HttpAnswer(404, b"not found", {"Content-Type": "text/plain"})

    def _handle_response_url(self, name: str, body: bytes) -> _HttpAnswer:
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = None
        with self._changed:
            refusal = self._refuse_response(name, payload)
            if refusal is not None:
                status, code, messages = refusal
                # Every refusal here is the bot's mistake: a body Slack cannot take, or a
                # URL it no longer takes (unknown, used five times, older than 30 minutes).
                self._malformed.append(
                    {"method": f"response_url:{name}", "error": code, "messages": messages}
                )
                self._changed.notify_all()
                # Slack's webhook endpoints answer errors as plain text.
                return _HttpAnswer(status, code.encode(), {"Content-Type": "text/plain"})
            self._response_urls[name][1] += 1
            self._responses.append({**payload, "_url_name": name})
            self._changed.notify_all()
        return _json_answer(200, {"ok": True})

    def _refuse_response(self, name: str, payload: Any) -> tuple[int, str, list[str]] | None:
        """Why Slack would refuse this response_url post, or None."""
        issued = self._response_urls.get(name)
        if issued is None:
            return 404, "no_service", []
        if self.now() - issued[0] > RESPONSE_URL_TTL:
            return 404, "expired_url", []
        if issued[1] >= RESPONSE_URL_USES:
            return 404, "used_url", []
        if not isinstance(payload, dict):
            return 400, "invalid_payload", []
        _decode_json_values(payload)
        if "blocks" in payload:
            problems = block_problems(payload["blocks"])
            if problems:
                return 400, "invalid_blocks", problems
        elif not payload.get("text") and not payload.get("delete_original"):
            return 400, "no_text", []
        return None

    def _handle_api(
        self, method: str, query: str, content_type: str, authorization: str, body: bytes
    ) -> _HttpAnswer:
        params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
        parse_error: str | None = None
        if "application/json" in content_type:
            try:
                decoded = json.loads(body or b"{}")
            except ValueError:
                decoded = None
            if isinstance(decoded, dict):
                params.update(decoded)
            else:
                parse_error = "invalid_json"
        elif body:
            # Form encoding is what slack_sdk (and curl) send when no content type says JSON.
            params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        _decode_json_values(params)

        # Slack accepts the token as a bearer header or as a `token` argument.
        body_token = params.pop("token", None)
        token = authorization[len("Bearer ") :] if authorization.startswith("Bearer ") else None
        token = token or body_token

        with self._changed:
            answer = self._answer_api(method, params, token, parse_error)
            payload = json.loads(answer.body)
            self._calls.append(
                SlackCall(
                    method=method,
                    params=copy.deepcopy(params),
                    status=answer.status,
                    at=time.time(),
                    ok=bool(payload.get("ok")),
                    error=payload.get("error"),
                    response=payload,
                )
            )
            self._changed.notify_all()
        return answer

    def _answer_api(
        self, method: str, params: dict[str, Any], token: str | None, parse_error: str | None
    ) -> _HttpAnswer:
        """Decide the answer; called with the lock held so each call is atomic."""
        if self._outage:
            return _json_answer(503, {"ok": False, "error": "service_unavailable"})
        fault = self._take_fault(method, params)
        if fault is not None:
            headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
            return _json_answer(fault.status, {"ok": False, "error": fault.error}, headers)
        implementation = self._methods.get(method)
        if implementation is None:
            # Slack reports this before looking at the token.
            return _json_answer(200, {"ok": False, "error": "unknown_method", "req_method": method})
        try:
            self._check_token(method, token)
            if parse_error is not None:
                raise _SlackError(parse_error)
            result = implementation(params)
        except _SlackError as exc:
            answer: dict[str, Any] = {"ok": False, "error": exc.code}
            if exc.messages:
                answer["response_metadata"] = {"messages": exc.messages}
            if exc.code in MALFORMED_ERRORS:
                self._malformed.append(
                    {"method": method, "error": exc.code, "messages": exc.messages}
                )
            return _json_answer(200, answer)
        return _json_answer(200, {"ok": True, **result})

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

    def _check_token(self, method: str, token: str | None) -> None:
        if token == self.app_token:
            # App-level tokens only open Socket Mode connections (and may call auth.test).
            if method not in ("apps.connections.open", "auth.test"):
                raise _SlackError("not_allowed_token_type")
        elif token == self.token:
            if method == "apps.connections.open":
                raise _SlackError("not_allowed_token_type")
        else:
            raise _SlackError("invalid_auth")

    # ------------------------------------------------------------------ helpers

    def _next_ts(self) -> str:
        micros = _TS_BASE_MICROS + next(self._ts_counter) * _TS_STEP_MICROS
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    @staticmethod
    def _dm_channel(channel: str) -> str:
        """Posting to a user id lands in the DM with that user; give it a stable id."""
        return "D" + channel[1:] if channel[:1] in ("U", "W") else channel

    def _post_target(self, params: dict[str, Any]) -> str:
        channel = params.get("channel")
        if not isinstance(channel, str) or channel[:1] not in ("C", "G", "D", "U", "W"):
            raise _SlackError("channel_not_found")
        if channel[:1] in ("U", "W") and channel not in self._users:
            raise _SlackError("channel_not_found")
        return self._conversation(channel)

    def _conversation(self, channel: Any) -> str:
        """The id of a conversation the fake knows (a user id means the DM with that user),
        or ``channel_not_found``: a channel registered with `add_channel`, the DM of a
        known user, or a group DM opened with conversations.open."""
        if isinstance(channel, str):
            dm = self._dm_channel(channel)
            if channel in self._channels or any(
                self._dm_channel(user) == dm for user in self._users
            ):
                return dm
        raise _SlackError("channel_not_found")

    @staticmethod
    def _content(params: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
        """The text/blocks/attachments in `params`, validated as Slack does."""
        content: dict[str, Any] = {
            k: params[k] for k in ("text", "blocks", "attachments") if k in params
        }
        if "blocks" in content:
            blocks = content["blocks"]
            if not isinstance(blocks, list):
                raise _SlackError("invalid_blocks_format")
            problems = block_problems(blocks)
            if problems:
                raise _SlackError("invalid_blocks", problems)
        if required and not any(content.values()):
            raise _SlackError("no_text")
        if len(str(content.get("text") or "")) > _TEXT_MAX:
            raise _SlackError("msg_too_long")
        return content

    def _message_payload(self, stored: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "ts": stored["ts"],
            "text": stored["text"],
        }
        for key in ("blocks", "attachments", "thread_ts", "metadata"):
            if stored.get(key):
                message[key] = copy.deepcopy(stored[key])
        return message

    def _find_message(self, channel: Any, ts: Any) -> dict[str, Any]:
        for msg in self._messages:
            if msg["channel"] == channel and msg["ts"] == ts:
                return msg
        raise _SlackError("message_not_found")

    @staticmethod
    def _user_payload(user: dict[str, Any]) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": user["id"],
            "team_id": user["team_id"],
            "name": user["name"],
            "real_name": user["real_name"],
            "deleted": user["deleted"],
            "is_email_confirmed": user.get("email_confirmed", True),
            "is_bot": user["is_bot"],
            "is_admin": False,
            "is_restricted": user["is_restricted"],
            "is_ultra_restricted": user["is_ultra_restricted"],
            "tz": "UTC",
            "profile": {
                "email": user["email"],
                "real_name": user["real_name"],
                "real_name_normalized": user["real_name"],
                "display_name": user["name"],
                "display_name_normalized": user["name"],
            },
        }
        if user["is_stranger"]:
            payload["is_stranger"] = True
        if user["enterprise_id"]:
            payload["enterprise_user"] = {
                "id": user["id"],
                "enterprise_id": user["enterprise_id"],
                "teams": [user["team_id"]],
            }
        return payload

    def _consume_trigger(self, params: dict[str, Any]) -> None:
        trigger_id = params.get("trigger_id")
        if not trigger_id:
            raise _SlackError("invalid_arguments", ["missing required field: trigger_id"])
        issued = self._triggers.get(trigger_id)
        if issued is None:
            raise _SlackError("invalid_arguments", ["invalid `trigger_id`"])
        # Slack lets each trigger_id open exactly one view, within 3 s of the interaction.
        if trigger_id in self._used_trigger_ids:
            raise _SlackError("exchanged_trigger_id")
        if self.now() - issued > TRIGGER_TTL:
            raise _SlackError("expired_trigger_id")

    @staticmethod
    def _view_spec(params: dict[str, Any], *, kind: str = "modal") -> dict[str, Any]:
        spec = params.get("view")
        if isinstance(spec, dict) and spec.get("type") != kind:
            raise _SlackError("invalid_arguments", [f"view type must be {kind}"])
        problems = view_problems(spec)
        if problems:
            raise _SlackError("invalid_arguments", problems)
        assert isinstance(spec, dict)
        return spec

    def _new_hash(self) -> str:
        return f"{int(time.time())}.{next(self._id_counter):08x}"

    def _render_view(
        self, spec: dict[str, Any], *, view_id: str, root_view_id: str, previous: str | None
    ) -> dict[str, Any]:
        return {
            "id": view_id,
            "team_id": TEAM_ID,
            "type": spec["type"],
            "title": copy.deepcopy(spec.get("title")),
            "submit": copy.deepcopy(spec.get("submit")),
            "close": copy.deepcopy(spec.get("close")),
            "blocks": copy.deepcopy(spec.get("blocks", [])),
            "private_metadata": spec.get("private_metadata", ""),
            "callback_id": spec.get("callback_id", ""),
            "external_id": spec.get("external_id", ""),
            "state": {"values": {}},
            "hash": self._new_hash(),
            "clear_on_close": bool(spec.get("clear_on_close", False)),
            "notify_on_close": bool(spec.get("notify_on_close", False)),
            "root_view_id": root_view_id,
            "previous_view_id": previous,
            "app_id": APP_ID,
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
        }

    def _open_view(self, params: dict[str, Any]) -> dict[str, Any]:
        self._consume_trigger(params)
        spec = self._view_spec(params)
        external_id = spec.get("external_id")
        if external_id and any(v["external_id"] == external_id for v in self._views.values()):
            raise _SlackError("duplicate_external_id")
        self._used_trigger_ids.add(params["trigger_id"])
        view_id = f"V{next(self._id_counter):010d}"
        view = self._render_view(spec, view_id=view_id, root_view_id=view_id, previous=None)
        self._views[view_id] = view
        return {"view": copy.deepcopy(view)}

    # ------------------------------------------------------------------ methods

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": "JIT Test",
            "user": BOT_USER_NAME,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._post_target(params)
        content = self._content(params)
        stored: dict[str, Any] = {
            "channel": channel,
            "ts": self._next_ts(),
            "text": content.get("text") or "",
            "blocks": content.get("blocks") or [],
            "attachments": content.get("attachments") or [],
            "thread_ts": params.get("thread_ts"),
            "metadata": params.get("metadata"),
            "updates": [],
        }
        self._messages.append(stored)
        return {
            "channel": channel,
            "ts": stored["ts"],
            "message": self._message_payload(stored),
        }

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        # Unlike postMessage, chat.update needs the conversation id, not a user id.
        channel = params.get("channel")
        if not isinstance(channel, str) or channel[:1] not in ("C", "G", "D"):
            raise _SlackError("channel_not_found")
        self._conversation(channel)
        stored = self._find_message(channel, params.get("ts"))
        content = self._content(params)
        # Fields left out keep their previous value, as Slack documents for blocks.
        stored.update(copy.deepcopy(content))
        stored["text"] = stored["text"] or ""
        if "metadata" in params:
            stored["metadata"] = params["metadata"]
        stored["updates"].append(copy.deepcopy({**content, "at": time.time()}))
        return {
            "channel": channel,
            "ts": stored["ts"],
            "text": stored["text"],
            "message": self._message_payload(stored),
        }

    def _chat_post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._post_target(params)
        user = params.get("user")
        if not user:
            raise _SlackError("invalid_arguments", ["missing required field: user"])
        if user not in self._users:
            raise _SlackError("user_not_found")
        content = self._content(params)
        ts = self._next_ts()
        self._ephemerals.append(
            {
                "channel": channel,
                "user": user,
                "ts": ts,
                "text": content.get("text") or "",
                "blocks": content.get("blocks") or [],
            }
        )
        return {"message_ts": ts}

    def _conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("channel"):
            channel_id = self._conversation(params["channel"])
            return {"no_op": True, "already_open": True, "channel": {"id": channel_id}}
        users = params.get("users")
        if isinstance(users, list):
            users = ",".join(users)
        user_ids = [u.strip() for u in (users or "").split(",") if u.strip()]
        if not user_ids:
            raise _SlackError("users_list_not_supplied")
        if any(u not in self._users for u in user_ids):
            raise _SlackError("user_not_found")
        if len(user_ids) == 1:
            channel_id = self._dm_channel(user_ids[0])
        else:
            digest = hashlib.sha1(",".join(sorted(user_ids)).encode()).hexdigest()
            channel_id = "G" + digest[:10].upper()
            self._channels.add(channel_id)
        return {"no_op": False, "already_open": False, "channel": {"id": channel_id}}

    def _conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        """Top-level messages of a channel, newest first, a page at a time: Slack's cursor
        pagination (``limit``, ``has_more``, ``response_metadata.next_cursor``, an opaque
        cursor that is base64 of ``next_ts:<ts>``)."""
        channel = params.get("channel")
        if not isinstance(channel, str) or channel[:1] not in ("C", "G", "D"):
            raise _SlackError("channel_not_found")
        self._conversation(channel)
        try:
            limit = int(params.get("limit") or _HISTORY_DEFAULT_LIMIT)
        except ValueError:
            raise _SlackError("invalid_limit") from None
        limit = min(max(limit, 1), _HISTORY_MAX_LIMIT)
        history = sorted(
            (m for m in self._messages if m["channel"] == channel and not m["thread_ts"]),
            key=lambda m: m["ts"],
            reverse=True,
        )
        cursor = params.get("cursor")
        if cursor:
            try:
                kind, _, next_ts = base64.b64decode(cursor, validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise _SlackError("invalid_cursor") from None
            if kind != "next_ts":
                raise _SlackError("invalid_cursor")
            history = [m for m in history if m["ts"] <= next_ts]
        page, rest = history[:limit], history[limit:]
        answer: dict[str, Any] = {
            "messages": [self._message_payload(m) for m in page],
            "has_more": bool(rest),
            "pin_count": 0,
        }
        if rest:
            next_cursor = base64.b64encode(f"next_ts:{rest[0]['ts']}".encode()).decode()
            answer["response_metadata"] = {"next_cursor": next_cursor}
        return answer

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._open_view(params)

    def _views_push(self, params: dict[str, Any]) -> dict[str, Any]:
        # The fake cannot tell which modal the trigger came from, so a pushed view is its
        # own root; tests only need it to exist and be updatable.
        return self._open_view(params)

    def _views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        """The user's Home tab; one per user, replaced by each publish."""
        user = params.get("user_id")
        if not user:
            raise _SlackError("invalid_arguments", ["missing required field: user_id"])
        if user not in self._users:
            raise _SlackError("user_not_found")
        spec = self._view_spec(params, kind="home")
        current = self._views.get(self._homes.get(user, ""))
        if current is not None and params.get("hash") and params["hash"] != current["hash"]:
            raise _SlackError("hash_conflict")
        view_id = current["id"] if current else f"V{next(self._id_counter):010d}"
        view = self._render_view(spec, view_id=view_id, root_view_id=view_id, previous=None)
        self._views[view_id] = view
        self._homes[user] = view_id
        return {"view": copy.deepcopy(view)}

    def _views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        view_id, external_id = params.get("view_id"), params.get("external_id")
        if not view_id and not external_id:
            raise _SlackError("invalid_arguments", ["missing required field: view_id"])
        if view_id:
            current = self._views.get(view_id)
        else:
            current = next(
                (v for v in self._views.values() if v["external_id"] == external_id), None
            )
        if current is None or current["id"] in self._closed_views:
            raise _SlackError("not_found")
        spec = self._view_spec(params)
        if params.get("hash") and params["hash"] != current["hash"]:
            raise _SlackError("hash_conflict")
        updated = self._render_view(
            {"external_id": current["external_id"], **spec},
            view_id=current["id"],
            root_view_id=current["root_view_id"],
            previous=current["previous_view_id"],
        )
        self._views[current["id"]] = updated
        return {"view": copy.deepcopy(updated)}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self._users.get(params.get("user") or "")
        if user is None:
            raise _SlackError("user_not_found")
        return {"user": self._user_payload(user)}

    def _users_lookup_by_email(self, params: dict[str, Any]) -> dict[str, Any]:
        email = (params.get("email") or "").strip().lower()
        if not email:
            raise _SlackError("invalid_arguments")
        for user in self._users.values():
            if user["email"].lower() == email:
                return {"user": self._user_payload(user)}
        raise _SlackError("users_not_found")

    def _usergroups_list(self, params: dict[str, Any]) -> dict[str, Any]:
        include_users = _truthy(params.get("include_users", False))
        groups = []
        for group in self._usergroups.values():
            entry: dict[str, Any] = {
                "id": group["id"],
                "team_id": TEAM_ID,
                "is_usergroup": True,
                "name": group["name"],
                "handle": group["handle"],
                "description": group["description"],
                "date_delete": 0,
                "user_count": len(group["users"]),
            }
            if include_users:
                entry["users"] = list(group["users"])
            groups.append(entry)
        return {"usergroups": groups}

    def _usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        group_id = params.get("usergroup")
        if not group_id:
            raise _SlackError("invalid_arguments")
        group = self._usergroups.get(group_id)
        if group is None:
            raise _SlackError("no_such_subteam")
        return {"users": list(group["users"])}

    def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": self.socket_url}
