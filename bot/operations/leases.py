"""Who works on a request: the in-process claim (one thread per request), the fence (the
version at which this process took the request over) and the lease on the request row
that tells other processes this one is still at it.

A thread that sat in a provider call for longer than a lease may find another process has
taken its request over; ``owned`` and ``renew`` tell it so before its next call or write.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy.orm import Session

from bot.operations import store
from bot.operations.context import Context
from bot.storage.models import AccessRequest


@contextmanager
def claim(ctx: Context, request_id: str) -> Iterator[bool]:
    """In-process guard: one thread at a time works on a request's grant or revoke."""
    with claim_all(ctx, [request_id]) as claimed:
        yield bool(claimed)


@contextmanager
def claim_all(ctx: Context, request_ids: Sequence[str]) -> Iterator[list[str]]:
    """Claim those of ``request_ids`` no other thread of this process is working on."""
    claimed = take(ctx, request_ids)
    try:
        yield claimed
    finally:
        let_go(ctx, claimed)


def take(ctx: Context, request_ids: Sequence[str]) -> list[str]:
    """Claim (see ``claim_all``) for work that ends on another thread."""
    with ctx.busy_lock:
        claimed = [rid for rid in dict.fromkeys(request_ids) if rid not in ctx.busy]
        ctx.busy.update(claimed)
    return claimed


def let_go(ctx: Context, claimed: Sequence[str]) -> None:
    with ctx.busy_lock:
        ctx.busy.difference_update(claimed)
        for request_id in claimed:
            ctx.fences.pop(request_id, None)


def fence(ctx: Context, requests: Sequence[AccessRequest]) -> None:
    """This process now owns these requests' grant or revoke, at their version."""
    now = ctx.now()
    with ctx.busy_lock:
        for request in requests:
            ctx.fences[request.id] = (request.version, now)


def versions(ctx: Context, request_ids: Sequence[str]) -> dict[str, int]:
    """The version this process owns each of these requests at (those it owns)."""
    with ctx.busy_lock:
        return {rid: ctx.fences[rid][0] for rid in request_ids if rid in ctx.fences}


def owned(ctx: Context, request_id: str) -> bool:
    """Whether this process still owns the request (and its lease is renewed)."""
    with ctx.busy_lock:
        fenced = ctx.fences.get(request_id)
    if fenced is not None and ctx.now() - fenced[1] < ctx.lease / 4:
        return True
    with ctx.transaction() as session:
        return bool(renew(ctx, session, [request_id]))


def renew(ctx: Context, session: Session, request_ids: Sequence[str]) -> set[str]:
    """Of these requests, those still at the version this process took them at; their
    lease is renewed, and their row stays locked until the transaction ends."""
    with ctx.busy_lock:
        fences = {rid: ctx.fences[rid] for rid in request_ids if rid in ctx.fences}
    if not fences:
        return set()
    now = ctx.now()
    mine = set(store.renew(session, {rid: version for rid, (version, _) in fences.items()}, now))
    with ctx.busy_lock:
        for rid in mine:
            ctx.fences[rid] = (fences[rid][0], now)
    return mine


def heartbeat(ctx: Context) -> None:
    """Renew the lease on every request this process is granting or revoking, so no
    other process takes it over while we are still at it; one another process took
    over already (its version moved on) is not renewed."""
    with ctx.busy_lock:
        busy = list(ctx.busy)
    if not busy:
        return
    with ctx.transaction() as session:
        renew(ctx, session, busy)
