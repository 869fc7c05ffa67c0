"""The fake Slack Web API now lives in the product (`bot.local.slack`); re-exported here."""

from bot.local.slack.api import (
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    BOT_USER_NAME,
    TEAM_DOMAIN,
    TEAM_ID,
    TRIGGER_TTL,
    FakeSlack,
    SlackCall,
)

__all__ = [
    "APP_ID",
    "BOT_ID",
    "BOT_USER_ID",
    "BOT_USER_NAME",
    "TEAM_DOMAIN",
    "TEAM_ID",
    "TRIGGER_TTL",
    "FakeSlack",
    "SlackCall",
]
