"""The generic ``webhook`` provider: grants and revokes by POSTing a signed JSON event.

- ``target``: what a roles.yaml entry may say;
- ``wire``: the event body, idempotency key and signature (wire format version 1);
- ``answers``: sending one attempt and reading its answer safely;
- ``provider``: `WebhookProvider`, delivering with retries under one `RETRY` policy.
"""

from providers.webhook.answers import RETRY_AFTER_CAP_SECONDS
from providers.webhook.provider import (
    BACKOFF_BASE_SECONDS,
    BACKOFF_CAP_SECONDS,
    RETRY,
    WebhookProvider,
    backoff_delay,
    retry_policy,
)
from providers.webhook.target import WebhookTarget
from providers.webhook.wire import SIGNATURE_VERSION, WebhookEvent, idempotency_key, sign

__all__ = [
    "BACKOFF_BASE_SECONDS",
    "BACKOFF_CAP_SECONDS",
    "RETRY",
    "RETRY_AFTER_CAP_SECONDS",
    "SIGNATURE_VERSION",
    "WebhookEvent",
    "WebhookProvider",
    "WebhookTarget",
    "backoff_delay",
    "idempotency_key",
    "retry_policy",
    "sign",
]
