"""Reminders to approvers: a request still pending ``remind_after`` (per rule, default
15m) after it was asked reminds the approvers it asked and who have not voted, in a
threaded reply to their DM; then after twice as long each time (15m, 45m, 1h45m …) until
it is decided, cancelled or expired.

Driven from the database, like the sweeper: each reminder is claimed by a compare-and-set
on the request's ``next_reminder_at`` in the transaction that queues it, so a restart
between two reminders neither loses nor repeats one, and two replicas send it once. A bot
that was down through several reminder times sends one reminder, not a burst.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import col

from bot.notify import asked
from bot.operations import store
from bot.operations.context import Context
from bot.storage.models import AccessRequest, Status

#: How often due reminders are looked for (in real time, like the sweeper).
CHECK_EVERY = timedelta(seconds=30)


def remind(ctx: Context) -> int:
    """Remind the approvers of every pending request whose reminder is due; how many
    requests' approvers were reminded."""
    now = ctx.now()
    fresh = now - ctx.config.settings.pending_ttl
    with ctx.transaction() as session:
        due = store.requests_where(
            session,
            col(AccessRequest.status) == Status.PENDING,
            col(AccessRequest.next_reminder_at) <= now,
            col(AccessRequest.created_at) > fresh,  # past pending_ttl it only expires
        )
    sent = 0
    for request in due:
        scheduled, last = request.next_reminder_at, request.reminded_at
        if scheduled is None:
            continue
        reminded_at, next_at = following(last or request.created_at, scheduled, now)
        with ctx.transaction() as session:
            if not store.changed(
                session,
                request.id,
                col(AccessRequest.status) == Status.PENDING,
                col(AccessRequest.next_reminder_at) == scheduled,
                reminded_at=reminded_at,
                next_reminder_at=next_at,
            ):
                continue  # decided meanwhile, or another process reminded it
            voted = {voter for voter, _ in store.votes_cast(session, request.id)}
            waiting = [
                a
                for a in asked(request.approvers, request.quiet_approvers)
                if a not in voted and a != request.requester_id
            ]
            ctx.notify.remind_approvers(session, request, waiting, now - request.created_at)
        sent += 1
    return sent


def following(last: datetime, scheduled: datetime, now: datetime) -> tuple[datetime, datetime]:
    """The reminder due at ``scheduled`` (the one before it at ``last``) is sent now: the
    time it stands for, and when the next one is due, twice as long after it. Reminder
    times a stopped bot slept through are skipped, not sent in a burst."""
    gap = max(scheduled - last, timedelta(minutes=1))
    sent_for, following_at = scheduled, scheduled + 2 * gap
    while following_at <= now:
        gap *= 2
        sent_for, following_at = following_at, following_at + 2 * gap
    return sent_for, following_at
