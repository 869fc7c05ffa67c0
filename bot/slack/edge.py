"""The Slack HTTP edge: what a request to /slack/events must be before anything parses it.

The body is read only up to a small cap, Slack's v0 signature is checked over the raw
bytes, and only a signed body that parses as a Slack payload is handed on to Bolt. Each
step answers with a `Refusal` (a status and words for the caller) instead of raising, and
no step writes a byte of the body anywhere: whoever sent it may be an attacker, and a
log line is the first thing a forged body would try to land in.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from slack_bolt.request import BoltRequest

# Slack's largest payload is a view_submission, which carries the whole modal: at most 100
# blocks, each section at most 3,000 characters of text, plus what was typed into it. Form-
# encoded that is about 0.4 MB at the very worst; the bot's own modals are a few KB. 1 MiB
# is more than twice the worst case and a thousandth of what waitress accepts by default.
MAX_BODY_BYTES = 1024 * 1024

# Slack's rule: a signature more than five minutes off our clock is not accepted.
MAX_SIGNATURE_AGE_SECONDS = 5 * 60

_READ_CHUNK = 64 * 1024
_SIGNATURE = re.compile(r"^v0=[0-9a-f]{64}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_CONTENT_LENGTH = re.compile(r"^[0-9]{1,19}$")


@dataclass(frozen=True)
class Refusal:
    """Why a request goes no further, as the caller is told it."""

    status: int
    error: str


TOO_LARGE = Refusal(413, f"request body too large: Slack payloads fit in {MAX_BODY_BYTES} bytes")
BAD_SIGNATURE = Refusal(401, "invalid request signature")
NOT_A_PAYLOAD = Refusal(401, "request body is not a Slack payload")


def refuse_declared_length(content_length: str | None) -> Refusal | None:
    """A refusal from the declared length alone, before a byte of the body is read."""
    if not content_length:
        return None
    if not _CONTENT_LENGTH.match(content_length):
        return NOT_A_PAYLOAD
    return TOO_LARGE if int(content_length) > MAX_BODY_BYTES else None


def read_body(stream: IO[bytes], content_length: str | None) -> bytes | Refusal:
    """At most ``MAX_BODY_BYTES`` (+1, to tell "over") from ``stream``, whatever the header
    says: a missing length (a chunked body some servers pass through) is read only to the
    cap, and a stream that holds more than it declared is never read past the cap."""
    refusal = refuse_declared_length(content_length)
    if refusal is not None:
        return refusal
    # WSGI forbids reading past a declared length (the read may block).
    wanted = int(content_length) if content_length else MAX_BODY_BYTES + 1
    chunks: list[bytes] = []
    received = 0
    while received < wanted:
        chunk = stream.read(min(_READ_CHUNK, wanted - received))
        if not chunk:
            break
        chunks.append(chunk)
        received += len(chunk)
        if received > MAX_BODY_BYTES:
            return TOO_LARGE
    return b"".join(chunks)


def fresh_signature_headers(
    signature: str, timestamp: str, now: Callable[[], float] = time.time
) -> bool:
    """Slack's two headers have one exact shape and a timestamp within five minutes; this
    is decided before the body is read at all. ``now`` is the wall clock, as Slack's."""
    if not (_SIGNATURE.match(signature) and _TIMESTAMP.match(timestamp)):
        return False
    return abs(now() - int(timestamp)) <= MAX_SIGNATURE_AGE_SECONDS


def signed_by_slack(secret: str, timestamp: str, signature: str, body: bytes) -> bool:
    """Slack's v0 HMAC-SHA256 over ``v0:{timestamp}:{raw body}``, compared in constant
    time. Over the bytes as received: nothing has decoded or parsed them yet."""
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    expected = "v0=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii"))


def bolt_request(
    body: bytes, query: str, headers: Mapping[str, str | Sequence[str]]
) -> BoltRequest | Refusal:
    """The signed body as Bolt's request, or a refusal if it is not a Slack payload (not
    UTF-8, not a form or JSON object, a ``payload`` field that is not a JSON object...).
    Bolt parses in its request's constructor and would answer 500 to what it cannot read;
    this makes it answer nothing at all to such a body."""
    try:
        text = body.decode("utf-8")
        request = BoltRequest(body=text, query=query, headers=dict(headers))
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError):
        # ValueError covers UnicodeDecodeError and json.JSONDecodeError.
        return NOT_A_PAYLOAD
    if not isinstance(request.body, dict):
        return NOT_A_PAYLOAD
    return request


class _WithoutBody(logging.Filter):
    """Rewrites a Bolt log record that would quote a request body to its first words."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self._prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        for prefix in self._prefixes:
            if message.startswith(prefix):
                record.msg = f"{prefix} (request body not logged)"
                record.args = ()
        return True


# Bolt's messages that quote the request body, by the logger that writes them: its
# signature check logs each rejected body in full at INFO, and its dispatcher quotes
# (parts of) the body of requests nothing handled.
_BOLT_BODY_MESSAGES: dict[str, tuple[str, ...]] = {
    "slack_bolt.RequestVerification": ("Invalid request signature detected",),
    "slack_bolt.App": ("Unhandled request", "A global middleware"),
}


def keep_request_bodies_out_of_logs() -> None:
    """Install the filters (idempotent). Filters, not levels: Bolt resets its loggers'
    levels from the root logger whenever an App is built."""
    for name, prefixes in _BOLT_BODY_MESSAGES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _WithoutBody) for f in logger.filters):
            logger.addFilter(_WithoutBody(prefixes))
