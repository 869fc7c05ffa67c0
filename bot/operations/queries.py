"""Reads: a request and its targets, votes and audit trail; a person's open requests and
those awaiting their decision (and all ``/jit list`` shows, read at once); the roles they
may request and who would approve them."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from bot.config import Rule
from bot.directory import Person
from bot.operations import people, requesting_again, store
from bot.operations.context import Context
from bot.policy import match_rule, requestable_roles, same_person
from bot.storage.models import AccessRequest, AuditEvent, RequestTarget, Vote


def get(ctx: Context, request_id: str) -> AccessRequest:
    with ctx.transaction() as session:
        return store.load(session, request_id)


def targets_of(ctx: Context, request_id: str) -> list[RequestTarget]:
    with ctx.transaction() as session:
        return store.snapshot(session, request_id)[0]


def votes_of(ctx: Context, request_id: str) -> list[Vote]:
    with ctx.transaction() as session:
        return store.snapshot(session, request_id)[1]


def mine(ctx: Context, user_id: str) -> list[AccessRequest]:
    """The user's requests that are not finished yet."""
    with ctx.transaction() as session:
        return store.unfinished_of(session, user_id)


@dataclass(frozen=True)
class Listing:
    """What ``/jit list`` shows one person, read in one transaction."""

    mine: list[AccessRequest]  # their unfinished requests, oldest first
    awaiting: list[AccessRequest]  # pending requests they may decide now
    finished: list[AccessRequest]  # their last finished ones, newest first


def listing(ctx: Context, user_id: str) -> Listing:
    """Everything ``/jit list`` shows, read in one transaction: one connection from the
    pool and one BEGIN … COMMIT where reading it part by part took four of each. Who may
    decide what is worked out after it (it may ask Slack)."""
    with ctx.transaction() as session:
        mine = store.unfinished_of(session, user_id)
        pending, voted = store.pending_and_voted(session, user_id)
        finished = store.finished_of(session, user_id, requesting_again.RECENT)
    return Listing(mine, decidable(ctx, user_id, pending, voted), finished)


def awaiting(ctx: Context, user_id: str) -> list[AccessRequest]:
    """Pending requests that this user may decide now."""
    with ctx.transaction() as session:
        pending, voted = store.pending_and_voted(session, user_id)
    return decidable(ctx, user_id, pending, voted)


def decidable(
    ctx: Context, user_id: str, pending: Sequence[AccessRequest], voted: Collection[str]
) -> list[AccessRequest]:
    """Of these pending requests, those this user may decide now (``voted``: the ids of
    those they have voted on)."""
    # Who may decide is asked now, as a click would be: someone since removed from
    # the approvers (or deactivated, or turned guest) no longer sees the request.
    current: dict[tuple[str, str, str, bool], set[str]] = {}
    mine = people.own_principals(ctx, user_id)
    shown = []
    for r in pending:
        own = r.requester_id == user_id or same_person(
            mine, people.principals(ctx, r.requester_email)
        )
        if r.id in voted or (own and not r.allow_self_approval):
            continue
        # Escalated or not changes who may decide (the escalation group).
        key = (r.role, r.environment, r.requester_id, r.escalated_at is not None)
        if key not in current:
            current[key] = people.current_approvers(ctx, r)
        if user_id in current[key]:
            shown.append(r)
    return shown


def audit_events(ctx: Context, request_id: str | None = None) -> list[AuditEvent]:
    with ctx.transaction() as session:
        return store.audit_events(session, request_id)


def requestable(ctx: Context, user_id: str) -> list[tuple[str, str]]:
    """(name, description) of every role this user may request."""
    names = requestable_roles(
        ctx.config, people.membership(ctx, user_id), standing=people.standing(ctx, user_id)
    )
    return [(name, ctx.config.roles[name].description) for name in names]


def approvers_for(ctx: Context, role: str, environment: str, requester_id: str) -> Rule | None:
    matched = match_rule(ctx.config, role, environment, people.membership(ctx, requester_id))
    return matched[1] if matched else None


def person(ctx: Context, user_id: str) -> Person:
    return ctx.directory.person(user_id)
