"""How the webhook provider sends one event and reads what came back: openers that keep
connections alive (providers/webhook/keepalive.py) and refuse redirects (and, unless a
target allows it, unsafe addresses: providers/egress.py), and `Answer`, the status or
network failure of one attempt, with what of it may be logged or shown."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from typing import Any, Protocol

from providers.egress import Resolve, UnsafeAddress, guarded_opener
from providers.resilience import parse_retry_after
from providers.webhook.keepalive import (
    KeepAliveOpener,
    direct_connect,
    guarded_connect,
    tls_context,
)

RETRY_AFTER_CAP_SECONDS = 60.0
# How much of a receiver's answer the log keeps (Slack gets none of it).
LOGGED_BODY_CHARS = 500

# Enough to show a useful error snippet; an error page of megabytes is not read whole.
_MAX_BODY_BYTES = 4096
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})


class HttpResponse(Protocol):
    """The part of an HTTP response the provider reads (urllib's responses fit)."""

    status: int
    headers: Message

    def read(self, amt: int, /) -> bytes: ...

    def close(self) -> None: ...


class HttpOpener(Protocol):
    """Sends one request; ``urllib.request.OpenerDirector`` and `KeepAliveOpener` fit.
    Non-2xx answers may be returned (`KeepAliveOpener`) or raised as
    ``urllib.error.HTTPError`` (urllib, which `KeepAliveOpener` hands proxied requests
    to); both are handled."""

    def open(self, request: urllib.request.Request, /, *, timeout: float) -> HttpResponse: ...


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """urllib turns a redirected POST into a GET without the body, which a receiver would
    answer 200 without granting anything; a redirect is therefore a failure."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


def default_opener() -> KeepAliveOpener:
    """For targets with ``allow_insecure``: any address, certificates still verified."""
    return KeepAliveOpener(
        direct_connect(tls_context()), fallback=urllib.request.build_opener(_RefuseRedirects())
    )


def safe_opener(resolve: Resolve) -> KeepAliveOpener:
    """Only to addresses providers/egress.py allows, vetted at each new connection."""
    return KeepAliveOpener(
        guarded_connect(resolve, tls_context()),
        fallback=guarded_opener(resolve, _RefuseRedirects()),
    )


@dataclass(frozen=True)
class Answer:
    """What one attempt came back with: an HTTP status, or a network error."""

    status: int | None
    body: str = ""
    retry_after: float | None = None
    error: str = ""  # what went wrong in the bot's own words
    error_detail: str = ""  # the same with what the other end said, for the log
    refused: bool = False  # the bot would not connect (providers/egress.py)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        if self.refused:
            return False
        if self.status is None:
            return True
        return self.status >= 500 or self.status in _RETRYABLE_CLIENT_STATUSES

    def summary(self) -> str:
        """For errors that reach Slack: nothing the receiver wrote."""
        if self.status is None:
            return f"no answer ({self.error})"
        return f"HTTP {self.status} (the receiver's answer is in jit-bot's log)"

    def detail(self, secret: str) -> str:
        """For the log: the receiver's answer too, on one line and truncated. The key is
        taken out first: flattened or cut, an echo of it would no longer match."""
        if self.status is None:
            return f"no answer ({one_line(redact(self.error_detail or self.error, secret))})"
        snippet = one_line(redact(self.body, secret))
        return f"HTTP {self.status}: {snippet}" if snippet else f"HTTP {self.status}"


def send(
    opener: HttpOpener,
    request: urllib.request.Request,
    timeout: float,
    sent_at: datetime,
) -> Answer:
    """One attempt: the answer, or the network failure that took its place."""
    try:
        response = opener.open(request, timeout=timeout)
        try:
            return _answer_of(response.status, response.headers, response.read, sent_at)
        finally:
            response.close()
    except urllib.error.HTTPError as exc:
        try:
            return _answer_of(exc.code, exc.headers, exc.read, sent_at)
        except (OSError, http.client.HTTPException):
            return Answer(status=exc.code)
        finally:
            exc.close()
    except (OSError, http.client.HTTPException) as exc:
        # URLError (refused, DNS), TimeoutError and dropped connections all land here:
        # the receiver may or may not have applied the event, so it is retried with
        # the same idempotency key.
        return _network_failure(exc)


def _answer_of(
    status: int, headers: Message | None, read: Callable[[int], bytes], sent_at: datetime
) -> Answer:
    # One read of at most the cap: a longer body is left unread, and the opener then
    # closes that connection rather than pool it (providers/webhook/keepalive.py).
    body = read(_MAX_BODY_BYTES).decode("utf-8", errors="replace")
    retry_after = None
    if status in _RETRY_AFTER_STATUSES and headers is not None:
        retry_after = _parse_retry_after(headers.get("Retry-After"), sent_at)
    return Answer(status=status, body=body, retry_after=retry_after)


def _network_failure(exc: OSError | http.client.HTTPException) -> Answer:
    """No HTTP answer. Only the kind of failure (and the system's words for it) may reach
    Slack: a malformed status line, say, is the receiver's text."""
    reason: object = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    detail = f"{type(reason).__name__}: {reason}"
    if isinstance(reason, UnsafeAddress):
        return Answer(status=None, error=str(reason), error_detail=detail, refused=True)
    if isinstance(reason, str):
        public = reason  # urllib's own words ("no host given")
    elif isinstance(reason, OSError) and reason.strerror:
        public = f"{type(reason).__name__}: {reason.strerror}"
    else:
        public = type(reason).__name__
    return Answer(status=None, error=public, error_detail=detail)


def one_line(text: str) -> str:
    """``text`` as one line of at most LOGGED_BODY_CHARS, so an answer cannot forge log
    lines: whitespace runs become one space, other control characters are escaped."""
    flat = " ".join(text.split())
    clipped = flat[:LOGGED_BODY_CHARS]
    shown = "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in clipped
    )
    return shown + "…" if len(flat) > LOGGED_BODY_CHARS else shown


def _parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header, capped; None when absent or unreadable, so the
    normal backoff applies."""
    return parse_retry_after(value, cap=RETRY_AFTER_CAP_SECONDS, now=now)


def redact(text: str, secret: str) -> str:
    # Nothing the provider builds contains the key, but an answer body could echo it.
    return text.replace(secret, "[redacted]") if secret else text
