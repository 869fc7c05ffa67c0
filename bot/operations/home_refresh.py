"""Keeping the Home tab current: who has opened it, whose Home a change concerns, and
the queued re-publish that follows.

A Home is re-published through the outbox in the transaction of the change it shows
(``after``, called for every audited transition), so it is never lost and never sent for
a change rolled back; the outbox builds the view when it sends it, from the database as
it is then. Only the Homes of people who have opened theirs at least once are refreshed:
anyone else's is built when they first open it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col

from bot.names import AuditAction
from bot.operations.context import Context
from bot.storage.lists import among
from bot.storage.models import AccessRequest, HomeViewer

#: What changes the admins' sections of the Home: access starting, moving or ending
#: (everyone's active access) and break-glass uses opened for review or reviewed.
ADMIN_NEWS = frozenset(
    {
        AuditAction.GRANTED,
        AuditAction.EXPIRY_MOVED,
        AuditAction.REVOKE_STARTED,
        AuditAction.REVOKED,
        AuditAction.REVOKE_FAILED,
        AuditAction.BREAK_GLASS,
        AuditAction.BREAK_GLASS_REVIEWED,
    }
)


def concerned(request: AccessRequest) -> set[str]:
    """Whose Home shows this request: its requester's (mine) and its approvers' (waiting
    for my decision, or a break-glass use to review)."""
    return {request.requester_id, *request.approvers}


def after(ctx: Context, session: Session, events: Sequence[tuple[str, AccessRequest]]) -> None:
    """Queue a refresh of every Home that (action, request) ``events`` change, in the
    caller's transaction."""
    if not events:
        return
    users = set().union(*(concerned(request) for _, request in events))
    admins = any(action in ADMIN_NEWS for action, _ in events)
    shown = _viewers(session, users, admins=admins)
    if shown:
        ctx.notify.refresh_homes(session, sorted(shown))


def opened(ctx: Context, user_id: str, *, admin: bool) -> None:
    """``user_id`` opened their Home: remember them (their Home is refreshed from now on)
    and queue it, built when sent, without the notice of a click made before."""
    _update(ctx, user_id, opened_at=ctx.now(), admin=admin, notice=None)


def show(ctx: Context, user_id: str, notice: str | None) -> None:
    """Queue ``user_id``'s Home after a click on it, ``notice`` (mrkdwn, escaped) at its
    top: what the click did, or why not, where the person looks."""
    _update(ctx, user_id, notice=notice)


def _update(ctx: Context, user_id: str, **values: Any) -> None:
    """Store ``values`` on the viewer's row (made if new) and queue their Home, in one
    transaction."""
    for attempt in range(2):
        try:
            with ctx.transaction() as session:
                viewer = session.get(HomeViewer, user_id)
                if viewer is None:
                    session.add(HomeViewer(user_id=user_id, **{"opened_at": ctx.now(), **values}))
                    session.flush()
                else:
                    for name, value in values.items():
                        setattr(viewer, name, value)
                ctx.notify.refresh_homes(session, [user_id])
            return
        except IntegrityError:
            # Opened on two devices at once: the other stored the row first; update it.
            if attempt:
                raise


def _viewers(session: Session, users: Collection[str], *, admins: bool) -> set[str]:
    """Those of ``users`` who have opened their Home, and, ``admins``, every admin who has."""
    asked = among(session, col(HomeViewer.user_id), sorted(users))
    where = or_(asked, col(HomeViewer.admin)) if admins else asked
    return set(session.scalars(select(col(HomeViewer.user_id)).where(where)))
