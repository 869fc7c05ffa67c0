"""Bolt listeners: acknowledge, parse, call the domain, render. Nothing else.

The App runs with ``process_before_response=True``: each listener is an ``ack`` function,
run on the request thread and answered at once, and a lazy function that does the work
on Bolt's executor afterwards, so nothing that may be slow (Slack lookups, the database,
providers) ever stands between Slack and its acknowledgement. Domain errors (JitError)
become an ephemeral message saying what was wrong; anything unexpected is logged with an
id the user can quote (``bot.slack.listeners.common.reply_errors``).

The listeners live by surface in ``bot.slack.listeners``; this is the one ``register``
the composition root (bot/app.py) calls.
"""

from __future__ import annotations

from slack_bolt import App

from bot.clock import Clock
from bot.service import AccessService
from bot.slack.listeners import (
    actions,
    again,
    commands,
    credentials,
    extensions,
    home,
    reviews,
    views,
)
from bot.slack.replay import ReplayGuard


def register(app: App, service: AccessService, clock: Clock) -> None:
    # Before any listener runs: a signed request sent a second time is refused (401).
    app.middleware(ReplayGuard().middleware)
    # First: the Home's listeners take the clicks made on a Home, the DMs' ones the rest.
    home.register(app, service, clock)
    commands.register(app, service, clock)
    actions.register(app, service, clock)
    views.register(app, service, clock)
    reviews.register(app, service, clock)
    extensions.register(app, service, clock)
    again.register(app, service, clock)
    credentials.register(app, service, clock)
