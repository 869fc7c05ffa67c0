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

import dataclasses
import ipaddress
import logging
import time
import urllib.request
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from providers.base import GrantOutcome, Provider, ProviderError
from providers.egress import Resolve, system_resolve, url_problem
from providers.resilience import RetryPolicy
from providers.webhook.answers import (
    RETRY_AFTER_CAP_SECONDS,
    Answer,
    HttpOpener,
    default_opener,
    redact,
    safe_opener,
    send,
)
from providers.webhook.target import WebhookTarget, as_webhook
from providers.webhook.wire import (
    WebhookEvent,
    as_utc,
    event_body,
    idempotency_key,
    sign,
    utc_now,
)

if TYPE_CHECKING:  # annotations only
    from providers.base import GrantContext, Principal, TargetSpec

logger = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
#: How deliveries are retried; each target's ``max_attempts`` (1-10) replaces
#: ``attempts``. Waiting is bounded by ``budget`` (90s) whatever the attempts and
#: Retry-Afters: a wait that would pass it is not started, and the delivery fails as
#: retryable (tests/unit/test_resilience.py).
RETRY = RetryPolicy(
    attempts=5,
    base=BACKOFF_BASE_SECONDS,
    cap=BACKOFF_CAP_SECONDS,
    retry_after_cap=RETRY_AFTER_CAP_SECONDS,
    budget=90.0,
)


def backoff_delay(attempt: int, fraction: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    The ceiling doubles from BACKOFF_BASE_SECONDS up to BACKOFF_CAP_SECONDS; ``fraction``
    in [0, 1) picks a point in its upper half, so retries of many grants spread out
    without ever collapsing to no wait at all.
    """
    return RETRY.backoff(attempt, fraction)


def retry_policy(target: WebhookTarget) -> RetryPolicy:
    """How deliveries to this target are retried."""
    return dataclasses.replace(RETRY, attempts=target.max_attempts)


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
        self._now = now or utc_now
        # Targets without allow_insecure connect only where providers/egress.py allows,
        # checked against each address as resolved at the call (an injected opener, in
        # tests, does its own connecting).
        self._opener = opener if opener is not None else safe_opener(resolve)
        self._insecure_opener = opener if opener is not None else default_opener()

    def validate(self, target: TargetSpec, *, live: bool = False) -> list[str]:
        webhook = as_webhook(target)
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
        webhook = as_webhook(target)
        # The query string is left out: some services put tokens there.
        parts = urlsplit(webhook.url)
        return f"webhook `{webhook.name}` ({parts.scheme}://{parts.netloc}{parts.path})"

    def grant(
        self, principal: Principal, target: TargetSpec, context: GrantContext
    ) -> GrantOutcome:
        webhook = as_webhook(target)
        answer, attempts = self._deliver("grant", principal, webhook, context)
        return GrantOutcome(
            detail=f"accepted with HTTP {answer.status} after {attempts} attempt(s)"
        )

    def revoke(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        self._deliver("revoke", principal, as_webhook(target), context)

    def endpoint(self, target: TargetSpec) -> str:
        # Each receiving service is its own endpoint: one that hangs must not hold up
        # revocations sent to the others.
        parts = urlsplit(as_webhook(target).url)
        return f"{self.name}:{parts.scheme}://{parts.netloc}"

    def is_granted(self, principal: Principal, target: TargetSpec) -> bool | None:
        as_webhook(target)
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
    ) -> tuple[Answer, int]:
        secret = self._secret(target)
        key = idempotency_key(event, principal, target, context)
        label = self.describe(target)
        tries = retry_policy(target).start(self._sleep)
        while True:
            logger.debug(
                "%s: %s for request %s, attempt %d/%d",
                label,
                event,
                context.request_id,
                tries.attempt,
                target.max_attempts,
            )
            answer = self._attempt(event, key, principal, target, context, secret)
            if answer.ok:
                logger.debug("%s: %s accepted with HTTP %s", label, event, answer.status)
                return answer, tries.attempt
            summary = redact(answer.detail(secret), secret)
            where = (label, event, tries.attempt, target.max_attempts, summary)
            delay = None if answer.refused else tries.plan(answer.retry_after)
            if delay is None:
                logger.warning("%s: %s attempt %d/%d failed: %s; giving up", *where)
                raise ProviderError(
                    redact(
                        f"{label}: {event} failed after {tries.attempt} attempt(s); "
                        f"last answer: {answer.summary()}",
                        secret,
                    ),
                    retryable=answer.retryable,
                )
            logger.warning("%s: %s attempt %d/%d failed: %s; retrying in %.2fs", *where, delay)
            tries.sleep(delay)

    def _attempt(
        self,
        event: WebhookEvent,
        key: str,
        principal: Principal,
        target: WebhookTarget,
        context: GrantContext,
        secret: str,
    ) -> Answer:
        """One POST. Each attempt is signed afresh (the receiver rejects stale
        timestamps); the idempotency key is what tells the receiver it is the same
        operation."""
        sent_at = as_utc(self._now())
        timestamp = int(sent_at.timestamp())
        body = event_body(event, key, principal, target, context, sent_at)
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
        opener = self._insecure_opener if target.allow_insecure else self._opener
        return send(opener, request, target.timeout_seconds, sent_at)


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
