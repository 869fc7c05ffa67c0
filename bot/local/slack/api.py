"""An embedded Slack Web API: a real HTTP server the bot talks to as it would to slack.com.

`LocalSlack` runs a stdlib `ThreadingHTTPServer` in a daemon thread (on 127.0.0.1 and an
OS-chosen port unless told otherwise), so the bot talks to it through the real
`slack_sdk.WebClient` (``WebClient(base_url=slack.api_url)``) or Bolt (``SLACK_API_URL``)
exactly as it would talk to Slack: same transport, same headers, same
``{"ok": false, "error": ...}`` envelopes and the same error codes for the subset of methods
the bot uses. Local mode serves its workspace with it; the tests use it as their fake Slack.

Typical use::

    slack = LocalSlack(token="xoxb-test").start()
    slack.add_user("U1", "alice@example.com")
    client = WebClient(token="xoxb-test", base_url=slack.api_url)
    ...  # the bot runs
    seq, changes = slack.changes_since(0)
    slack.stop()

It records every request (`calls`), keeps the messages and views the bot created
(`messages`, `views`) with their latest content, captures what the bot POSTs to
slash-command/interaction ``response_url``s (`responses`), and reports each of those
changes on a feed (`changes_since`, `wait_for_change`) for a page that shows them.

It models only what the bot needs; any other method answers ``unknown_method`` so a new
dependency is noticed at once. It refuses what Slack refuses, with Slack's answer (HTTP 200,
``{"ok": false, "error": ...}``; response_urls answer like Slack's webhooks, with an HTTP
error status and the code as plain text):

- blocks of messages (``invalid_blocks``) and views (``invalid_arguments``) that Slack's
  Block Kit schema refuses, checked with slack_sdk's models (`bot.local.slack.block_kit`);
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
response_url body Slack cannot use) are also kept in `malformed`: the bot never has a
reason to send one.

Time. The expiries run on the workspace's own clock, `now()`: by default real monotonic
seconds, as on Slack. Pass ``clock=`` to replace it and move it with `advance(seconds)`.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from bot.local.slack.chat import ChatMethods
from bot.local.slack.directory import DirectoryMethods
from bot.local.slack.identity import MALFORMED_ERRORS
from bot.local.slack.views import ViewMethods
from bot.local.slack.wire import (
    ApiServer,
    HttpAnswer,
    SlackCall,
    SlackError,
    decode_json_values,
    json_answer,
)

__all__ = ["LocalSlack"]

_API_PREFIX = "/api/"
_RESPOND_PREFIX = "/respond/"


class LocalSlack(ViewMethods, ChatMethods, DirectoryMethods):
    """The embedded Slack Web API server. See the module docstring for an overview."""

    # How often the serving loop looks up to see whether stop() was called: stopping
    # waits for it.
    poll_seconds = 0.05

    def __init__(
        self,
        token: str = "xoxb-test",
        *,
        app_token: str = "xapp-test",
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`token` is the bot token accepted by every method; `app_token` is the app-level
        token accepted (only) by ``apps.connections.open``, as for Socket Mode. The server
        binds `host`:`port` (0: a port the OS chooses). `clock` gives the seconds the
        expiries run on (see the module docstring)."""
        super().__init__(clock=clock)
        self.token = token
        self.app_token = app_token
        self.host = host
        self._bind_port = port
        self._server: ApiServer | None = None
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

    def start(self) -> LocalSlack:
        """Bind `host`:`port` and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._server = ApiServer(self, (self.host, self._bind_port))
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": self.poll_seconds},
            name=f"{type(self).__name__}:{self.port}",
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

    def __enter__(self) -> LocalSlack:
        return self if self._server is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """Web API base URL for ``WebClient(base_url=...)`` / ``SLACK_API_URL``."""
        return f"{self.base_url}{_API_PREFIX}"

    # ------------------------------------------------------------------ HTTP plumbing

    def _handle_http(
        self, *, path: str, content_type: str, authorization: str, body: bytes
    ) -> HttpAnswer:
        parts = urlsplit(path)
        if parts.path.startswith(_API_PREFIX):
            method = unquote(parts.path[len(_API_PREFIX) :]).strip("/")
            return self._handle_api(method, parts.query, content_type, authorization, body)
        if parts.path.startswith(_RESPOND_PREFIX):
            return self._handle_response_url(unquote(parts.path[len(_RESPOND_PREFIX) :]), body)
        return HttpAnswer(404, b"not found", {"Content-Type": "text/plain"})

    def _handle_api(
        self, method: str, query: str, content_type: str, authorization: str, body: bytes
    ) -> HttpAnswer:
        params, parse_error = _parse_params(query, content_type, body)
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
    ) -> HttpAnswer:
        """Decide the answer; called with the lock held so each call is atomic."""
        implementation = self._methods.get(method)
        if implementation is None:
            # Slack reports this before looking at the token.
            return json_answer(200, {"ok": False, "error": "unknown_method", "req_method": method})
        try:
            self._check_token(method, token)
            if parse_error is not None:
                raise SlackError(parse_error)
            result = implementation(params)
        except SlackError as exc:
            answer: dict[str, Any] = {"ok": False, "error": exc.code}
            if exc.messages:
                answer["response_metadata"] = {"messages": exc.messages}
            if exc.code in MALFORMED_ERRORS:
                self._malformed.append(
                    {"method": method, "error": exc.code, "messages": exc.messages}
                )
            return json_answer(200, answer)
        return json_answer(200, {"ok": True, **result})

    def _check_token(self, method: str, token: str | None) -> None:
        if token == self.app_token:
            # App-level tokens only open Socket Mode connections (and may call auth.test).
            if method not in ("apps.connections.open", "auth.test"):
                raise SlackError("not_allowed_token_type")
        elif token == self.token:
            if method == "apps.connections.open":
                raise SlackError("not_allowed_token_type")
        else:
            raise SlackError("invalid_auth")


def _parse_params(query: str, content_type: str, body: bytes) -> tuple[dict[str, Any], str | None]:
    """A Web API call's arguments from query string and body, and a parse error if any."""
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
    return decode_json_values(params), parse_error
