"""A local fake of Slack's Socket Mode WebSocket server, for tests.

`FakeSocketMode` listens on 127.0.0.1 with an OS-chosen port and speaks the part of
RFC 6455 that slack_sdk's built-in client uses: the opening handshake (answered with a
correct ``Sec-WebSocket-Accept``), unmasked text frames from the server, masked frames
from the client (text, ping, pong, close, fragmented or not), and a pong for every ping,
which the client needs to see within four ping intervals or it drops the connection as
stale. Each new connection first receives Slack's ``hello`` message.

Typical use::

    socket_mode = FakeSocketMode().start()
    slack.socket_url = socket_mode.url  # what apps.connections.open answers
    ...  # start the app with an app-level token
    socket_mode.wait_connected()
    envelope_id = socket_mode.slash_command({"command": "/jit", "text": "help", ...})
    ack = socket_mode.wait_for_ack(envelope_id)  # {"envelope_id": ..., maybe "payload"}
    socket_mode.close()

Slack gives up on an envelope that is not acknowledged within three seconds, so
`wait_for_ack` counts from the moment the envelope was sent and by default allows that
long. Anything the client does that Slack would not accept (a bad handshake, an unmasked
frame, an ack for an envelope never sent) is recorded in `errors`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar
from urllib.parse import parse_qs, urlsplit

from tests.fakes.slack_api import APP_ID

__all__ = ["ACK_DEADLINE", "FakeSocketMode"]

T = TypeVar("T")

#: Seconds Slack waits for an envelope's acknowledgement.
ACK_DEADLINE = 3.0

_PATH = "/link/"
_ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3

_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_GOING_AWAY, _PROTOCOL_ERROR = 1001, 1002


def _accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value that answers ``Sec-WebSocket-Key: key``."""
    digest = hashlib.sha1((key + _ACCEPT_GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def _frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked frame: a server never masks (RFC 6455 §5.1)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return header + payload


class _ProtocolError(Exception):
    """The client broke RFC 6455; the connection is closed with status 1002."""


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return data


def _read_frame(stream: BinaryIO) -> tuple[bool, int, bytes]:
    """(fin, opcode, unmasked payload) of the client's next frame."""
    first, second = _read_exactly(stream, 2)
    if first & 0x70:
        raise _ProtocolError("reserved bits set without a negotiated extension")
    if not second & 0x80:
        raise _ProtocolError("client frame is not masked")
    fin, opcode, size = bool(first & 0x80), first & 0x0F, second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", _read_exactly(stream, 2))
    elif size == 127:
        (size,) = struct.unpack("!Q", _read_exactly(stream, 8))
    if opcode >= _CLOSE and (not fin or size > 125):
        raise _ProtocolError("control frame fragmented or longer than 125 bytes")
    mask = _read_exactly(stream, 4)
    masked = _read_exactly(stream, size)
    return fin, opcode, bytes(byte ^ mask[i % 4] for i, byte in enumerate(masked))


def _read_request(stream: BinaryIO) -> tuple[str, dict[str, str]]:
    """The request line and headers (names lower-cased) of the opening handshake."""
    line = stream.readline(8192).decode("latin-1").strip()
    if not line:
        raise EOFError  # connected and left without asking for anything
    headers: dict[str, str] = {}
    while header := stream.readline(8192).decode("latin-1").strip():
        name, _, value = header.partition(":")
        headers[name.strip().lower()] = value.strip()
    return line, headers


class _Connection:
    """One accepted client socket; `send` may be called from any thread."""

    def __init__(self, sock: socket.socket, number: int) -> None:
        self.sock = sock
        self.number = number
        self.open = False
        self._send_lock = threading.Lock()

    def send(self, opcode: int, payload: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(_frame(opcode, payload))

    def close(self, code: int | None = None, reason: str = "") -> None:
        """Say goodbye with a close frame when `code` is given, then drop the socket."""
        self.open = False
        if code is not None:
            with contextlib.suppress(OSError):
                self.send(_CLOSE, struct.pack("!H", code) + reason.encode("utf-8"))
        # shutdown() also wakes the connection's thread blocked in a read.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class FakeSocketMode:
    """A fake Socket Mode endpoint. See the module docstring for an overview."""

    def __init__(self, *, app_id: str = APP_ID, host: str = "127.0.0.1") -> None:
        self.app_id = app_id
        self.host = host
        # The ticket in `url`; a client that connects without it did not use the URL
        # apps.connections.open handed out, and real Slack would refuse it.
        self.ticket = uuid.uuid4().hex
        self._changed = threading.Condition()
        self._connections: list[_Connection] = []
        self._sent: dict[str, float] = {}  # envelope id -> time.monotonic() when sent
        self._acks: dict[str, list[dict[str, Any]]] = {}
        self._received: list[Any] = []
        self._errors: list[str] = []
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeSocketMode:
        """Listen on an OS-chosen port of `host` and accept clients in a daemon thread."""
        if self._listener is not None:
            raise RuntimeError("FakeSocketMode already started")
        self._listener = socket.create_server((self.host, 0))
        self._spawn(self._accept, self._listener, name=f"FakeSocketMode:{self.port}")
        return self

    def close(self) -> None:
        """Close every connection with 1001 (going away), stop listening, join threads."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() below
            listener.close()
        with self._changed:
            connections = list(self._connections)
        for connection in connections:
            connection.close(_GOING_AWAY)
        for thread in list(self._threads):  # the accept thread may still append
            thread.join(timeout=5)

    def __enter__(self) -> FakeSocketMode:
        return self if self._listener is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("FakeSocketMode is not started")
        return int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        """A WebSocket URL in Slack's shape, for `FakeSlack.socket_url`."""
        return f"ws://{self.host}:{self.port}{_PATH}?ticket={self.ticket}&app_id={self.app_id}"

    # ------------------------------------------------------------------ what tests look at

    @property
    def connections(self) -> int:
        """How many clients completed the handshake and got their hello, ever."""
        with self._changed:
            return len(self._connections)

    @property
    def received(self) -> list[Any]:
        """Every text message the clients sent, JSON-decoded, oldest first."""
        with self._changed:
            return list(self._received)

    @property
    def errors(self) -> list[str]:
        """What the clients did that Slack would refuse; should stay empty."""
        with self._changed:
            return list(self._errors)

    def acks(self, envelope_id: str) -> list[dict[str, Any]]:
        """Every acknowledgement received for `envelope_id`, oldest first."""
        with self._changed:
            return list(self._acks.get(envelope_id, []))

    # ------------------------------------------------------------------ talking to the app

    def send(self, kind: str, payload: dict[str, Any], *, accepts_response_payload: bool) -> str:
        """Deliver an envelope of type `kind` to the newest open connection, as Slack
        picks one of the app's connections; return its envelope_id."""
        envelope_id = str(uuid.uuid4())
        message = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        with self._changed:
            connection = next((c for c in reversed(self._connections) if c.open), None)
            if connection is None:
                raise RuntimeError("no Socket Mode client is connected")
            self._sent[envelope_id] = time.monotonic()
        connection.send(_TEXT, json.dumps(message).encode("utf-8"))
        return envelope_id

    def refresh(self) -> None:
        """Ask the clients to reconnect, as Slack does every few hours per connection."""
        message = {
            "type": "disconnect",
            "reason": "refresh_requested",
            "debug_info": {"host": "applink-fake"},
        }
        with self._changed:
            connections = [c for c in self._connections if c.open]
        for connection in connections:
            connection.send(_TEXT, json.dumps(message).encode("utf-8"))

    def slash_command(self, payload: dict[str, Any]) -> str:
        """Deliver a slash command; `payload` holds the form fields Slack would POST."""
        return self.send("slash_commands", payload, accepts_response_payload=True)

    def interactive(self, payload: dict[str, Any]) -> str:
        """Deliver an interactivity payload (block_actions, view_submission, …)."""
        # Only these can be answered in the ack: view_submission with a response_action,
        # block_suggestion with options. Slack says so in the envelope.
        answerable = payload.get("type") in ("view_submission", "block_suggestion")
        return self.send("interactive", payload, accepts_response_payload=answerable)

    # ------------------------------------------------------------------ waiting

    def wait_connected(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until `count` clients in all have connected and been sent their hello."""
        self._wait(lambda: len(self._connections) >= count, timeout, f"{count} connection(s)")

    def wait_open(self, count: int, timeout: float = 10.0) -> None:
        """Wait until exactly `count` connections are open. A connection counts as closed
        once everything the client sent over it has been read, so after ``wait_open(0)``
        `received` holds all the clients will ever have sent."""
        self._wait(
            lambda: sum(c.open for c in self._connections) == count,
            timeout,
            f"exactly {count} open connection(s)",
        )

    def wait_for_ack(self, envelope_id: str, timeout: float = ACK_DEADLINE) -> dict[str, Any]:
        """The first ack for `envelope_id`, which must arrive within `timeout` seconds of
        the envelope being sent (Slack's deadline by default)."""
        with self._changed:
            if envelope_id not in self._sent:
                raise KeyError(f"envelope {envelope_id} was never sent")
            remaining = self._sent[envelope_id] + timeout - time.monotonic()
        acks = self._wait(
            lambda: self._acks.get(envelope_id, []), remaining, f"an ack of envelope {envelope_id}"
        )
        return acks[0]

    def _wait(self, predicate: Callable[[], T], timeout: float, what: str) -> T:
        """Wait, with the lock held, until `predicate` is truthy; return its value."""
        with self._changed:
            result = self._changed.wait_for(predicate, timeout=max(timeout, 0.0))
            if not result:
                raise AssertionError(
                    f"timed out waiting for {what}; received so far: {self._received}, "
                    f"errors: {self._errors}"
                )
            return result

    # ------------------------------------------------------------------ serving

    def _spawn(self, target: Callable[..., None], *args: object, name: str) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        number = 0
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return  # closed
            number += 1
            self._spawn(self._serve, _Connection(sock, number), name=f"FakeSocketMode#{number}")

    def _serve(self, connection: _Connection) -> None:
        with connection.sock.makefile("rb") as stream:
            try:
                if self._handshake(connection, stream):
                    self._read_messages(connection, stream)
            except _ProtocolError as exc:
                self._record_error(f"connection {connection.number}: {exc}")
                connection.close(_PROTOCOL_ERROR, str(exc))
            except (EOFError, OSError):
                pass  # the client hung up, or close() dropped the socket
            finally:
                connection.close()
                with self._changed:
                    self._changed.notify_all()

    def _handshake(self, connection: _Connection, stream: BinaryIO) -> bool:
        line, headers = _read_request(stream)
        problem = self._handshake_problem(line, headers)
        if problem:
            self._record_error(f"connection {connection.number}: {problem}")
            connection.sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return False
        connection.sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\n"
            b"Upgrade: websocket\r\n"
            b"Connection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: "
            + _accept_key(headers["sec-websocket-key"]).encode("ascii")
            + b"\r\n\r\n"
        )
        with self._changed:
            connection.open = True
            self._connections.append(connection)
            hello = {
                "type": "hello",
                "num_connections": sum(c.open for c in self._connections),
                "debug_info": {
                    "host": "applink-fake",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": self.app_id},
            }
            # Sent before anyone waiting on the connection is woken: hello comes first.
            connection.send(_TEXT, json.dumps(hello).encode("utf-8"))
            self._changed.notify_all()
        return True

    def _handshake_problem(self, line: str, headers: dict[str, str]) -> str:
        method, _, rest = line.partition(" ")
        target, _, version = rest.partition(" ")
        if method != "GET" or version != "HTTP/1.1":
            return f"not a GET over HTTP/1.1: {line!r}"
        parts = urlsplit(target)
        if parts.path != _PATH or parse_qs(parts.query).get("ticket") != [self.ticket]:
            return f"not the URL apps.connections.open handed out: {target!r}"
        if headers.get("upgrade", "").lower() != "websocket":
            return "no 'Upgrade: websocket' header"
        if "upgrade" not in headers.get("connection", "").lower().replace(" ", "").split(","):
            return "no 'Connection: Upgrade' header"
        if headers.get("sec-websocket-version") != "13":
            return "Sec-WebSocket-Version is not 13"
        try:
            nonce = base64.b64decode(headers.get("sec-websocket-key", ""), validate=True)
        except binascii.Error:
            nonce = b""
        if len(nonce) != 16:
            return "Sec-WebSocket-Key is not 16 base64-encoded bytes"
        return ""

    def _read_messages(self, connection: _Connection, stream: BinaryIO) -> None:
        fragments: list[bytes] = []
        while True:
            fin, opcode, payload = _read_frame(stream)
            if opcode == _PING:
                connection.send(_PONG, payload)
            elif opcode == _PONG:
                pass  # an answer to a ping of ours; this server sends none
            elif opcode == _CLOSE:
                # Echo the client's status code, as RFC 6455 §5.5.1 suggests.
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1000
                connection.close(code)
                return
            elif (opcode == _TEXT and not fragments) or (opcode == _CONTINUATION and fragments):
                fragments.append(payload)
                if fin:
                    self._on_text(connection, b"".join(fragments))
                    fragments = []
            else:
                # Slack only ever exchanges text; binary or a stray continuation is a bug.
                raise _ProtocolError(f"unexpected frame (opcode {opcode:#x})")

    def _on_text(self, connection: _Connection, data: bytes) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            message = data.decode("utf-8", errors="replace")
        with self._changed:
            self._received.append(message)
            if not isinstance(message, dict) or "envelope_id" not in message:
                self._errors.append(f"connection {connection.number}: not an ack: {message!r}")
            elif message["envelope_id"] not in self._sent:
                self._errors.append(f"connection {connection.number}: ack of unknown {message!r}")
            else:
                self._acks.setdefault(message["envelope_id"], []).append(message)
            self._changed.notify_all()

    def _record_error(self, error: str) -> None:
        with self._changed:
            self._errors.append(error)
            self._changed.notify_all()
