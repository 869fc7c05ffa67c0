"""An embedded Slack Web API: the workspace local mode and the tests talk to.

`LocalSlack` serves the Web API methods the bot uses over real HTTP; its parts are split
by concern: `wire` (server, handler, envelopes), `state` (the workspace and its lock),
`records` (reading it), `feed` (the change feed), `chat`, `views` and `directory` (method
families), `tickets` (trigger_id and response_url rules) and `block_kit` (what Slack
refuses in blocks and views).
"""

from bot.local.slack.api import LocalSlack
from bot.local.slack.feed import ChangeKind
from bot.local.slack.identity import (
    APP_ID,
    BOT_ID,
    BOT_USER_ID,
    BOT_USER_NAME,
    TEAM_DOMAIN,
    TEAM_ID,
    TRIGGER_TTL,
)
from bot.local.slack.wire import SlackCall

__all__ = [
    "APP_ID",
    "BOT_ID",
    "BOT_USER_ID",
    "BOT_USER_NAME",
    "TEAM_DOMAIN",
    "TEAM_ID",
    "TRIGGER_TTL",
    "ChangeKind",
    "LocalSlack",
    "SlackCall",
]
