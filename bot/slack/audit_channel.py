"""Read the audit channel back (``conversations.history``, every page) and collect the
seals the bot posted: each event's id and hash, as ``blocks.audit_line`` ends its line
(``bot.slack.audit_posts``: a section of its own in a post of several)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.audit_witness import Seal
from bot.slack import audit_posts, retry_after

# The end of the bot's own audit line: " · #<id> `<hash>`", or that on a line of its own after
# quoted text. Anchored at the end, which the bot writes after truncating the rest, so text
# quoted inside a line cannot pass for it.
_SEAL = re.compile(r"(?:\A|\n| · )#(\d+) `([0-9a-f]{12,64})`\Z")
_PAGE_SIZE = 200
_MAX_RATE_LIMITED = 10
_FIXES = {
    "not_in_channel": "invite the bot to the channel (/invite @jit-bot)",
    "channel_not_found": "set JIT_AUDIT_CHANNEL to the channel's id (C…), and invite the bot",
    "missing_scope": "add the channels:history (groups:history for a private channel) "
    "scope to the app (slack-manifest.yaml) and reinstall it",
}


class ChannelUnreadable(Exception):
    """The audit channel could not be read; ``str(error)`` says why and how to fix it."""


def read_seals(
    client: WebClient, channel: str, sleep: Callable[[float], None] = time.sleep
) -> list[Seal]:
    """Every seal the bot itself posted to ``channel``; posts by anyone else are ignored,
    however they look."""
    me = _call(client.auth_test, sleep)
    seals: list[Seal] = []
    cursor: str | None = None
    while True:
        page = _call(partial(_page, client, channel, cursor), sleep)
        for message in page.get("messages") or []:
            if message.get("bot_id") != me.get("bot_id"):
                continue
            for line in audit_posts.lines_of(message):
                found = _SEAL.search(line)
                if found:
                    seals.append(Seal(int(found[1]), found[2]))
        cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
        if not page.get("has_more") or not cursor:
            return seals


def _page(client: WebClient, channel: str, cursor: str | None) -> Any:
    return client.conversations_history(channel=channel, limit=_PAGE_SIZE, cursor=cursor)


def _call(call: Callable[[], Any], sleep: Callable[[float], None]) -> dict[str, Any]:
    for _ in range(_MAX_RATE_LIMITED):
        try:
            return dict(call().data)
        except SlackApiError as exc:
            error = exc.response.get("error")
            if exc.response.status_code == 429:
                sleep(retry_after(exc))
                continue
            fix = _FIXES.get(str(error), "check SLACK_BOT_TOKEN and JIT_AUDIT_CHANNEL")
            raise ChannelUnreadable(f"Slack answered {error}: {fix}.") from None
        except OSError as exc:  # refused, reset, timed out, unresolvable (SLACK_API_URL)
            raise ChannelUnreadable(f"Slack could not be reached: {exc}") from None
    raise ChannelUnreadable(f"Slack kept answering 429 (rate limited) {_MAX_RATE_LIMITED} times.")
