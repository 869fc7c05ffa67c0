"""The embedded workspace's state: directory, conversations, records, clock and ids.

`WorkspaceState` owns every piece of state and the one lock that guards it; the method
families (`chat`, `views`, `directory`) and the trigger/response_url rules (`tickets`)
are mixins over it, so each reads and changes the same workspace under the same lock.
Only this module creates state; the others use it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from bot.local.slack.feed import ChangeFeed, ChangeKind
from bot.local.slack.identity import TEAM_ID
from bot.local.slack.wire import SlackCall, SlackError

__all__ = ["WorkspaceState"]

# First message ts handed out; later ones grow by 100 µs, like real (strictly increasing) ts.
_TS_BASE_MICROS = 1_700_000_000_000_000
_TS_STEP_MICROS = 100


class WorkspaceState:
    """Users, channels, user groups, messages, views, responses, calls and the clock."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._skew = 0.0
        self._lock = threading.RLock()
        # Notified whenever something is recorded, so waits wake up promptly.
        self._changed = threading.Condition(self._lock)
        self._feed = ChangeFeed()
        self._calls: list[SlackCall] = []
        self._responses: list[dict[str, Any]] = []
        self._messages: list[dict[str, Any]] = []
        self._ephemerals: list[dict[str, Any]] = []
        self._views: dict[str, dict[str, Any]] = {}
        self._used_trigger_ids: set[str] = set()
        self._triggers: dict[str, float] = {}  # trigger_id -> when issued
        self._response_urls: dict[str, list[float]] = {}  # name -> [issued at, uses]
        self._channels: set[str] = set()
        self._homes: dict[str, str] = {}  # user id -> id of their Home tab view
        self._closed_views: set[str] = set()
        self._malformed: list[dict[str, Any]] = []
        self._users: dict[str, dict[str, Any]] = {}
        self._usergroups: dict[str, dict[str, Any]] = {}
        self._internal_errors: list[BaseException] = []
        # Never reset: ts and ids stay unique across `reset()`, as they would on Slack.
        self._ts_counter = itertools.count(1)
        self._id_counter = itertools.count(1)
        self._response_url_counter = itertools.count(1)

    # ------------------------------------------------------------------ time

    def now(self) -> float:
        """Seconds on the workspace's clock (only differences matter)."""
        with self._lock:
            return self._clock() + self._skew

    def advance(self, seconds: float) -> None:
        """Move the workspace's clock forward; also usable as the app's ``sleep``."""
        if seconds < 0:
            raise ValueError("time does not run backwards")
        with self._changed:
            self._skew += seconds
            self._changed.notify_all()

    # ------------------------------------------------------------------ directory

    def add_user(
        self,
        user_id: str,
        email: str,
        name: str | None = None,
        deleted: bool = False,
        *,
        real_name: str | None = None,
        email_confirmed: bool = True,
        team_id: str = TEAM_ID,
        enterprise_id: str | None = None,
        is_restricted: bool = False,
        is_ultra_restricted: bool = False,
        is_stranger: bool = False,
        is_bot: bool = False,
    ) -> None:
        """Add (or replace) a user visible to users.* methods: by default a full member
        of this workspace. `is_restricted` / `is_ultra_restricted` make a multi- / single-
        channel guest, `team_id` (with `is_stranger`) a Slack Connect user of another
        workspace, whom users.lookupByEmail finds too, as Slack's does."""
        handle = name or email.split("@", 1)[0]
        with self._lock:
            self._users[user_id] = {
                "id": user_id,
                "email": email,
                "name": handle,
                "real_name": real_name or handle,
                "deleted": deleted,
                "email_confirmed": email_confirmed,
                "team_id": team_id,
                "enterprise_id": enterprise_id,
                "is_restricted": is_restricted,
                "is_ultra_restricted": is_ultra_restricted,
                "is_stranger": is_stranger,
                "is_bot": is_bot,
            }

    def add_channel(self, channel_id: str) -> None:
        """Make a channel (``C…``/``G…``) known, so messages can be posted to it."""
        with self._lock:
            self._channels.add(channel_id)

    def add_usergroup(
        self,
        group_id: str,
        handle: str,
        user_ids: list[str],
        *,
        name: str | None = None,
        description: str = "",
    ) -> None:
        """Add (or replace) a user group (``S…`` id) with the given members."""
        with self._lock:
            self._usergroups[group_id] = {
                "id": group_id,
                "handle": handle,
                "name": name or handle,
                "description": description,
                "users": list(user_ids),
            }

    def get_user(self, user_id: str) -> dict[str, Any] | None:
        """The directory entry ``{id, email, name, real_name, deleted, team_id, …}`` or None."""
        with self._lock:
            user = self._users.get(user_id)
            return dict(user) if user is not None else None

    # ------------------------------------------------------------------ change feed

    def changes_since(self, seq: int) -> tuple[int, list[dict[str, Any]]]:
        """The latest change number and the changes after `seq`, oldest first: messages
        posted/updated, ephemerals, views opened/updated/published/closed and response_url
        posts, each a JSON-able dict with ``kind``, ``seq``, ``at`` and the data."""
        return self._feed.since(seq)

    def wait_for_change(self, seq: int, timeout: float | None = None) -> bool:
        """Block until there is a change after `seq` (True) or `timeout` passes (False)."""
        return self._feed.wait(seq, timeout)

    def _publish(self, kind: ChangeKind, data: dict[str, Any]) -> None:
        self._feed.publish(kind, data)

    # ------------------------------------------------------------------ ids & conversations

    def _next_ts(self) -> str:
        micros = _TS_BASE_MICROS + next(self._ts_counter) * _TS_STEP_MICROS
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    @staticmethod
    def _dm_channel(channel: str) -> str:
        """Posting to a user id lands in the DM with that user; give it a stable id."""
        return "D" + channel[1:] if channel[:1] in ("U", "W") else channel

    def _post_target(self, params: dict[str, Any]) -> str:
        channel = params.get("channel")
        if not isinstance(channel, str) or channel[:1] not in ("C", "G", "D", "U", "W"):
            raise SlackError("channel_not_found")
        if channel[:1] in ("U", "W") and channel not in self._users:
            raise SlackError("channel_not_found")
        return self._conversation(channel)

    def _conversation(self, channel: Any) -> str:
        """The id of a conversation the workspace knows (a user id means the DM with that
        user), or ``channel_not_found``: a channel registered with `add_channel`, the DM of
        a known user, or a group DM opened with conversations.open."""
        if isinstance(channel, str):
            dm = self._dm_channel(channel)
            if channel in self._channels or any(
                self._dm_channel(user) == dm for user in self._users
            ):
                return dm
        raise SlackError("channel_not_found")

    def _find_message(self, channel: Any, ts: Any) -> dict[str, Any]:
        for msg in self._messages:
            if msg["channel"] == channel and msg["ts"] == ts:
                return msg
        raise SlackError("message_not_found")

    def _record_internal_error(self, exc: BaseException) -> None:
        with self._lock:
            self._internal_errors.append(exc)
