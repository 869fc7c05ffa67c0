"""The Slack edge: Bolt listeners, Block Kit rendering and the Slack-backed directory."""

# Slack error codes that mean "try again later" rather than "this will never work".
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "service_unavailable", "fatal_error", "internal_error", "request_timeout"}
)
