"""The test suite's webhook service: the product's embedded receiver plus fault injection.

`WebhookReceiver` is `bot.local.receiver.WebhookReceiver` (see its module docstring for
what it verifies and records) with what only tests need: answering failures
(`fail_next`), answering slowly (`delay`) and hanging until let go (`hang`, `let_go`,
`waiting`), as a broken, slow or stuck downstream service would.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bot.local import receiver
from bot.local.receiver import Answer, ReceivedRequest

__all__ = ["ReceivedRequest", "WebhookReceiver"]

# The longest a hung request is held, so a test that forgets `let_go` still ends.
_HANG_MAX_SECONDS = 60


@dataclass
class _Fault:
    remaining: int
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


class WebhookReceiver(receiver.WebhookReceiver):
    """The embedded receiver with fault injection, delays and hangs."""

    def __init__(
        self,
        secret: str,
        *,
        clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(secret, clock=clock, host=host, port=port)
        self._fault: _Fault | None = None
        # Seconds to take over each answer, like a slow downstream system.
        self.delay = 0.0
        # Events ("grant"/"revoke") left unanswered until let_go(), like a hung service.
        self._hung: set[str] = set()
        self._let_go = threading.Event()
        self._waiting = 0

    def stop(self) -> None:
        # Release held requests first, or shutting the server down would wait on them.
        self.let_go()
        super().stop()

    def fail_next(
        self,
        times: int = 1,
        status: int = 500,
        retry_after: float | str | None = None,
        body: str = "boom",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` and ``body`` without applying
        them, as a broken or overloaded service would."""
        extra = dict(headers or {})
        if retry_after is not None:
            extra["Retry-After"] = str(retry_after)
        with self._lock:
            self._fault = _Fault(remaining=times, status=status, body=body, headers=extra)

    def hang(self, event: str) -> None:
        """Leave every ``event`` request ("grant" or "revoke") unanswered until
        ``let_go()`` (at most a minute), as a service that hangs does."""
        with self._lock:
            self._hung.add(event)
            self._let_go.clear()

    def let_go(self) -> None:
        with self._lock:
            self._hung.clear()
        self._let_go.set()

    @property
    def waiting(self) -> int:
        """Requests held unanswered right now."""
        with self._lock:
            return self._waiting

    def _handle(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if self.delay:
            time.sleep(self.delay)
        if self._hangs_on(body):
            with self._lock:
                self._waiting += 1
            try:
                self._let_go.wait(_HANG_MAX_SECONDS)
            finally:
                with self._lock:
                    self._waiting -= 1
        return super()._handle(path, headers, body)

    def _decide(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        # Called with the lock held; an injected failure is recorded like any answer.
        fault = self._fault
        if fault is not None and fault.remaining > 0:
            fault.remaining -= 1
            return Answer(
                fault.status, fault.body.encode("utf-8"), fault.headers, outcome="injected fault"
            )
        return super()._decide(path, headers, body)

    def _hangs_on(self, body: bytes) -> bool:
        with self._lock:
            if not self._hung:
                return False
            hung = set(self._hung)
        try:
            event = json.loads(body)
        except ValueError:
            return False
        return isinstance(event, dict) and event.get("event") in hung
