"""Modals opened at once, and filled in when the lookups they need are done.

Slack lets a trigger_id open a view for 3 seconds only (after that: ``expired_trigger_id``).
The request and deny modals need lookups first (Slack's directory, group members), and a
lookup that meets a rate limit waits out Retry-After, longer than those 3 seconds. So the
modal opens first, saying it is loading, and is then updated by its id with the form, or
with what went wrong and what to do.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack import blocks

log = logging.getLogger(__name__)


class LoadingModal:
    """One modal the bot opened in its loading state."""

    def __init__(self, client: WebClient, title: str, view: dict[str, Any]) -> None:
        self._client = client
        self.title = title
        self.view_id = str(view["id"])
        self._hash = view.get("hash")

    @classmethod
    def open(cls, client: WebClient, trigger_id: str, title: str) -> LoadingModal:
        """Open the loading view now, before anything slow happens."""
        answer = client.views_open(trigger_id=trigger_id, view=blocks.loading_modal(title))
        return cls(client, title, answer["view"])

    def show(self, view: dict[str, Any]) -> None:
        """Replace what the modal shows with `view`. The hash makes Slack refuse the update
        should the view have changed since the bot last wrote it. A modal the person
        closed while it loaded is no error: there is nobody left to show anything to."""
        try:
            answer = self._client.views_update(view_id=self.view_id, hash=self._hash, view=view)
        except SlackApiError as exc:
            if exc.response.get("error") != "not_found":
                raise
            log.info("modal %s was closed before it was filled in", self.view_id)
            return
        self._hash = answer["view"].get("hash")

    def say(self, text: str) -> None:
        """Show only `text` (mrkdwn, already escaped): why there is no form, what to do."""
        self.show(blocks.notice_modal(self.title, text))
