"""Logging for every command: the level operators ask for, never low enough to print
credentials.
"""

from __future__ import annotations

import logging

# Loggers that write credentials at DEBUG, so they never go below INFO: botocore logs each
# request's headers and canonical request (X-Amz-Security-Token) and each response body
# (an STS AssumeRole answer holds SecretAccessKey and SessionToken).
# slack_sdk's Socket Mode client logs each envelope it receives (a request body) at DEBUG.
# slack_sdk.web and slack_sdk.webhook log the bodies they send (typed reasons, raw) and
# response_url capability links at DEBUG.
LEAKY_AT_DEBUG = (
    "boto3",
    "botocore",
    "slack_sdk.socket_mode",
    "slack_sdk.web",
    "slack_sdk.webhook",
)


def configure_logging(level: str) -> None:
    """Log at ``level`` (JIT_LOG_LEVEL), except where that would print secrets."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # APScheduler logs each run of a periodic job at INFO: noise every few seconds.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    floor = max(logging.INFO, logging.getLogger().getEffectiveLevel())
    for name in LEAKY_AT_DEBUG:
        logging.getLogger(name).setLevel(floor)
