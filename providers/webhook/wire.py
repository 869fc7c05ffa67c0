"""The webhook wire format, version 1: the event body, its idempotency key and its
signature (see providers/webhook/provider.py for the whole description)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Literal

from providers.base import GrantContext, Principal
from providers.webhook.target import WebhookTarget

WebhookEvent = Literal["grant", "revoke"]

SIGNATURE_VERSION = "v2"
# Bumping this changes every idempotency key, so only do it with a new wire version.
_IDEMPOTENCY_NAMESPACE = "jit-bot/webhook/v1"


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    # A naive datetime here is a bug upstream; the bot stores UTC, so read it as UTC
    # rather than as the host's local time.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def iso_utc(value: datetime) -> str:
    """ISO-8601 in UTC with a ``Z``, to the second (truncating moves expiry earlier)."""
    return as_utc(value).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def event_body(
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
        "expires_at": iso_utc(context.expires_at),
        "sent_at": iso_utc(sent_at),
    }
    # ASCII-only JSON, so "the body" is the same byte string in every language.
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("ascii")
