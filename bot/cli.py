"""The ``jit-bot`` command: serve, check, sync, audit, db upgrade."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError

from bot.config import ConfigError

if TYPE_CHECKING:
    from slack_bolt import App
    from slack_bolt.adapter.socket_mode.base_handler import BaseSocketModeHandler
    from sqlalchemy.orm import Session, sessionmaker

    from bot.audit import Verdict

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jit-bot", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the bot (HTTP, or Socket Mode with SLACK_APP_TOKEN)")
    check = commands.add_parser("check", help="validate roles.yaml/approvers.yaml, print matrix")
    check.add_argument("--live", action="store_true", help="also ask each cloud")
    db = commands.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade"])
    commands.add_parser(
        "sync", help="make running bots re-read users, groups and cloud accounts now"
    )
    audit_cmd = commands.add_parser("audit", help="verify or export the audit trail")
    audit_actions = audit_cmd.add_subparsers(dest="audit_action", required=True)
    verify = audit_actions.add_parser(
        "verify", help="check the keyed hash chain; name the first bad event"
    )
    verify.add_argument(
        "--against-slack",
        action="store_true",
        help="also compare every event with its post in the audit channel (JIT_AUDIT_CHANNEL)",
    )
    verify.add_argument(
        "--previous-key-file",
        action="append",
        default=[],
        metavar="PATH",
        help="a key the trail was signed with before a rotation (repeatable)",
    )
    export = audit_actions.add_parser("export", help="write the trail for auditors")
    export.add_argument("--since", type=_when, help="ISO date/time (UTC unless given)")
    export.add_argument("--until", type=_when, help="ISO date/time, exclusive")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.add_argument(
        "--kind",
        choices=["events", "grants"],
        default="events",
        help="every event, or one row per grant: who had which role where, approved by "
        "whom, from when to when",
    )
    export.add_argument("--output", help="file to write (default: standard output)")
    args = parser.parse_args(argv)
    configure_logging(os.environ.get("JIT_LOG_LEVEL", "INFO"))
    try:
        if args.command == "serve":
            return _serve()
        if args.command == "check":
            return _check(live=args.live)
        if args.command == "sync":
            return _sync()
        if args.command == "audit":
            return _audit(args)
        return _db_upgrade()
    except ConfigError as exc:
        print(f"jit-bot: configuration is invalid:\n{exc}", file=sys.stderr)
        return 2


# Loggers that write credentials at DEBUG, so they never go below INFO: botocore logs each
# request's headers and canonical request (X-Amz-Security-Token) and each response body
# (an STS AssumeRole answer holds SecretAccessKey and SessionToken).
# slack_sdk's Socket Mode client logs each envelope it receives (a request body) at DEBUG.
# slack_sdk.web and slack_sdk.webhook log the bodies they send (typed reasons, raw) and
# response_url capability links at DEBUG.
LEAKY_AT_DEBUG = (
    "boto3",
    "botocore",
    "slack_sdk.socket_mode",
    "slack_sdk.web",
    "slack_sdk.webhook",
)


def configure_logging(level: str) -> None:
    """Log at ``level`` (JIT_LOG_LEVEL), except where that would print secrets."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    floor = max(logging.INFO, logging.getLogger().getEffectiveLevel())
    for name in LEAKY_AT_DEBUG:
        logging.getLogger(name).setLevel(floor)


def _serve() -> int:
    from bot.app import build_runtime
    from bot.audit_key import AuditKeyError
    from bot.server import HttpServer
    from bot.settings import MissingSettings, Settings

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
    socket_mode: BaseSocketModeHandler | None = None
    try:
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


def _check(*, live: bool) -> int:
    from bot.app import default_providers, load_checked_config
    from bot.matrix import render_matrix
    from bot.settings import Settings

    settings = Settings(
        bot_token="",
        signing_secret="",
        roles_file=os.environ.get("JIT_ROLES_FILE") or Settings.roles_file,
        approvers_file=os.environ.get("JIT_APPROVERS_FILE") or Settings.approvers_file,
    )
    config, warnings = load_checked_config(settings, default_providers(os.environ), live=live)
    print(render_matrix(config))
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"\n{settings.roles_file} and {settings.approvers_file} are valid.")
    return 0


def _sync() -> int:
    from sqlalchemy.orm import sessionmaker

    from bot import audit, audit_key
    from bot.clock import SystemClock
    from bot.service import raise_signal
    from bot.slack.notifier import SlackNotifier
    from bot.storage.db import make_engine, upgrade

    url = os.environ.get("DATABASE_URL") or "sqlite:///jit-bot.db"
    try:
        key = audit_key.for_bot(
            os.environ.get("JIT_AUDIT_KEY"), os.environ.get("JIT_AUDIT_KEY_FILE"), url
        )
    except audit_key.AuditKeyError as exc:
        print(f"jit-bot: {exc}", file=sys.stderr)
        return 2
    engine = make_engine(url)
    upgrade(engine)
    sessions = sessionmaker(engine, expire_on_commit=False, info=audit.signing_info(key))
    clock = SystemClock()
    raise_signal(sessions, "sync", clock.now())
    # The running bot's outbox worker posts this to the audit channel.
    notifier = SlackNotifier(clock, os.environ.get("JIT_AUDIT_CHANNEL"), on_enqueue=lambda: None)
    with sessions.begin() as session:
        audit.record(
            session, clock, notifier, actor="cli", action="sync", request_id=None, details={}
        )
    print("sync requested: running bots re-read users, groups and cloud accounts before their")
    print("next request, and within one sweep interval at the latest.")
    return 0


def _when(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{value}' is not an ISO date or time, e.g. 2026-11-01 or 2026-11-01T09:00"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _audit(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import sessionmaker

    from bot import audit
    from bot.storage.db import make_engine, upgrade

    engine = make_engine(os.environ.get("DATABASE_URL") or "sqlite:///jit-bot.db")
    upgrade(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    if args.audit_action == "verify":
        return _audit_verify(args, sessions)
    with contextlib.ExitStack() as stack:
        out = (
            stack.enter_context(open(args.output, "w", newline="", encoding="utf-8"))
            if args.output
            else sys.stdout
        )
        count = audit.export(
            sessions, out, since=args.since, until=args.until, fmt=args.format, kind=args.kind
        )
    print(f"exported {count} {args.kind}", file=sys.stderr)
    return 0


def _audit_verify(args: argparse.Namespace, sessions: sessionmaker[Session]) -> int:
    from bot import audit, audit_key

    env = os.environ
    try:
        keys = [
            audit_key.for_verifier(
                env.get("JIT_AUDIT_KEY"),
                env.get("JIT_AUDIT_KEY_FILE"),
                env.get("DATABASE_URL") or "sqlite:///jit-bot.db",
            ),
            *(audit_key.from_file(p, "--previous-key-file") for p in args.previous_key_file),
        ]
    except audit_key.AuditKeyError as exc:
        print(f"jit-bot: {exc}", file=sys.stderr)
        return 2
    verdict = audit.verify(sessions, keys)
    if verdict.ok:
        signed = ", ".join(verdict.key_ids) or "none"
        print(
            f"audit trail intact: {verdict.checked} events, hash chain verified "
            f"({verdict.checked - verdict.unkeyed} signed by key {signed}; {verdict.unkeyed} "
            "unkeyed from before the key, covered by the first keyed event)"
        )
        print(_keyed_boundary(verdict))
    else:
        state = "NOT CHECKED from" if verdict.unchecked else "BROKEN at"
        print(
            f"audit trail {state} event #{verdict.first_bad_id}: it {verdict.problem} "
            f"({verdict.checked} events before it verified)",
            file=sys.stderr,
        )
    if not args.against_slack:
        return 0 if verdict.ok else 1
    witnessed = _against_slack(sessions)
    if witnessed is None:
        return 2
    return 0 if verdict.ok and witnessed else 1


def _keyed_boundary(verdict: Verdict) -> str:
    """Where the keyed chain starts: what is before it only the channel can vouch for."""
    if verdict.keyed_from is None:
        return "no keyed events yet"
    at = verdict.keyed_at.isoformat() if verdict.keyed_at else "?"
    if not verdict.unkeyed:
        return f"keyed from event #{verdict.keyed_from} at {at}, the first event"
    return (
        f"keyed from event #{verdict.keyed_from} at {at}; {verdict.unkeyed} earlier events "
        "are only SHA-256 chained: check them against the channel with --against-slack"
    )


def _against_slack(sessions: sessionmaker[Session]) -> bool | None:
    """Compare the trail with the audit channel; True if it agrees, None if the channel
    could not be read."""
    from slack_sdk import WebClient

    from bot import audit
    from bot.audit_witness import compare
    from bot.slack.audit_channel import ChannelUnreadable, read_seals

    token, channel = os.environ.get("SLACK_BOT_TOKEN"), os.environ.get("JIT_AUDIT_CHANNEL")
    missing = [n for n, v in (("SLACK_BOT_TOKEN", token), ("JIT_AUDIT_CHANNEL", channel)) if not v]
    if missing or not token or not channel:
        print(
            f"jit-bot: --against-slack reads the audit channel: set {' and '.join(missing)} "
            "as for `jit-bot serve`.",
            file=sys.stderr,
        )
        return None
    client = WebClient(
        token=token, base_url=os.environ.get("SLACK_API_URL") or WebClient.BASE_URL, timeout=10
    )
    try:
        posted = read_seals(client, channel)
    except ChannelUnreadable as exc:
        print(f"jit-bot: cannot read the audit channel {channel}: {exc}", file=sys.stderr)
        return None
    testimony = compare(audit.seals(sessions), posted, now=datetime.now(UTC))
    for finding in testimony.findings:
        print(f"event #{finding.event_id}: {finding.problem}", file=sys.stderr)
    for waiting in testimony.waiting:
        print(f"warning: event #{waiting.event_id}: {waiting.problem}", file=sys.stderr)
    newest = "none" if testimony.newest_posted is None else f"#{testimony.newest_posted}"
    summary = (
        f"{testimony.events} events in the database, {testimony.posted} in the audit channel "
        f"{channel} (newest posted: {newest})"
    )
    if testimony.ok:
        print(f"audit channel agrees: {summary}")
    else:
        print(
            f"audit channel DISAGREES: {len(testimony.findings)} findings; {summary}",
            file=sys.stderr,
        )
    return testimony.ok


def _db_upgrade() -> int:
    from bot.storage.db import make_engine, upgrade

    url = os.environ.get("DATABASE_URL") or "sqlite:///jit-bot.db"
    upgrade(make_engine(url))
    print("database schema is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
