"""The embedded Web API's HTTP side: the threaded server, its handler, and Slack's envelopes.

Everything here is about bytes on the wire — how a request is read, how an answer is
written, how form and JSON arguments are decoded — so the workspace modules deal only in
decoded parameters and plain dicts.
"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

__all__ = [
    "ApiServer",
    "HttpAnswer",
    "SlackCall",
    "SlackError",
    "decode_json_values",
    "json_answer",
    "truthy",
]

# Parameters Slack documents as JSON-encoded strings when sent form-encoded. They are decoded
# so callers can inspect them as Python objects however the client chose to send them. Other
# values are left alone so a message text such as "[1]" is never mistaken for JSON.
_JSON_VALUED_KEYS = frozenset(
    {"blocks", "attachments", "view", "metadata", "unfurls", "options", "user_auth_blocks"}
)
_JSON_CONTENT_TYPE = "application/json; charset=utf-8"


@dataclass(frozen=True)
class SlackCall:
    """One request the embedded API received, whatever its outcome.

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


class SlackError(Exception):
    """Raised by a method implementation to answer ``{"ok": false, "error": code}``,
    with Slack's ``response_metadata.messages`` saying what was wrong when given."""

    def __init__(self, code: str, messages: list[str] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.messages = messages or []


@dataclass(frozen=True)
class HttpAnswer:
    """What the handler writes back: status, body and headers (Content-Length is added)."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def json_answer(
    status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> HttpAnswer:
    """A JSON answer with the content type Slack sends."""
    return HttpAnswer(
        status=status,
        body=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": _JSON_CONTENT_TYPE, **(headers or {})},
    )


def truthy(value: Any) -> bool:
    """Interpret a Slack boolean argument; slack_sdk sends form booleans as "1"/"0"."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes"}
    return bool(value)


def decode_json_values(params: dict[str, Any]) -> dict[str, Any]:
    """Decode, in place, the arguments Slack takes as JSON strings (blocks, view, …)."""
    for key in _JSON_VALUED_KEYS & params.keys():
        value = params[key]
        if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
            # Undecodable values are left as they are for the method to reject, as Slack does.
            with contextlib.suppress(ValueError):
                params[key] = json.loads(value)
    return params


class HttpEndpoint(Protocol):
    """What the server hands each request to (`LocalSlack`)."""

    def _handle_http(
        self, *, path: str, content_type: str, authorization: str, body: bytes
    ) -> HttpAnswer: ...

    def _record_internal_error(self, exc: BaseException) -> None: ...


class ApiServer(ThreadingHTTPServer):
    """The threaded HTTP server `LocalSlack` runs; each request goes to its endpoint."""

    daemon_threads = True
    # Tests start and stop many servers; never wait for TIME_WAIT sockets to expire.
    allow_reuse_address = True

    def __init__(self, fake: HttpEndpoint, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.fake = fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-answer (e.g. a timed-out test) is not worth a traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer

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
            # A bug in the embedded API must surface (in `internal_errors`), not as a hung or
            # reset connection.
            fake._record_internal_error(exc)
            answer = json_answer(500, {"ok": False, "error": "fake_internal_error"})
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # Keep output clean; `LocalSlack.calls` is the log.
