"""Who the embedded workspace and its bot are, and the limits Slack enforces on callers.

Kept apart from the code that applies them so a test, the simulator and local mode's page
name the same workspace and the same lifetimes.
"""

from __future__ import annotations

__all__ = [
    "APP_ID",
    "BOT_ID",
    "BOT_USER_ID",
    "BOT_USER_NAME",
    "MALFORMED_ERRORS",
    "RESPONSE_URL_TTL",
    "RESPONSE_URL_USES",
    "TEAM_DOMAIN",
    "TEAM_ID",
    "TEXT_MAX",
    "TRIGGER_TTL",
]

# Identity of the workspace and of the bot, as reported by auth.test.
TEAM_ID = "T0001"
TEAM_DOMAIN = "jit-test"
APP_ID = "A0001"
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
BOT_USER_NAME = "jit-bot"

# Slack's lifetimes: a trigger_id can open a view within 3 s of the interaction; a
# response_url takes 5 posts within 30 minutes.
TRIGGER_TTL = 3.0
RESPONSE_URL_TTL = 30 * 60.0
RESPONSE_URL_USES = 5
# Slack cuts chat.postMessage text at 40,000 characters and refuses longer.
TEXT_MAX = 40_000
# Errors that mean the caller sent something Slack could never accept.
MALFORMED_ERRORS = frozenset(
    {"invalid_blocks", "invalid_blocks_format", "invalid_arguments", "no_text", "msg_too_long"}
)
