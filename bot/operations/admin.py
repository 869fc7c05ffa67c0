"""Administration: ``/jit sync`` and the signals through which running bots tell each
other to forget what they cached."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from bot import audit, quotas
from bot.errors import NotAllowed
from bot.names import BOT_ACTOR, AuditAction
from bot.operations import store
from bot.operations.context import Context
from bot.storage.models import BotSignal

log = logging.getLogger(__name__)

SYNC = "sync"  # the signal a sync raises


def sync(ctx: Context, actor: str) -> None:
    """Forget cached users, groups, accounts and names here, and ask every other
    running bot to do the same (``/jit sync``)."""
    allowed = ctx.config.settings.admins + [
        entry for members in ctx.config.groups.values() for entry in members
    ]
    if actor != BOT_ACTOR and not ctx.directory.is_member(allowed, actor):
        raise NotAllowed("Only approvers and admins can run `/jit sync`.")
    with ctx.transaction() as session:
        if actor != BOT_ACTOR:
            quotas.check_sync(session, ctx.config.settings, actor, ctx.now())
        audit.record(
            session,
            ctx.clock,
            ctx.notify,
            actor=actor,
            action=AuditAction.SYNC,
            request_id=None,
            details={},
        )
    raise_signal(ctx.sessions, SYNC, ctx.now())
    follow_signals(ctx)


def follow_signals(ctx: Context) -> None:
    """Act on a sync raised by `jit-bot sync` or another replica since we last looked."""
    with ctx.transaction() as session:
        signal = store.signal(session, SYNC)
    if signal is None or (ctx.synced_at and signal.raised_at <= ctx.synced_at):
        return
    ctx.synced_at = signal.raised_at
    ctx.directory.refresh()
    for provider in ctx.providers.values():
        provider.refresh()
    log.info("caches refreshed (sync raised at %s)", signal.raised_at)


def raise_signal(sessions: sessionmaker[Session], name: str, at: datetime) -> None:
    """Record a signal for every running bot (upsert: the newest time wins)."""
    with sessions.begin() as session:
        signal = session.get(BotSignal, name)
        if signal is None:
            session.add(BotSignal(name=name, raised_at=at))
        elif signal.raised_at < at:
            signal.raised_at = at
