"""An embedded webhook service: a real HTTP server that receives jit-bot's webhook events.

It does what a careful receiver of jit-bot's webhook events should do — verify the HMAC
signature (over the URL it is known by, its audience) and the timestamp, apply each
idempotency key at most once — and keeps what it was asked to grant in ``holdings``. Local
mode points the bundled roles' real webhook provider at it; tests assert on the backend's
real state through it. The signature check is written out here on purpose instead of
importing the provider's helper, so a signing bug cannot hide by being mirrored.

What it received is readable two ways, both snapshots safe to read from any thread:

- `requests`: every HTTP request in arrival order, as a `ReceivedRequest` with the status
  answered, ``signature_verified`` (True once the HMAC and timestamp checked out, even if
  the event was then refused as malformed), ``outcome`` (``applied``, ``duplicate`` or why
  it was refused) and `ReceivedRequest.payload()` (the decoded JSON event);
- `events`: every accepted grant/revoke event (so always signature-verified), decoded,
  with ``replay`` True for an idempotency key seen before and ``received_at``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)

_REQUIRED_FIELDS = {
    "event": str,
    "idempotency_key": str,
    "request_id": str,
    "principal": dict,
    "role": str,
    "environment": str,
    "reason": str,
    "target": dict,
    "expires_at": str,
    "sent_at": str,
}


@dataclass(frozen=True)
class ReceivedRequest:
    """One HTTP request as it arrived, the status it was answered with, whether its
    signature checked out and what became of it (``applied``, ``duplicate`` or the reason
    it was refused)."""

    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    status: int
    signature_verified: bool = False
    outcome: str = ""

    def payload(self) -> dict[str, Any] | None:
        """The body decoded as a JSON object, or None when it is not one."""
        try:
            decoded = json.loads(self.body)
        except ValueError:
            return None
        return decoded if isinstance(decoded, dict) else None


@dataclass(frozen=True)
class Answer:
    """What the receiver answers one request, and what it found out on the way."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    signature_verified: bool = False
    outcome: str = ""


class _Server(ThreadingHTTPServer):
    """Serves each connection on a thread of its own, for as many requests as the client
    sends on it (HTTP/1.1 keep-alive), and counts the connections it accepted."""

    daemon_threads = True

    def __init__(self, receiver: WebhookReceiver, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.receiver = receiver
        self._open_lock = threading.Condition()
        self._open: dict[Any, bool] = {}  # connection → busy answering a request
        self._stopping = False

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open[request] = False
        with self.receiver._lock:
            self.receiver._connections += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.pop(request, None)
        super().shutdown_request(request)

    def answering(self, request: Any, busy: bool) -> bool:
        """Mark a connection busy or idle; False once it should close after this answer."""
        with self._open_lock:
            if request in self._open:
                self._open[request] = busy
                self._open_lock.notify_all()
            return not self._stopping

    def close_idle(self, *, stopping: bool = False, settle: float = 0.0) -> None:
        """Close the connections waiting for a next request, as a server's idle timeout
        does; with ``stopping``, busy ones close once answered. Otherwise a stopped
        receiver would go on serving the clients that kept a connection open. ``settle``:
        wait up to that long for connections still finishing an answer (the client may
        have read it already) to become idle first."""
        with self._open_lock:
            self._open_lock.wait_for(lambda: not any(self._open.values()), timeout=settle)
            self._stopping = self._stopping or stopping
            idle = [request for request, busy in self._open.items() if not busy]
        for request in idle:
            # The plain socket's shutdown, also under TLS: the handler's pending read
            # then ends as if the client had gone.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(request, socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A caller killed mid-request (the crash tests do that on purpose) is not news.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.1: a client may send its next request on the same connection; every answer
    # therefore carries its Content-Length.
    protocol_version = "HTTP/1.1"
    # Headers and body are written separately; without this the body of each answer on a
    # kept-alive connection waits for the client's delayed ACK (Nagle).
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        if not self.server.answering(self.request, busy=True):
            self.close_connection = True
        try:
            self._answer()
        finally:
            if not self.server.answering(self.request, busy=False):
                self.close_connection = True

    def _answer(self) -> None:
        length = self._content_length()
        if length is None:
            # A body of unknown length (chunked) would be left on the connection.
            self.send_error(411, "Content-Length required")
            return
        body = self.rfile.read(length)
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, extra_headers, answer = self.server.receiver._handle(self.path, headers, body)
        self.send_response(status)
        for name, value in extra_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def _content_length(self) -> int | None:
        """The body's length: 0 when the request says nothing of a body, None when it
        cannot be told (chunked, or a malformed Content-Length)."""
        value = self.headers.get("Content-Length")
        if value is None:
            return None if self.headers.get("Transfer-Encoding") else 0
        return int(value) if value.strip().isdigit() else None

    def log_message(self, format: str, *args: Any) -> None:
        # The default writes every request to stderr; keep output readable.
        logger.debug(format, *args)


class WebhookReceiver:
    """Receives signed grant/revoke events at ``url``; thread-safe.

    ``clock`` gives the receiver's notion of now in unix seconds, so a test that gives the
    provider a fixed clock can give the receiver the same one. It listens on `host`:`port`
    (0: a port the OS chooses).
    """

    PATH = "/jit"
    MAX_SKEW_SECONDS = 300

    def __init__(
        self,
        secret: str,
        *,
        clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._secret = secret.encode("utf-8")
        self._clock = clock
        self._address = (host, port)
        self._lock = threading.Lock()
        self._holdings: set[tuple[str, str]] = set()
        self._events: list[dict[str, Any]] = []
        self._requests: list[ReceivedRequest] = []
        self._seen_keys: set[str] = set()
        self._rejected = 0
        self._connections = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        # The URL this receiver is known by in roles.yaml, when it is not ``url`` (a name
        # that resolves to 127.0.0.1, say).
        self.audience = ""

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> WebhookReceiver:
        self._server = self._bind()
        # shutdown() waits for the serve loop to notice, which takes up to one poll
        # interval; a short one keeps teardown from dominating test time.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="webhook-receiver",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.close_idle(stopping=True)
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def _bind(self) -> _Server:
        return _Server(self, self._address)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the receiver is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.PATH}"

    # -- what it received --------------------------------------------------------------

    @property
    def holdings(self) -> set[tuple[str, str]]:
        """(email, target name) pairs currently granted."""
        with self._lock:
            return set(self._holdings)

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every accepted event in arrival order, with ``replay`` True for a seen key."""
        with self._lock:
            return [dict(event) for event in self._events]

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every HTTP request received, including rejected and fault-injected ones."""
        with self._lock:
            return list(self._requests)

    @property
    def connections(self) -> int:
        """TCP connections accepted so far (a keep-alive client sends many requests on
        one)."""
        with self._lock:
            return self._connections

    @property
    def rejected(self) -> int:
        """Requests refused for a bad signature, stale timestamp or malformed event."""
        with self._lock:
            return self._rejected

    def grants_of(self, email: str) -> set[str]:
        with self._lock:
            return {name for holder, name in self._holdings if holder == email}

    # -- request handling (called on server threads) -----------------------------------

    def _handle(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            answer = self._decide(path, headers, body)
            self._record(path, headers, body, answer)
            return answer.status, answer.headers, answer.body

    def _record(self, path: str, headers: dict[str, str], body: bytes, answer: Answer) -> None:
        """Keep one request and what became of it; called with the lock held."""
        self._requests.append(
            ReceivedRequest(
                path, headers, body, answer.status, answer.signature_verified, answer.outcome
            )
        )

    def _decide(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        if path.split("?", 1)[0] != self.PATH:
            return self._reject(404, "no such path")
        problem = self._signature_problem(headers, body)
        if problem:
            return self._reject(401, problem)
        try:
            event = json.loads(body)
        except ValueError:
            return self._reject(400, "body is not JSON", verified=True)
        problem = _event_problem(event, headers)
        if problem:
            return self._reject(400, problem, verified=True)
        key = event["idempotency_key"]
        if key in self._seen_keys:
            self._events.append({**event, "replay": True, "received_at": self._clock()})
            return _ok("duplicate")
        self._seen_keys.add(key)
        holding = (event["principal"]["email"], event["target"]["name"])
        if event["event"] == "grant":
            self._holdings.add(holding)
        else:
            self._holdings.discard(holding)
        self._events.append({**event, "replay": False, "received_at": self._clock()})
        return _ok("applied")

    def _signature_problem(self, headers: dict[str, str], body: bytes) -> str:
        timestamp = headers.get("x-jit-timestamp", "")
        signature = headers.get("x-jit-signature", "")
        if not timestamp.isdigit():
            return "missing or malformed X-JIT-Timestamp"
        if abs(self._clock() - int(timestamp)) > self.MAX_SKEW_SECONDS:
            return "X-JIT-Timestamp too far from now"
        if not signature.startswith("v2="):
            return "missing or malformed X-JIT-Signature"
        # The audience is this receiver's own URL, never one read from the request: an
        # event signed for another receiver that shares the key must fail here.
        audience = self.audience or self.url
        message = b"\n".join([b"v2", timestamp.encode("ascii"), audience.encode("utf-8"), body])
        expected = hmac.new(self._secret, message, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.removeprefix("v2=")):
            return "signature does not match"
        return ""

    def _reject(self, status: int, reason: str, *, verified: bool = False) -> Answer:
        self._rejected += 1
        body = json.dumps({"error": reason}).encode("utf-8")
        return Answer(status, body, signature_verified=verified, outcome=reason)


def _event_problem(event: Any, headers: dict[str, str]) -> str:
    if not isinstance(event, dict):
        return "event is not an object"
    for name, kind in _REQUIRED_FIELDS.items():
        if not isinstance(event.get(name), kind):
            return f"field {name} missing or not a {kind.__name__}"
    if event["event"] not in ("grant", "revoke"):
        return f"unknown event {event['event']!r}"
    if not isinstance(event["principal"].get("email"), str):
        return "principal.email missing"
    if not isinstance(event["target"].get("name"), str):
        return "target.name missing"
    if headers.get("idempotency-key") != event["idempotency_key"]:
        return "Idempotency-Key header does not match the body"
    if headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return "Content-Type is not application/json"
    return ""


def _ok(result: str) -> Answer:
    body = json.dumps({"ok": True, "result": result}).encode("utf-8")
    return Answer(200, body, signature_verified=True, outcome=result)
