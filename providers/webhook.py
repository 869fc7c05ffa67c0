"""The generic ``webhook`` provider: grants and revokes by POSTing a signed JSON event.

For anything jit-bot has no native module for (Grafana, a VPN, an internal admin panel),
the operator runs a small service that receives ``grant`` and ``revoke`` events and
applies them. The bot cannot ask that service what it holds, so ``is_granted`` is None.

Wire format, version 1 (one POST per attempt, to the target's ``url``)::

    Content-Type:    application/json
    User-Agent:      jit-bot
    Idempotency-Key: <sha256 hex; the same for every attempt of one operation>
    X-JIT-Timestamp: <unix seconds when this attempt was sent>
    X-JIT-Signature: v2=<hex HMAC-SHA256(key, "v2" LF timestamp LF url LF raw body)>

``url`` is the target's ``url`` exactly as written in roles.yaml: the audience. A receiver
computes it from the URL it is known by, never from the request, so an event signed for
one receiver fails at another that shares the key. (LF is one newline, b"\n"; neither
the timestamp nor a URL can contain one.)

    {"event": "grant" | "revoke", "idempotency_key": "...", "request_id": "...",
     "principal": {"email": "...", "slack_user_id": "..."}, "role": "...",
     "environment": "...", "reason": "...", "target": {"name": "..."},
     "expires_at": "2024-05-01T12:00:00Z", "sent_at": "2024-05-01T10:00:00Z"}

A receiver should reject a bad signature or a timestamp far from its own clock, apply each
idempotency key at most once (answering 2xx to a replay), and answer 2xx only once the
access is in effect (grant) or gone (revoke). Anything else is retried with exponential
backoff and then fails the grant. What a receiver answers is logged (one line, truncated)
but never repeated in Slack: it is text from outside the bot.

Plain ``http`` and loopback, link-local or cloud metadata addresses are refused (when the
config is checked, and again at each connection, see providers/egress.py) unless the
target sets ``allow_insecure: true``.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Annotated, Any, Literal, Protocol
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from providers.base import (
    GrantContext,
    GrantOutcome,
    Principal,
    Provider,
    ProviderError,
    TargetSpec,
)
from providers.egress import Resolve, UnsafeAddress, guarded_opener, system_resolve, url_problem

logger = logging.getLogger(__name__)

WebhookEvent = Literal["grant", "revoke"]

SIGNATURE_VERSION = "v2"
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
RETRY_AFTER_CAP_SECONDS = 60.0
# How much of a receiver's answer the log keeps (Slack gets none of it).
LOGGED_BODY_CHARS = 500

# Enough to show a useful error snippet; an error page of megabytes is not read whole.
_MAX_BODY_BYTES = 4096
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})
# Bumping this changes every idempotency key, so only do it with a new wire version.
_IDEMPOTENCY_NAMESPACE = "jit-bot/webhook/v1"


class WebhookTarget(TargetSpec):
    """One webhook entry of a role's environment in roles.yaml.

    ``name`` is the access the webhook stands for ("grafana-admin"); approvers see it and
    the receiver gets it as ``target.name``. ``secret_env`` names the environment variable
    holding the HMAC key, so the key itself never lives in roles.yaml.
    """

    provider: Literal["webhook"]
    name: Annotated[str, Field(min_length=1, max_length=100)]
    url: Annotated[str, Field(min_length=1, max_length=2048)]
    secret_env: Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$", max_length=128)]
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 10
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 5
    # Lets the url use plain http or reach loopback, link-local or metadata addresses
    # (a receiver on this host, in tests); see providers/egress.py.
    allow_insecure: bool = False

    def key(self) -> str:
        # Where events may be sent from is not part of what is granted; leaving it out
        # keeps keys (and idempotency keys) of grants made before the setting existed.
        fields = self.model_dump(mode="json", exclude={"allow_insecure"})
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))

    @field_validator("name")
    @classmethod
    def _name_is_one_clean_line(cls, value: str) -> str:
        # The name is rendered inside backticks on one line of a Slack message.
        if value != value.strip() or not value.isprintable() or "`" in value:
            raise ValueError(
                "must be one line of printable text without leading or trailing spaces "
                "or backticks, for example grafana-admin"
            )
        return value

    @field_validator("url")
    @classmethod
    def _url_is_plain_http(cls, value: str) -> str:
        if any(ch.isspace() or not ch.isprintable() for ch in value):
            raise ValueError("must not contain spaces or control characters")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise ValueError(
                f"must be an http:// or https:// URL, not scheme {parts.scheme or '(none)'!r}"
            )
        if not parts.hostname:
            raise ValueError("must name a host, for example https://hooks.example.com/jit")
        if parts.username is not None or parts.password is not None:
            # Credentials in the URL would end up in roles.yaml, logs and Slack messages.
            raise ValueError(
                "must not carry credentials; put the HMAC key in the variable named by secret_env"
            )
        if parts.fragment:
            raise ValueError("must not have a #fragment")
        try:
            parts.port  # noqa: B018 - urlsplit only checks the port when it is read
        except ValueError as exc:
            raise ValueError(f"has an invalid port: {exc}") from None
        return value


class HttpResponse(Protocol):
    """The part of an HTTP response the provider reads (urllib's responses fit)."""

    status: int
    headers: Message

    def read(self, amt: int, /) -> bytes: ...

    def close(self) -> None: ...


class HttpOpener(Protocol):
    """Sends one request; ``urllib.request.OpenerDirector`` fits. Non-2xx answers may be
    returned or raised as ``urllib.error.HTTPError``; both are handled."""

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


def _default_opener() -> HttpOpener:
    return urllib.request.build_opener(_RefuseRedirects())


def _guarded_opener(resolve: Resolve) -> HttpOpener:
    return guarded_opener(resolve, _RefuseRedirects())


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _as_utc(value: datetime) -> datetime:
    # A naive datetime here is a bug upstream; the bot stores UTC, so read it as UTC
    # rather than as the host's local time.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _iso_utc(value: datetime) -> str:
    """ISO-8601 in UTC with a ``Z``, to the second (truncating moves expiry earlier)."""
    return _as_utc(value).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_webhook(target: TargetSpec) -> WebhookTarget:
    if not isinstance(target, WebhookTarget):
        raise TypeError(f"the webhook provider cannot handle a {type(target).__name__}")
    return target


def idempotency_key(
    event: WebhookEvent, principal: Principal, target: WebhookTarget, context: GrantContext
) -> str:
    """The key that marks one operation: the same for every attempt and every repeated
    call of this event for this request, target and person; different otherwise."""
    identity = [_IDEMPOTENCY_NAMESPACE, event, context.request_id, target.key(), principal.email]
    return hashlib.sha256(json.dumps(identity).encode("utf-8")).hexdigest()


def sign(secret: str, timestamp: int, url: str, body: bytes) -> str:
    """The ``X-JIT-Signature`` value for a body sent to ``url`` at ``timestamp`` (unix
    seconds)."""
    message = f"{SIGNATURE_VERSION}\n{timestamp}\n{url}\n".encode() + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def backoff_delay(attempt: int, fraction: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    The ceiling doubles from BACKOFF_BASE_SECONDS up to BACKOFF_CAP_SECONDS; ``fraction``
    in [0, 1) picks a point in its upper half, so retries of many grants spread out
    without ever collapsing to no wait at all.
    """
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    return ceiling / 2 + ceiling / 2 * fraction


@dataclass(frozen=True)
class _Answer:
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
            return f"no answer ({_one_line(_redact(self.error_detail or self.error, secret))})"
        snippet = _one_line(_redact(self.body, secret))
        return f"HTTP {self.status}: {snippet}" if snippet else f"HTTP {self.status}"


class WebhookProvider(Provider):
    """Delivers signed grant/revoke events to webhook targets.

    ``environ`` is where ``secret_env`` names are looked up (``os.environ`` in production),
    read on every call so a rotated key is picked up. ``sleep`` and ``now`` are injected so
    tests neither wait nor depend on the wall clock; ``opener`` sends the HTTP request.
    """

    name = "webhook"
    target_model = WebhookTarget

    def __init__(
        self,
        environ: Mapping[str, str],
        *,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] | None = None,
        opener: HttpOpener | None = None,
        resolve: Resolve = system_resolve,
    ) -> None:
        self._environ = environ
        self._sleep = sleep
        self._now = now or _utc_now
        # Targets without allow_insecure connect only where providers/egress.py allows,
        # checked against each address as resolved at the call (an injected opener, in
        # tests, does its own connecting).
        self._opener = opener if opener is not None else _guarded_opener(resolve)
        self._insecure_opener = opener if opener is not None else _default_opener()

    def validate(self, target: TargetSpec, *, live: bool = False) -> list[str]:
        webhook = _as_webhook(target)
        self._secret(webhook)
        problem = None if webhook.allow_insecure else url_problem(webhook.url)
        if problem:
            raise ProviderError(
                f"webhook `{webhook.name}`: url {problem}; expected an https:// URL of the "
                "receiver (or allow_insecure: true on this target, if that is really meant)"
            )
        # There is no standard health endpoint to call, so ``live`` adds nothing; sending
        # a real event just to test would change access.
        warnings = []
        parts = urlsplit(webhook.url)
        if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
            warnings.append(
                f"webhook `{webhook.name}` uses plain http to {parts.hostname}: grant events "
                "travel unencrypted; use https"
            )
        return warnings

    def describe(self, target: TargetSpec) -> str:
        webhook = _as_webhook(target)
        # The query string is left out: some services put tokens there.
        parts = urlsplit(webhook.url)
        return f"webhook `{webhook.name}` ({parts.scheme}://{parts.netloc}{parts.path})"

    def grant(
        self, principal: Principal, target: TargetSpec, context: GrantContext
    ) -> GrantOutcome:
        webhook = _as_webhook(target)
        answer, attempts = self._deliver("grant", principal, webhook, context)
        return GrantOutcome(
            detail=f"accepted with HTTP {answer.status} after {attempts} attempt(s)"
        )

    def revoke(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        self._deliver("revoke", principal, _as_webhook(target), context)

    def endpoint(self, target: TargetSpec) -> str:
        # Each receiving service is its own endpoint: one that hangs must not hold up
        # revocations sent to the others.
        parts = urlsplit(_as_webhook(target).url)
        return f"{self.name}:{parts.scheme}://{parts.netloc}"

    def is_granted(self, principal: Principal, target: TargetSpec) -> bool | None:
        _as_webhook(target)
        return None

    def _secret(self, target: WebhookTarget) -> str:
        secret = self._environ.get(target.secret_env, "")
        if not secret:
            raise ProviderError(
                f"webhook `{target.name}`: the environment variable {target.secret_env} is "
                "not set or empty; it must hold this webhook's HMAC key"
            )
        return secret

    def _deliver(
        self,
        event: WebhookEvent,
        principal: Principal,
        target: WebhookTarget,
        context: GrantContext,
    ) -> tuple[_Answer, int]:
        secret = self._secret(target)
        key = idempotency_key(event, principal, target, context)
        label = self.describe(target)
        answer = _Answer(status=None, error="not attempted")
        for attempt in range(1, target.max_attempts + 1):
            # Each attempt is signed afresh (the receiver rejects stale timestamps); the
            # idempotency key is what tells the receiver it is the same operation.
            sent_at = _as_utc(self._now())
            timestamp = int(sent_at.timestamp())
            body = _event_body(event, key, principal, target, context, sent_at)
            request = urllib.request.Request(
                target.url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": "jit-bot",
                    "Idempotency-Key": key,
                    "X-JIT-Timestamp": str(timestamp),
                    "X-JIT-Signature": sign(secret, timestamp, target.url, body),
                },
            )
            logger.debug(
                "%s: %s for request %s, attempt %d/%d",
                label,
                event,
                context.request_id,
                attempt,
                target.max_attempts,
            )
            opener = self._insecure_opener if target.allow_insecure else self._opener
            answer = self._send(opener, request, target.timeout_seconds, sent_at)
            if answer.ok:
                logger.debug("%s: %s accepted with HTTP %s", label, event, answer.status)
                return answer, attempt
            summary = _redact(answer.detail(secret), secret)
            if attempt == target.max_attempts or answer.refused:
                logger.warning(
                    "%s: %s attempt %d/%d failed: %s; giving up",
                    label,
                    event,
                    attempt,
                    target.max_attempts,
                    summary,
                )
                break
            delay = self._delay(attempt, answer)
            logger.warning(
                "%s: %s attempt %d/%d failed: %s; retrying in %.2fs",
                label,
                event,
                attempt,
                target.max_attempts,
                summary,
                delay,
            )
            self._sleep(delay)
        raise ProviderError(
            _redact(
                f"{label}: {event} failed after {target.max_attempts} attempt(s); "
                f"last answer: {answer.summary()}",
                secret,
            ),
            retryable=answer.retryable,
        )

    def _send(
        self,
        opener: HttpOpener,
        request: urllib.request.Request,
        timeout: float,
        sent_at: datetime,
    ) -> _Answer:
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
                return _Answer(status=exc.code)
            finally:
                exc.close()
        except (OSError, http.client.HTTPException) as exc:
            # URLError (refused, DNS), TimeoutError and dropped connections all land here:
            # the receiver may or may not have applied the event, so it is retried with
            # the same idempotency key.
            return _network_failure(exc)

    def _delay(self, attempt: int, answer: _Answer) -> float:
        if answer.retry_after is not None:
            return answer.retry_after
        return backoff_delay(attempt, random.random())


def _answer_of(
    status: int, headers: Message | None, read: Callable[[int], bytes], sent_at: datetime
) -> _Answer:
    body = read(_MAX_BODY_BYTES).decode("utf-8", errors="replace")
    retry_after = None
    if status in _RETRY_AFTER_STATUSES and headers is not None:
        retry_after = _parse_retry_after(headers.get("Retry-After"), sent_at)
    return _Answer(status=status, body=body, retry_after=retry_after)


def _network_failure(exc: OSError | http.client.HTTPException) -> _Answer:
    """No HTTP answer. Only the kind of failure (and the system's words for it) may reach
    Slack: a malformed status line, say, is the receiver's text."""
    reason: object = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    detail = f"{type(reason).__name__}: {reason}"
    if isinstance(reason, UnsafeAddress):
        return _Answer(status=None, error=str(reason), error_detail=detail, refused=True)
    if isinstance(reason, str):
        public = reason  # urllib's own words ("no host given")
    elif isinstance(reason, OSError) and reason.strerror:
        public = f"{type(reason).__name__}: {reason.strerror}"
    else:
        public = type(reason).__name__
    return _Answer(status=None, error=public, error_detail=detail)


def _one_line(text: str) -> str:
    """``text`` as one line of at most LOGGED_BODY_CHARS, so an answer cannot forge log
    lines: whitespace runs become one space, other control characters are escaped."""
    flat = " ".join(text.split())
    clipped = flat[:LOGGED_BODY_CHARS]
    shown = "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in clipped
    )
    return shown + "…" if len(flat) > LOGGED_BODY_CHARS else shown


def _parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), capped; None when
    absent or unreadable, so the normal backoff applies."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (_as_utc(when) - now).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_SECONDS)


def _event_body(
    event: WebhookEvent,
    key: str,
    principal: Principal,
    target: WebhookTarget,
    context: GrantContext,
    sent_at: datetime,
) -> bytes:
    payload = {
        "event": event,
        "idempotency_key": key,
        "request_id": context.request_id,
        "principal": {"email": principal.email, "slack_user_id": principal.slack_user_id},
        "role": context.role,
        "environment": context.environment,
        "reason": context.reason,
        "target": {"name": target.name},
        "expires_at": _iso_utc(context.expires_at),
        "sent_at": _iso_utc(sent_at),
    }
    # ASCII-only JSON, so "the body" is the same byte string in every language.
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("ascii")


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _redact(text: str, secret: str) -> str:
    # Nothing the provider builds contains the key, but an answer body could echo it.
    return text.replace(secret, "[redacted]") if secret else text
