"""The local page's routes, in front of the bot's own WSGI app on the same server.

``/`` and ``/static/*`` serve the page; ``/local/api/*`` is what it calls: the state of
the workspace as one person sees it, and what that person does (a command, a click, a
modal submitted or closed). Everything else, ``/slack/events`` and ``/healthz``
included, goes to the bot's app untouched.

The page is served to this machine only, but any web site open in the same browser can
send requests to 127.0.0.1: the API takes JSON only (a cross-site form cannot send it
without a CORS preflight, which is never granted) and only under this server's own Host
(a rebound DNS name does not get through).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from bot.local.feed import Feed
from bot.local.interactions import Interactions, NotAllowed

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

STATIC = Path(__file__).with_name("static")
_STATIC_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "blocks.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
# No inline script or style, nothing from elsewhere: text from messages cannot run.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_MAX_BODY = 64 * 1024
LONG_POLL_SECONDS = 15.0
# Long polls waiting at once; more are answered at once. The server's threads also carry
# the bot's own /slack/events, which the page's actions post to: polls must leave room.
_MAX_WAITING = 4


class LocalWeb:
    """The page's routes; ``wrap`` puts them in front of the bot's WSGI app."""

    def __init__(self, feed: Feed, interactions: Interactions, stopping: threading.Event) -> None:
        self._feed = feed
        self._interactions = interactions
        self._stopping = stopping
        self._hosts: set[str] = set()
        self._waiting = threading.BoundedSemaphore(_MAX_WAITING)
        self._actions: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "/local/api/command": self._command,
            "/local/api/click": self._click,
            "/local/api/choose": self._choose,
            "/local/api/submit": self._submit,
            "/local/api/close": self._close,
        }

    def listening_on(self, port: int) -> None:
        """The Host names the page may be reached under."""
        self._hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
        if port == 80:  # browsers leave the default port out of Host
            self._hosts |= {"127.0.0.1", "localhost"}

    def wrap(self, bot_app: WsgiApp) -> WsgiApp:
        def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            path = environ.get("PATH_INFO") or "/"
            method = environ.get("REQUEST_METHOD")
            if path == "/" or path.startswith("/static/"):
                return (
                    self._static(path, start_response)
                    if method == "GET"
                    else bot_app(environ, start_response)
                )
            if not path.startswith("/local/"):
                return bot_app(environ, start_response)
            if environ.get("HTTP_HOST") not in self._hosts:
                return _json(start_response, 403, {"error": "unknown host"})
            if path == "/local/api/state" and method == "GET":
                return self._state(environ, start_response)
            action = self._actions.get(path)
            if action is None or method != "POST":
                return _json(start_response, 404, {"error": "not found"})
            return self._act(action, environ, start_response)

        return app

    def _static(self, path: str, start_response: StartResponse) -> Iterable[bytes]:
        name = "index.html" if path == "/" else path.removeprefix("/static/")
        content_type = _STATIC_TYPES.get(name)
        if content_type is None:
            return _json(start_response, 404, {"error": "not found"})
        body = (STATIC / name).read_bytes()
        start_response(
            "200 OK",
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
                ("Content-Security-Policy", _CSP),
                ("X-Content-Type-Options", "nosniff"),
                ("Cache-Control", "no-store"),
            ],
        )
        return [body]

    def _state(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        query = parse_qs(environ.get("QUERY_STRING") or "")
        user = (query.get("as") or [""])[0]
        since = (query.get("since") or [""])[0]
        if since.isascii() and since.isdigit():
            if not self._waiting.acquire(blocking=False):
                # Enough pages wait already: this one asks again in a second.
                return _json(start_response, 429, {"error": "too many pages waiting"})
            try:
                self._feed.wait(int(since), LONG_POLL_SECONDS, self._stopping)
            finally:
                self._waiting.release()
        return _json(start_response, 200, self._feed.state(user))

    def _act(
        self,
        action: Callable[[dict[str, Any]], dict[str, Any]],
        environ: dict[str, Any],
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        content_type = (environ.get("CONTENT_TYPE") or "").split(";")[0].strip()
        if content_type != "application/json":
            return _json(start_response, 415, {"error": "send application/json"})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= _MAX_BODY:
            return _json(start_response, 400, {"error": "a JSON body of at most 64 KiB"})
        try:
            body = json.loads(environ["wsgi.input"].read(length))
            if not isinstance(body, dict):
                raise ValueError("not an object")
            return _json(start_response, 200, action(body))
        except NotAllowed as exc:
            return _json(start_response, 400, {"error": str(exc)})
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            return _json(start_response, 400, {"error": f"malformed request: {exc}"})
        except OSError as exc:  # the bot did not answer its /slack/events in time
            return _json(start_response, 502, {"error": f"the bot did not answer: {exc}"})

    # ------------------------------------------------------------------ actions

    def _command(self, body: dict[str, Any]) -> dict[str, Any]:
        self._interactions.command(_text(body, "as"), _text(body, "text"), _text(body, "channel"))
        return {"ok": True}

    def _click(self, body: dict[str, Any]) -> dict[str, Any]:
        self._interactions.click(
            _text(body, "as"), _text(body, "channel"), _text(body, "ts"), _action(body)
        )
        return {"ok": True}

    def _choose(self, body: dict[str, Any]) -> dict[str, Any]:
        self._interactions.choose(
            _text(body, "as"), _text(body, "view_id"), _action(body), body.get("values")
        )
        return {"ok": True}

    def _submit(self, body: dict[str, Any]) -> dict[str, Any]:
        errors = self._interactions.submit(
            _text(body, "as"), _text(body, "view_id"), body.get("values")
        )
        return {"ok": not errors, "errors": errors}

    def _close(self, body: dict[str, Any]) -> dict[str, Any]:
        self._interactions.close(_text(body, "as"), _text(body, "view_id"))
        return {"ok": True}


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def _action(body: dict[str, Any]) -> dict[str, str]:
    action = body.get("action")
    if not isinstance(action, dict) or not isinstance(action.get("action_id"), str):
        raise ValueError("action must name an action_id")
    return {k: v for k, v in action.items() if isinstance(v, str)}


def _json(start_response: StartResponse, status: int, content: object) -> Iterable[bytes]:
    body = json.dumps(content).encode()
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
        ],
    )
    return [body]
