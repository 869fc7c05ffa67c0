"""A change feed over the embedded workspace: what a page showing it must redraw.

Local mode's page shows the workspace as the bot shapes it — messages posted and edited,
ephemerals, modals opened, updated and closed, response_url answers — and must learn of
each change without polling the whole state. Every change gets the next sequence number;
a reader keeps the last number it saw, asks `since(seq)` for what came after, and can
block in `wait(seq, timeout)` until something does.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from enum import StrEnum
from typing import Any

__all__ = ["ChangeFeed", "ChangeKind"]

# The feed is for a page that follows along; it keeps a window, not all of history.
_KEEP = 10_000


class ChangeKind(StrEnum):
    """The `kind` of each change item (a str, so items stay JSON-able)."""

    MESSAGE_POSTED = "message_posted"
    MESSAGE_UPDATED = "message_updated"
    EPHEMERAL_POSTED = "ephemeral_posted"
    VIEW_OPENED = "view_opened"
    VIEW_UPDATED = "view_updated"
    VIEW_PUBLISHED = "view_published"
    VIEW_CLOSED = "view_closed"
    RESPONSE_POSTED = "response_posted"


class ChangeFeed:
    """Thread-safe, append-only list of change items with monotonic sequence numbers.

    It has its own lock, taken last: publishers may hold the workspace's lock while they
    publish, and a reader waiting here never holds the workspace's.
    """

    def __init__(self, keep: int = _KEEP) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._items: deque[dict[str, Any]] = deque(maxlen=keep)
        self._seq = 0

    @property
    def seq(self) -> int:
        """The number of the latest change (0 before the first)."""
        with self._changed:
            return self._seq

    def publish(self, kind: ChangeKind, data: dict[str, Any]) -> int:
        """Append a change of `kind` carrying a copy of `data`; return its number."""
        with self._changed:
            self._seq += 1
            item = {**copy.deepcopy(data), "kind": str(kind), "seq": self._seq, "at": time.time()}
            self._items.append(item)
            self._changed.notify_all()
            return self._seq

    def since(self, seq: int) -> tuple[int, list[dict[str, Any]]]:
        """The latest number and every kept change numbered above `seq`, oldest first."""
        with self._changed:
            return self._seq, [copy.deepcopy(i) for i in self._items if i["seq"] > seq]

    def wait(self, seq: int, timeout: float | None = None) -> bool:
        """Block until a change numbered above `seq` exists, at most `timeout` seconds;
        True when one does."""
        with self._changed:
            return self._changed.wait_for(lambda: self._seq > seq, timeout)
