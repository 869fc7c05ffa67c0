"""The one door to the local workspace's parts: the embedded Slack Web API, the Slack
side that signs commands and clicks, and the webhook receiver. Everything else in
bot/local imports them from here, so moving them is a change to this file only."""

from __future__ import annotations

# moves to bot.local.* when local-parts lands
from tests.fakes.slack_api import BOT_USER_ID, BOT_USER_NAME, TEAM_ID
from tests.fakes.slack_api import FakeSlack as LocalSlack
from tests.fakes.slack_client import Reply, SlackSim, select_value, text_value
from tests.fakes.webhook_receiver import WebhookReceiver

__all__ = [
    "BOT_USER_ID",
    "BOT_USER_NAME",
    "TEAM_ID",
    "LocalSlack",
    "Reply",
    "SlackSim",
    "WebhookReceiver",
    "select_value",
    "text_value",
]
