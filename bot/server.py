"""HTTP mode: one WSGI app serving Slack at /slack/events and a health check at /healthz,
on waitress (threaded, pure Python, fine behind any load balancer)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from slack_bolt.adapter.wsgi.http_request import WsgiHttpRequest
from slack_bolt.adapter.wsgi.http_response import WsgiHttpResponse
from slack_bolt.request import BoltRequest
from waitress import wasyncore
from waitress.server import create_server

from bot.app import Runtime
from bot.slack import edge

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def wsgi_app(
    runtime: Runtime, *, slack_events: bool = True
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """``/healthz``, and with ``slack_events`` Slack's ``POST /slack/events``; in Socket Mode
    Slack arrives over the WebSocket and nothing else here may reach the app."""
    secret = runtime.settings.signing_secret

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO")
        if path == "/healthz":
            return _health(runtime, start_response)
        if not (slack_events and path == SLACK_EVENTS and environ.get("REQUEST_METHOD") == "POST"):
            return _answer(start_response, 404, {"error": "not found"})
        refusal_or_request = _verified(environ, secret)
        if isinstance(refusal_or_request, edge.Refusal):
            return _refuse(start_response, refusal_or_request)
        answer = runtime.bolt.dispatch(refusal_or_request)
        if answer.status >= 500:
            # Bolt answers 500 to a payload whose fields are not the types it reads (it
            # has logged why). Only the holder of the signing secret can send one, and it
            # is a bad request, not an outage: a 5xx would page whoever watches this edge.
            return _answer(start_response, 400, {"error": "request could not be handled"})
        response = WsgiHttpResponse(answer.status, answer.headers, answer.body)
        start_response(response.status, response.get_headers())
        return response.get_body()

    return app


SLACK_EVENTS = "/slack/events"


def _verified(environ: dict[str, Any], secret: str) -> BoltRequest | edge.Refusal:
    """The request as Bolt's, once it is known to be Slack's; each check is the cheapest
    that can still refuse, so unsigned bodies are never read and nothing is parsed before
    its signature holds."""
    length = environ.get("CONTENT_LENGTH")
    refusal = edge.refuse_declared_length(length)
    if refusal is not None:
        return refusal
    signature = environ.get("HTTP_X_SLACK_SIGNATURE", "")
    timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
    if not edge.fresh_signature_headers(signature, timestamp):
        return edge.BAD_SIGNATURE
    body = edge.read_body(environ["wsgi.input"], length)
    if isinstance(body, edge.Refusal):
        return body
    if not edge.signed_by_slack(secret, timestamp, signature, body):
        return edge.BAD_SIGNATURE
    headers = WsgiHttpRequest(environ).get_headers()
    return edge.bolt_request(body, environ.get("QUERY_STRING", ""), headers)


def _health(runtime: Runtime, start_response: StartResponse) -> Iterable[bytes]:
    ok = runtime.healthy()
    health = {"status": "ok" if ok else "unavailable"}
    if runtime.slack_connection is not None:
        # Said, not failed on: grants still end on time while Slack is away, and a
        # restart would not bring Slack back.
        health["slack"] = runtime.slack_connection()
    return _answer(start_response, 200 if ok else 503, health)


def _refuse(start_response: StartResponse, refusal: edge.Refusal) -> Iterable[bytes]:
    return _answer(start_response, refusal.status, {"error": refusal.error})


def _answer(start_response: StartResponse, status: int, content: object) -> Iterable[bytes]:
    body = json.dumps(content).encode()
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


class HttpServer:
    """A running waitress server; ``port`` is the one actually bound (PORT=0 works).

    The wasyncore loop is driven here rather than by ``server.run()``: it polls in short
    slices and checks a stop flag between them, so the loop thread closes its own sockets
    when asked to stop. Waking it through waitress's trigger pipe from another thread
    instead races with the loop closing that pipe (EBADF on shutdown)."""

    _POLL_SECONDS = 0.05

    def __init__(
        self,
        runtime: Runtime,
        host: str,
        port: int,
        threads: int = 16,
        *,
        slack_events: bool = True,
        wrap: Callable[[WsgiApp], WsgiApp] | None = None,
    ) -> None:
        """``wrap`` puts routes of its own in front of the bot's (local mode's page)."""
        app = wsgi_app(runtime, slack_events=slack_events)
        self._server: Any = create_server(
            wrap(app) if wrap is not None else app,
            host=host,
            port=port,
            threads=threads,
            ident="jit-bot",
            # waitress refuses a longer body (413) from its Content-Length, or while it
            # de-chunks, before buffering it or calling the app; its default is 1 GiB.
            # +1: waitress refuses a body of exactly its limit, the app accepts the cap.
            max_request_body_size=edge.MAX_BODY_BYTES + 1,
        )
        self.port: int = self._server.effective_port
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def serve_forever(self) -> None:
        server = self._server
        try:
            while server._map and not self._stopping.is_set():
                wasyncore.loop(
                    timeout=self._POLL_SECONDS,
                    map=server._map,
                    use_poll=server.adj.asyncore_use_poll,
                    count=1,
                )
        finally:
            # Requests in flight finish before their sockets go.
            server.task_dispatcher.shutdown(cancel_pending=False, timeout=5)
            wasyncore.close_all(server._map)

    def start_in_background(self) -> HttpServer:
        self._thread = threading.Thread(target=self.serve_forever, name="jit-http", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Let requests in flight finish (the loop keeps flushing their answers), then stop
        the loop, which closes every socket."""
        self._server.task_dispatcher.shutdown(cancel_pending=False, timeout=5)
        self._stopping.set()
        if self._thread is not None:
            self._knock()
            self._thread.join(timeout=10)
        else:
            # serve_forever ran in this thread and was left, or never ran at all.
            wasyncore.close_all(self._server._map)

    def _knock(self) -> None:
        """Connect to our own port, so the loop's poll returns at once and sees the stop
        flag instead of sleeping out its slice: stopping takes no poll interval. A loop
        that has already closed the port refuses the knock, which is as good."""
        host = getattr(self._server, "effective_host", "127.0.0.1")
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        with contextlib.suppress(OSError):
            socket.create_connection((host, self.port), timeout=1).close()
