"""``jit-bot serve``: run the bot over HTTP, or over Socket Mode with SLACK_APP_TOKEN,
until SIGTERM or SIGINT.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError

if TYPE_CHECKING:
    from slack_bolt import App
    from slack_bolt.adapter.socket_mode.base_handler import BaseSocketModeHandler

log = logging.getLogger(__name__)


def run() -> int:
    """``jit-bot serve``; the exit status."""
    from bot import collector
    from bot.app import build_runtime
    from bot.audit_key import AuditKeyError
    from bot.local import assembly
    from bot.server import HttpServer
    from bot.settings import MissingSettings, Settings

    if assembly.wanted(os.environ):
        # No Slack app: the same bot, against a local workspace in the browser.
        from bot.local import mode

        return mode.run(os.environ, _stop_on_signals)
    try:
        settings = Settings.from_env(os.environ)
    except MissingSettings as exc:
        print(f"jit-bot: {exc}", file=sys.stderr)
        return 2
    try:
        runtime = build_runtime(settings)
    except AuditKeyError as exc:
        print(f"jit-bot: {exc}", file=sys.stderr)
        return 2
    try:
        # In Socket Mode Slack comes over the WebSocket: $PORT answers /healthz only.
        server = HttpServer(runtime, "0.0.0.0", settings.port, slack_events=not settings.app_token)
    except OSError as exc:
        runtime.stop()
        print(f"jit-bot: cannot listen on port {settings.port} (PORT): {exc}", file=sys.stderr)
        return 2

    stopping = _stop_on_signals()
    socket_mode: BaseSocketModeHandler | None = None
    try:
        collector.settle_after_start_up()
        runtime.start()
        if settings.app_token:
            socket_mode = _start_socket_mode(runtime.bolt, settings.app_token, stopping)
            connected = socket_mode.client.is_connected
            runtime.slack_connection = lambda: "connected" if connected() else "connecting"
            log.info("Socket Mode; /healthz on :%s", server.port)
        else:
            log.info("listening on :%s (/slack/events, /healthz)", server.port)
        server.serve_forever()
    except SystemExit:
        pass  # a signal arrived before the server loop was running
    except SocketModeRefused as exc:
        print(f"jit-bot: {exc}", file=sys.stderr)
        return 2
    finally:
        stopping.set()
        if socket_mode is not None:
            socket_mode.close()
        server.close()
        runtime.stop()
    return 0


def _stop_on_signals() -> threading.Event:
    """SIGTERM and SIGINT stop the bot; the event is set once stopping has begun."""
    stopping = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        if stopping.is_set():
            return  # already on the way out; let the clean-up finish
        stopping.set()
        log.info("signal %s: shutting down", signum)
        # Unwinds the main thread out of the server loop, which lets in-flight requests
        # finish and closes its sockets on the way out. Closing them from this handler
        # instead would leave the loop polling closed descriptors (EBADF).
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return stopping


# Answers of apps.connections.open that no retry can fix: the token or the app is wrong.
_FATAL_SOCKET_MODE_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "not_allowed_token_type",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "missing_scope",
    }
)
_RECONNECT_FIRST_DELAY = 1.0
_RECONNECT_MAX_DELAY = 60.0


class SocketModeRefused(Exception):
    """Slack refused SLACK_APP_TOKEN; retrying would not help."""


def _start_socket_mode(
    app: App, app_token: str, stopping: threading.Event
) -> BaseSocketModeHandler:
    """Open the Socket Mode connection. A refused token is fatal; anything else (Slack
    unreachable, 5xx) is logged and retried in the background with backoff while /healthz
    keeps answering. Once a session exists, slack_sdk itself reconnects dropped ones."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    handler = SocketModeHandler(app, app_token)
    try:
        handler.connect()
    except SlackApiError as exc:
        error = exc.response.get("error")
        if error in _FATAL_SOCKET_MODE_ERRORS:
            raise SocketModeRefused(
                f"Slack refused SLACK_APP_TOKEN for Socket Mode ({error}). Set it to an "
                "app-level token (xapp-…) with the connections:write scope (Basic "
                "Information → App-Level Tokens) of the app created from "
                "slack-manifest.yaml, or unset it to serve HTTP on $PORT."
            ) from exc
        _retry_socket_mode_in_background(handler, stopping, exc)
    except OSError as exc:  # URLError, refused or reset connections, timeouts
        _retry_socket_mode_in_background(handler, stopping, exc)
    return handler


def _retry_socket_mode_in_background(
    handler: BaseSocketModeHandler, stopping: threading.Event, first_error: Exception
) -> None:
    def keep_trying() -> None:
        delay, error = _RECONNECT_FIRST_DELAY, first_error
        while True:
            log.warning(
                "Socket Mode: could not connect to Slack (%s); retrying in %.0fs", error, delay
            )
            if stopping.wait(delay):
                return
            try:
                handler.connect()
            except (SlackApiError, OSError) as exc:
                error, delay = exc, min(delay * 2, _RECONNECT_MAX_DELAY)
            else:
                log.info("Socket Mode: connected")
                return

    threading.Thread(target=keep_trying, name="jit-socket-mode-connect", daemon=True).start()
