"""The operator's commands around the bot: ``check`` the configuration, ``sync`` the
running bots, ``db upgrade`` the schema.
"""

from __future__ import annotations

import os
import sys

from bot.names import AuditAction


def check(*, live: bool) -> int:
    """``jit-bot check``: validate both files, print the matrix of who may approve what."""
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


def sync() -> int:
    """``jit-bot sync``: raise the signal running bots re-read users, groups and accounts on."""
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
            session,
            clock,
            notifier,
            actor="cli",
            action=AuditAction.SYNC,
            request_id=None,
            details={},
        )
    print("sync requested: running bots re-read users, groups and cloud accounts before their")
    print("next request, and within one sweep interval at the latest.")
    return 0


def db_upgrade() -> int:
    """``jit-bot db upgrade``: migrate the database to the latest schema."""
    from bot.storage.db import make_engine, upgrade

    url = os.environ.get("DATABASE_URL") or "sqlite:///jit-bot.db"
    upgrade(make_engine(url))
    print("database schema is up to date")
    return 0
