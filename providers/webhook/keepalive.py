"""Webhook calls over kept-alive HTTP connections.

Opening a TCP connection (and, over https, a TLS handshake) for every call made a revoke
backlog spend most of its time connecting. `KeepAliveOpener` keeps a few idle
connections per origin (scheme, host, port) and sends the next call to that origin over
one of them. It fits `HttpOpener`, so `send` reads its answers like urllib's.

What keeps it as safe as a fresh connection per call:

- every new connection is made by a ``Connect`` function; the safe one is the egress
  guard's (providers/egress.py), which vets the addresses the host resolves to, so a
  pooled connection stays bound to the address it was vetted for;
- a connection goes back to the pool only once its answer was read to the end and the
  server did not say ``Connection: close``; an answer larger than what `send` reads is
  never left half-read on a pooled connection: that connection is closed;
- redirects are never followed: every status comes back as the status;
- a request that goes through an HTTP proxy (``https_proxy`` and friends, as urllib
  reads them) is handed to the urllib opener it replaces, unchanged.
"""

from __future__ import annotations

import http.client
import select
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from email.message import Message
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from providers.egress import Resolve, guarded_connection

if TYPE_CHECKING:  # annotations only
    from providers.webhook.answers import HttpResponse

Connect = Callable[[str, str, int | None, float], http.client.HTTPConnection]
"""(scheme, host, port, timeout) → a connection to that origin, not yet connected."""

Origin = tuple[str, str, int | None]

# Enough for a burst of concurrent calls to one receiver; more are opened when needed,
# they just are not kept once idle.
MAX_IDLE_PER_ORIGIN = 8

# What a server that closed an idle connection makes a request on it fail with, before
# any byte of an answer arrives (RemoteDisconnected is a ConnectionResetError).
_STALE_CONNECTION_ERRORS = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


def tls_context() -> ssl.SSLContext:
    """Certificates and host names verified as urllib does; made once per opener, since
    loading the system's trust store for every connection would cost what pooling saves."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


def direct_connect(context: ssl.SSLContext) -> Connect:
    """Connections to wherever the host resolves (targets with ``allow_insecure``)."""

    def connect(
        scheme: str, host: str, port: int | None, timeout: float
    ) -> http.client.HTTPConnection:
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        return http.client.HTTPConnection(host, port, timeout=timeout)

    return connect


def guarded_connect(resolve: Resolve, context: ssl.SSLContext) -> Connect:
    """Connections only to addresses providers/egress.py allows, checked at each new one."""

    def connect(
        scheme: str, host: str, port: int | None, timeout: float
    ) -> http.client.HTTPConnection:
        return guarded_connection(resolve, scheme, host, port, timeout=timeout, context=context)

    return connect


class KeepAliveOpener:
    """An `HttpOpener` that reuses connections; thread-safe, each connection serving one
    request at a time. ``fallback`` sends what goes through a proxy."""

    def __init__(
        self,
        connect: Connect,
        *,
        fallback: urllib.request.OpenerDirector,
        max_idle_per_origin: int = MAX_IDLE_PER_ORIGIN,
    ) -> None:
        self._connect = connect
        self._fallback = fallback
        self._max_idle = max_idle_per_origin
        self._proxies = urllib.request.getproxies()
        self._lock = threading.Lock()
        self._idle: dict[Origin, list[http.client.HTTPConnection]] = {}

    def open(self, request: urllib.request.Request, /, *, timeout: float) -> HttpResponse:
        parts = urlsplit(request.full_url)
        scheme, host = parts.scheme.lower(), parts.hostname
        if scheme not in ("http", "https"):
            raise urllib.error.URLError(f"unknown url type: {scheme}")
        if not host:
            raise urllib.error.URLError("no host given")
        if self._proxied(scheme, parts.netloc):
            answer: HttpResponse = self._fallback.open(request, timeout=timeout)
            return answer
        origin: Origin = (scheme, host, parts.port)
        pooled = self._take(origin)
        if pooled is not None:
            try:
                return self._exchange(origin, pooled, request, timeout)
            except _STALE_CONNECTION_ERRORS:
                # The server closed the idle connection (its keep-alive timeout) before
                # it answered. Sending again on a fresh connection is safe: every
                # webhook call carries an idempotency key, so a receiver that did apply
                # the first copy answers the second as a replay.
                pass
        fresh = self._connect(scheme, host, parts.port, timeout)
        return self._exchange(origin, fresh, request, timeout)

    def close(self) -> None:
        """Close the idle connections (ones in use close when their answer is read)."""
        with self._lock:
            idle = [connection for kept in self._idle.values() for connection in kept]
            self._idle.clear()
        for connection in idle:
            connection.close()

    def idle(self) -> int:
        """Connections kept open for reuse right now."""
        with self._lock:
            return sum(len(kept) for kept in self._idle.values())

    def _proxied(self, scheme: str, netloc: str) -> bool:
        # As urllib's ProxyHandler decides, so a proxy the operator configured still
        # carries the calls it carried before.
        return scheme in self._proxies and not urllib.request.proxy_bypass(netloc)

    def _take(self, origin: Origin) -> http.client.HTTPConnection | None:
        while True:
            with self._lock:
                kept = self._idle.get(origin)
                if not kept:
                    return None
                connection = kept.pop()  # the most recently used is the likeliest alive
            if _still_open(connection):
                return connection
            connection.close()

    def _give_back(self, origin: Origin, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            kept = self._idle.setdefault(origin, [])
            if len(kept) < self._max_idle:
                kept.append(connection)
                return
        connection.close()

    def _exchange(
        self,
        origin: Origin,
        connection: http.client.HTTPConnection,
        request: urllib.request.Request,
        timeout: float,
    ) -> _Response:
        try:
            if connection.sock is None:
                connection.connect()  # a new connection: the guard runs here
            connection.sock.settimeout(timeout)
            connection.request(
                request.get_method(),
                request.selector,
                body=request.data,  # type: ignore[arg-type]
                # Header names as urllib sends them, minus its "Connection: close".
                headers={name.title(): value for name, value in request.header_items()},
            )
            response = connection.getresponse()
        except BaseException:
            connection.close()
            raise
        return _Response(response, lambda reusable: self._release(origin, connection, reusable))

    def _release(
        self, origin: Origin, connection: http.client.HTTPConnection, reusable: bool
    ) -> None:
        if reusable and connection.sock is not None:
            self._give_back(origin, connection)
        else:
            connection.close()


class _Response:
    """One answer; closing it hands its connection back only if nothing of the answer is
    left unread and the server keeps the connection open."""

    def __init__(self, response: http.client.HTTPResponse, release: Callable[[bool], None]) -> None:
        self._response = response
        self._release: Callable[[bool], None] | None = release
        self.status = response.status
        self.headers: Message = response.headers

    def read(self, amt: int, /) -> bytes:
        return self._response.read(amt)

    def close(self) -> None:
        release, self._release = self._release, None
        if release is None:
            return
        response = self._response
        # isclosed(): http.client saw the end of the body (Content-Length reached or
        # the last chunk read); a body cut short leaves a length still owed.
        whole = response.isclosed() and not response.length
        response.close()
        release(whole and not response.will_close)


def _still_open(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle connection looks usable: an idle socket with something to read has
    been closed by the server (or holds bytes nobody asked for)."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        if hasattr(select, "poll"):  # select() cannot watch a descriptor above 1023
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return not poller.poll(0)
        return not select.select([sock], [], [], 0)[0]
    except (OSError, ValueError):
        return False
