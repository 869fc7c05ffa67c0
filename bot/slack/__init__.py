"""The Slack edge: Bolt listeners, Block Kit rendering and the Slack-backed directory."""

from slack_sdk.errors import SlackApiError

# Slack error codes that mean "try again later" rather than "this will never work".
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "service_unavailable", "fatal_error", "internal_error", "request_timeout"}
)


def retry_after(exc: SlackApiError) -> float:
    """Seconds a 429 asks to wait (its Retry-After header), 1 when it says nothing usable."""
    try:
        return max(float(exc.response.headers.get("Retry-After", 1) or 1), 0.0)
    except (TypeError, ValueError):
        return 1.0
