"""The nudge before access ends: "10 minutes left", with Extend and End access now, to
the person holding it, ``remind_before_expiry`` (per role) before its expiry.

Driven from the database, like the sweeper: the expiry nudged about is recorded on the
request (``nudged_for``) by a compare-and-set in the transaction that queues the DM, so a
restart or a second replica nudges once, and an extension that moves the expiry gets a
nudge of its own before the new end. Access granted for no longer than the reminder's
lead is not nudged: the grant itself said when it ends.
"""

from __future__ import annotations

from datetime import timedelta

from bot.operations import due, store
from bot.operations.context import Context
from bot.operations.transition import state_of

#: How often the nudges are looked for (in real time, like the sweeper).
CHECK_EVERY = timedelta(seconds=30)


def nudge(ctx: Context) -> int:
    """Nudge whoever's access ends within their role's ``remind_before_expiry``; how
    many were nudged."""
    leads = {
        name: role.remind_before_expiry
        for name, role in ctx.config.roles.items()
        if role.remind_before_expiry is not None
    }
    if not leads:
        return 0
    now = ctx.now()
    with ctx.transaction() as session:
        near = due.near_expiry(session, now, now + max(leads.values()))
    sent = 0
    for request in near:
        lead = leads.get(request.role)
        expires_at, granted_at = request.expires_at, request.granted_at
        if lead is None or expires_at is None or expires_at - now > lead:
            continue
        if granted_at is not None and expires_at - granted_at <= lead:
            continue
        with ctx.transaction() as session:
            if not store.mark_nudged(session, request.id, expires_at):
                continue  # nudged by another process, or extended since it was read
            nudged = store.load(session, request.id)
            state = state_of(session, nudged, store.snapshot(session, request.id))
            ctx.notify.nudge_requester(session, state, expires_at - now)
        sent += 1
    return sent
