"""Reading the embedded workspace: what the bot called, posted, opened and answered.

Snapshots only (deep copies taken under the lock), so a reader — a test, or local mode's
page — can never change the workspace by holding on to what it read.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, TypeVar

from bot.local.slack.feed import ChangeKind
from bot.local.slack.state import WorkspaceState
from bot.local.slack.wire import SlackCall

__all__ = ["Records"]

T = TypeVar("T")


class Records(WorkspaceState):
    """Read access to the recorded calls, messages, views and responses; `reset`."""

    def reset(self) -> None:
        """Forget recorded calls, responses, messages and views. The user directory and
        tokens are kept; the change feed keeps counting."""
        with self._lock:
            self._calls.clear()
            self._responses.clear()
            self._messages.clear()
            self._ephemerals.clear()
            self._views.clear()
            self._homes.clear()
            self._used_trigger_ids.clear()
            self._internal_errors.clear()
            self._malformed.clear()

    @property
    def calls(self) -> list[SlackCall]:
        """Every request received so far, oldest first (a snapshot)."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[SlackCall]:
        """Calls of `method` that were answered ``ok``."""
        with self._lock:
            return [c for c in self._calls if c.method == method and c.ok]

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Posted messages, oldest first, each ``{channel, ts, text, blocks, thread_ts,
        updates}`` holding the *latest* text/blocks; `updates` lists the chat.update params
        applied, in order."""
        return self._copied(lambda: self._messages)

    def message(self, channel: str, ts: str) -> dict[str, Any]:
        """The message at (`channel`, `ts`); a ``U…`` channel means the DM with that user."""
        wanted = self._dm_channel(channel)
        for msg in self.messages:
            if msg["channel"] == wanted and msg["ts"] == ts:
                return msg
        raise KeyError(f"no message {ts} in {channel}")

    def messages_in(self, channel: str) -> list[dict[str, Any]]:
        """Messages in `channel` (a ``U…`` id means the DM with that user), oldest first."""
        wanted = self._dm_channel(channel)
        return [m for m in self.messages if m["channel"] == wanted]

    @property
    def ephemerals(self) -> list[dict[str, Any]]:
        """Ephemeral messages, each ``{channel, user, ts, text, blocks}``."""
        return self._copied(lambda: self._ephemerals)

    @property
    def views(self) -> list[dict[str, Any]]:
        """Views opened/pushed, oldest first, as Slack last returned them (with ``id``,
        ``hash``, ``callback_id``, ``private_metadata``, ``blocks``, ``state``)."""
        return self._copied(lambda: list(self._views.values()))

    def close_view(self, view_id: str) -> None:
        """The user closes modal `view_id` (its X or Cancel): Slack keeps no such view, so
        views.update of it answers ``not_found``. It stays readable in `views`."""
        with self._lock:
            self._closed_views.add(view_id)
            self._publish(ChangeKind.VIEW_CLOSED, {"view_id": view_id})

    def home(self, user_id: str) -> dict[str, Any] | None:
        """The Home tab `user_id` sees now, as views.publish last set it; None before any."""
        return self._copied(lambda: self._views.get(self._homes.get(user_id, "")))

    def view(self, view_id: str) -> dict[str, Any]:
        """The current state of view `view_id`."""
        return self._copied(lambda: self._views[view_id])

    @property
    def responses(self) -> list[dict[str, Any]]:
        """JSON bodies POSTed to response URLs, each with ``_url_name`` added."""
        return self._copied(lambda: self._responses)

    @property
    def malformed(self) -> list[dict[str, Any]]:
        """Calls refused because what they sent could never be accepted (invalid blocks or
        views, missing arguments or text, a message too long) and response_url posts Slack
        refused (a body it cannot take, a URL unknown, used up or expired), each
        ``{method, error, messages}``; should be empty."""
        return self._copied(lambda: self._malformed)

    @property
    def internal_errors(self) -> list[BaseException]:
        """Exceptions raised inside the embedded API itself (answered as HTTP 500)."""
        with self._lock:
            return list(self._internal_errors)

    def _copied(self, read: Callable[[], T]) -> T:
        """A deep copy of what ``read`` returns, read and copied under the lock."""
        with self._lock:
            return copy.deepcopy(read())
