"""Signed HTTP to a Bolt app, as Slack's servers send it: the signature headers, form
posts (slash commands, interactivity payloads), JSON posts (Events API callbacks), and
the app's answer as a `Reply`. `SlackSim` (bot/local/sim.py) builds what it sends on this."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any
from urllib.parse import urlencode

__all__ = ["Reply", "SignedTransport"]

_FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Reply:
    """The app's HTTP answer to one simulated request.

    `json` is the parsed body when it is a JSON object (e.g. ``response_action`` for view
    submissions or an immediate slash-command message), else None. `response_url_name` is the
    `LocalSlack.response_url` name put in the request, for `FakeSlack.wait_for_response` (tests).
    """

    status: int
    body: str
    json: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)
    response_url_name: str | None = None
    trigger_id: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class SignedTransport:
    """POSTs to ``url``, signed with ``signing_secret`` as Slack signs (a mixin: the class
    using it sets ``url``, ``signing_secret``, ``timeout`` and ``_opener``)."""

    url: str
    signing_secret: str
    timeout: float
    _opener: urllib.request.OpenerDirector

    def sign(self, body: bytes | str, timestamp: int | None = None) -> dict[str, str]:
        """The ``X-Slack-Request-Timestamp``/``X-Slack-Signature`` headers for `body`.

        Pass an old `timestamp` to build a correctly signed but stale request."""
        raw = body.encode("utf-8") if isinstance(body, str) else body
        ts = int(time.time()) if timestamp is None else timestamp
        digest = hmac.new(
            self.signing_secret.encode("utf-8"), b"v0:%d:" % ts + raw, hashlib.sha256
        ).hexdigest()
        return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": f"v0={digest}"}

    def raw(self, body: bytes | str, headers: Mapping[str, str]) -> Reply:
        """POST `body` with exactly `headers` (no signing): for malformed/forged requests."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        request = urllib.request.Request(self.url, data=data, headers=dict(headers), method="POST")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return self._reply(response.status, response.read(), response.headers)
        except urllib.error.HTTPError as error:
            # Non-2xx answers (401 for bad signatures, 404 for unhandled payloads) are data.
            with error:
                return self._reply(error.code, error.read(), error.headers)

    def post_form(self, fields: Mapping[str, str]) -> Reply:
        """POST `fields` form-encoded and signed, as Slack sends commands and interactions."""
        body = urlencode(dict(fields)).encode("utf-8")
        return self.raw(body, {"Content-Type": _FORM, **self.sign(body)})

    def send_payload(self, payload: Mapping[str, Any]) -> Reply:
        """POST an interactivity payload (``payload=<json>``), signed."""
        return self.post_form({"payload": json.dumps(payload)})

    def post_json(self, body: Mapping[str, Any]) -> Reply:
        """POST ``body`` as JSON, signed, as Slack delivers Events API callbacks."""
        data = json.dumps(body).encode("utf-8")
        return self.raw(data, {"Content-Type": "application/json", **self.sign(data)})

    @staticmethod
    def _reply(status: int, body: bytes, headers: Message) -> Reply:
        text = body.decode("utf-8", errors="replace")
        parsed: dict[str, Any] | None = None
        if text.strip():
            try:
                decoded = json.loads(text)
            except ValueError:
                decoded = None
            parsed = decoded if isinstance(decoded, dict) else None
        return Reply(status=status, body=text, json=parsed, headers=dict(headers.items()))
