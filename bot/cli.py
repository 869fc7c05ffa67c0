"""The ``jit-bot`` command: serve, check, db upgrade."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from types import FrameType

from bot.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jit-bot", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the bot (HTTP, or Socket Mode with SLACK_APP_TOKEN)")
    check = commands.add_parser("check", help="validate roles.yaml/approvers.yaml, print matrix")
    check.add_argument("--live", action="store_true", help="also ask each cloud")
    db = commands.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade"])
    args = parser.parse_args(argv)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.basicConfig(
        level=os.environ.get("JIT_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "serve":
            return _serve()
        if args.command == "check":
            return _check(live=args.live)
        return _db_upgrade()
    except ConfigError as exc:
        print(f"jit-bot: configuration is invalid:\n{exc}", file=sys.stderr)
        return 2


def _serve() -> int:
    from bot.app import build_runtime
    from bot.server import HttpServer
    from bot.settings import MissingSettings, Settings

    try:
        settings = Settings.from_env(os.environ)
    except MissingSettings as exc:
        print(f"jit-bot: {exc}", file=sys.stderr)
        return 2
    runtime = build_runtime(settings)
    runtime.start()
    server = HttpServer(runtime, "0.0.0.0", settings.port)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("signal %s: shutting down", signum)
        server.close()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if settings.app_token:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        handler = SocketModeHandler(runtime.bolt, settings.app_token)
        handler.connect()
        logging.getLogger(__name__).info("Socket Mode connected; /healthz on %s", server.port)
    else:
        logging.getLogger(__name__).info("listening on :%s (/slack/events, /healthz)", server.port)
    try:
        server.serve_forever()
    finally:
        runtime.stop()
    return 0


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


def _db_upgrade() -> int:
    from bot.storage.db import make_engine, upgrade

    url = os.environ.get("DATABASE_URL") or "sqlite:///jit-bot.db"
    upgrade(make_engine(url))
    print("database schema is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
