"""The ``jit-bot`` command: serve, check, sync, audit, stats, db upgrade, import."""

from __future__ import annotations

import argparse
import os
import sys

from bot.cli import admin, audit, importing, serve, stats
from bot.cli.logs import LEAKY_AT_DEBUG, configure_logging
from bot.config import ConfigError

__all__ = ["LEAKY_AT_DEBUG", "configure_logging", "main"]


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
    audit.add_parser(commands)
    stats.add_parser(commands)
    importing.add_parser(commands)
    args = parser.parse_args(argv)
    configure_logging(os.environ.get("JIT_LOG_LEVEL", _log_level(args.command)))
    try:
        if args.command == "serve":
            return serve.run()
        if args.command == "check":
            return admin.check(live=args.live)
        if args.command == "sync":
            return admin.sync()
        if args.command == "audit":
            return audit.run(args)
        if args.command == "import":
            return importing.run(args)
        if args.command == "stats":
            return stats.run(args)
        return admin.db_upgrade()
    except ConfigError as exc:
        print(f"jit-bot: configuration is invalid:\n{exc}", file=sys.stderr)
        return 2


def _log_level(command: str) -> str:
    """An import and stats talk to people on stdout and stderr: INFO lines (the cloud
    SDKs' tokens and requests, the migrations checked) would bury what they print."""
    return "WARNING" if command in ("import", "stats") else "INFO"
