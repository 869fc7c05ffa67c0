"""`WebhookReceiver` now lives in the product (`bot.local.receiver`); re-exported here."""

from bot.local.receiver import ReceivedRequest, WebhookReceiver

__all__ = ["ReceivedRequest", "WebhookReceiver"]
