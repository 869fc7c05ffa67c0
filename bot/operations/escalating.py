"""Escalation: a request still pending ``escalate_after`` after it was asked is put
before the rule's ``escalate_to`` group too. Its members become approvers of it (their
clicks are checked at click time like anyone's, see ``people.current_approvers``) and get
the request with working buttons; the approvers asked first are told, in a threaded reply
to their DM, whom it went to. The requester is never among them.

Claimed by a compare-and-set on ``escalated_at`` in the transaction that records it, so a
restart or a second replica escalates once. One request that cannot be escalated now (Slack
does not answer) waits for the next run without holding up the others.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlmodel import col

from bot.durations import format_duration
from bot.errors import DirectoryUnavailable
from bot.names import BOT_ACTOR, AuditAction
from bot.notify import asked
from bot.operations import people, store
from bot.operations.context import Context
from bot.operations.transition import audit, state_of
from bot.storage.models import AccessRequest, Status

log = logging.getLogger(__name__)

#: How often due escalations are looked for (in real time, like the sweeper).
CHECK_EVERY = timedelta(seconds=30)


def escalate(ctx: Context) -> int:
    """Escalate every pending request whose escalation is due; how many were."""
    now = ctx.now()
    fresh = now - ctx.config.settings.pending_ttl
    with ctx.transaction() as session:
        due = store.requests_where(
            session,
            col(AccessRequest.status) == Status.PENDING,
            col(AccessRequest.escalated_at).is_(None),
            col(AccessRequest.escalate_at) <= now,
            col(AccessRequest.created_at) > fresh,  # past pending_ttl it only expires
        )
    escalated = 0
    for request in due:
        try:
            escalated += _escalate(ctx, request, now)
        except DirectoryUnavailable as exc:
            log.warning("escalating %s waits for the next run: %s", request.id, exc)
        except Exception:
            log.exception("escalating %s failed; the next run tries again", request.id)
    return escalated


def _escalate(ctx: Context, request: AccessRequest, now: datetime) -> bool:
    rule = people.current_rule(ctx, request)
    group = rule.escalate_to if rule is not None else None
    told = asked(request.approvers, request.quiet_approvers)
    # A quiet approver of the group is asked now, like the rest of it.
    added = (
        [] if group is None else sorted(people.escalation_members(ctx, group, request) - set(told))
    )
    with ctx.transaction() as session:
        if not store.changed(
            session,
            request.id,
            col(AccessRequest.status) == Status.PENDING,
            col(AccessRequest.escalated_at).is_(None),
            col(AccessRequest.escalate_at) == request.escalate_at,
            escalate_at=None,
            escalated_at=now if group is not None else None,
            approvers=[*request.approvers, *(a for a in added if a not in request.approvers)],
            quiet_approvers=[q for q in request.quiet_approvers if q not in added],
        ):
            return False  # decided meanwhile, or another process escalated it
        if group is None:
            return False  # the config no longer escalates it
        current = store.load(session, request.id)
        audit(
            ctx,
            session,
            BOT_ACTOR,
            AuditAction.ESCALATED,
            current,
            group=group,
            approvers=added,
            waited=format_duration(now - request.created_at),
        )
        state = state_of(session, current, store.snapshot(session, request.id))
        ctx.notify.escalate(session, state, group, added, informed=told)
    return True
