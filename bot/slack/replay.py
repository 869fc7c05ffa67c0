"""Refusing replayed Slack requests.

A Slack signature stays valid for five minutes (Bolt checks the timestamp), so within that
window a captured request could be sent again: a second "Approve" from the same click.
Each signature is remembered until its timestamp is stale and a second use gets 401.
(Socket Mode requests carry no signature and are not affected.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

WINDOW = 5 * 60 + 60  # Bolt's five minutes, plus clock skew


class ReplayGuard:
    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_use(self, signature: str) -> bool:
        now = self._now()
        with self._lock:
            if len(self._seen) >= 4096:  # forget signatures too old to be accepted anyway
                self._seen = {s: t for s, t in self._seen.items() if now - t < WINDOW}
            if signature in self._seen and now - self._seen[signature] < WINDOW:
                return False
            self._seen[signature] = now
            return True

    def middleware(
        self, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
    ) -> BoltResponse:
        # Bolt passes middleware arguments by these names.
        signature = (req.headers.get("x-slack-signature") or [""])[0]
        if signature and not self.first_use(signature):
            return BoltResponse(status=401, body='{"error": "replayed request"}')
        return next()
