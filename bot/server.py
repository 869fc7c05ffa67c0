"""HTTP mode: one WSGI app serving Slack at /slack/events and a health check at /healthz,
on waitress (threaded, pure Python, fine behind any load balancer)."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt.adapter.wsgi import SlackRequestHandler
from waitress import wasyncore
from waitress.server import create_server

from bot.app import Runtime

StartResponse = Callable[..., Any]


def wsgi_app(runtime: Runtime) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    slack = SlackRequestHandler(runtime.bolt, path="/slack/events")

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            ok = runtime.healthy()
            health = {"status": "ok" if ok else "unavailable"}
            if runtime.slack_connection is not None:
                # Said, not failed on: grants still end on time while Slack is away, and a
                # restart would not bring Slack back.
                health["slack"] = runtime.slack_connection()
            body = json.dumps(health).encode()
            start_response(
                "200 OK" if ok else "503 Service Unavailable",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body]
        if not _well_formed(environ):
            return _unauthorized(start_response)
        return slack(environ, start_response)

    return app


_SIGNATURE = re.compile(r"^v0=[0-9a-f]{64}$")
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


def _well_formed(environ: dict[str, Any]) -> bool:
    """Slack's signature headers have one exact shape. Anything else is refused before
    Bolt sees it: its verifier raises on non-ASCII signatures instead of saying no."""
    signature = environ.get("HTTP_X_SLACK_SIGNATURE", "")
    timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
    return bool(_SIGNATURE.match(signature) and _TIMESTAMP.match(timestamp))


def _unauthorized(start_response: StartResponse) -> Iterable[bytes]:
    body = b'{"error": "invalid request signature"}'
    start_response(
        "401 Unauthorized",
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

    def __init__(self, runtime: Runtime, host: str, port: int, threads: int = 16) -> None:
        self._server: Any = create_server(
            wsgi_app(runtime), host=host, port=port, threads=threads, ident="jit-bot"
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
            self._thread.join(timeout=10)
        else:
            # serve_forever ran in this thread and was left, or never ran at all.
            wasyncore.close_all(self._server._map)
