"""The test suite's webhook service: the product's embedded receiver plus fault injection.

`WebhookReceiver` is `bot.local.receiver.WebhookReceiver` (see its module docstring for
what it verifies and records) with what only tests need: answering failures
(`fail_next`), answering slowly (`delay`), hanging until let go (`hang`, `let_go`,
`waiting`), closing a connection instead of answering (`drop_next`) or while it is idle
(`close_idle_connections`), as a broken, slow or stuck downstream service would; and
serving https with a certificate of the test's choosing (``tls``).
"""

from __future__ import annotations

import json
import ssl
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
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(secret, clock=clock, host=host, port=port)
        self._tls = tls
        self._fault: _Fault | None = None
        # Requests read and then left unanswered, the connection closed: (applied first?).
        self._drops: list[bool] = []
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

    @property
    def url(self) -> str:
        plain = super().url
        return "https" + plain.removeprefix("http") if self._tls else plain

    def _bind(self) -> receiver._Server:
        server = super()._bind()
        server.RequestHandlerClass = _DroppingHandler
        if self._tls is not None:
            server.socket = self._tls.wrap_socket(server.socket, server_side=True)
        return server

    def drop_next(self, times: int = 1, *, applied: bool = False) -> None:
        """Read the next ``times`` requests and close their connection without a word of
        answer, as a server whose idle timeout fires just as a request arrives does; with
        ``applied``, the event is applied (and recorded) first, as a server that crashes
        before answering would have."""
        with self._lock:
            self._drops = [applied] * times

    def close_idle_connections(self) -> None:
        """Close every connection waiting for its next request (a keep-alive timeout),
        once those that sent their last answer are done with it (a client may read an
        answer before its connection is marked idle)."""
        if self._server is not None:
            self._server.close_idle(settle=5.0)

    def _next_drop(self) -> bool | None:
        with self._lock:
            return self._drops.pop(0) if self._drops else None

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


class _DroppingHandler(receiver._Handler):
    """The receiver's handler, closing the connection unanswered when told to."""

    server: receiver._Server

    def do_POST(self) -> None:
        fake = self.server.receiver
        drop = fake._next_drop() if isinstance(fake, WebhookReceiver) else None
        if drop is None:
            super().do_POST()
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if drop:
            headers = {name.lower(): value for name, value in self.headers.items()}
            fake._handle(self.path, headers, body)
        self.close_connection = True
