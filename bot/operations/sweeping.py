"""The sweeper: make the world match the database. Each sweep expires stale pending
requests, revokes overdue grants, retries failed revocations, resumes work a crash
interrupted, ends the access of people who may no longer hold it, and lifts session
denials whose sessions have run out."""

from __future__ import annotations

import bisect
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from bot.durations import format_duration
from bot.errors import Deactivated, DirectoryError, DirectoryUnavailable
from bot.names import BOT_ACTOR
from bot.operations import admin, due, granting, people, prolonging, revoking
from bot.operations import holders as holding
from bot.operations.context import Backlog, Context
from bot.operations.transition import EXPIRE_UNDECIDED, move
from bot.policy import admits
from bot.storage.models import Status

log = logging.getLogger(__name__)

# Requests the sweeper revokes in one go: the first batch of a sweep, and the smallest.
_SWEEP_BATCH = 200
# Batches grow (doubling), up to the database's figure here, while each one is done
# within ``_QUICK_BATCH`` of real time, and shrink back while one takes longer than
# ``_SLOW_BATCH``. Each statement of a batch is a round trip to PostgreSQL, a few dozen a
# batch whatever its size, so a backlog of quick revocations goes faster in bigger ones
# (10,000 grants: 5.1 s in batches of 200, 4.5 s of 1,000). SQLite, in the bot's own
# process, has no round trips to save: there bigger batches only took memory (100,000
# grants: 30 MB more, and 1-2 s longer), so its batches stay at 200. Calls that answer
# slowly keep batches at 200, well within the revocation deadline a batch's calls share.
_SWEEP_BATCH_MOST = {"postgresql": 1_000}
_QUICK_BATCH = 0.5
_SLOW_BATCH = 2.0
# Real seconds, for how long a batch took (the bot's clock may be a test's).
_elapsed = time.monotonic
# People holding access whose account one sweep asks Slack about (users.info allows about
# 100 calls a minute and the sweeper runs twice a minute); more are taken in turns.
_HOLDER_CHECKS = 50
# While the sweeper works off a backlog, Slack posts wait as long as its batches keep
# completing, each within this bound of the one before (a provider that hangs does not
# silence Slack for longer), and never longer in all than ``_BACKLOG_HOLD_LIMIT``.
_BACKLOG_PRIORITY = timedelta(seconds=15)
_BACKLOG_HOLD_LIMIT = timedelta(minutes=5)


def sweep(ctx: Context) -> None:
    """Make the world match the database: expire stale pending requests, revoke
    overdue grants, retry failed revocations and resume work a crash interrupted."""
    admin.follow_signals(ctx)
    with ctx.transaction() as session:
        todo = due.due(session, ctx.now(), ctx.config.settings.pending_ttl, ctx.lease)
    for request_id in todo.stale:
        expire_pending(ctx, request_id)
    for request_id in todo.orphaned:
        expire_pending(ctx, request_id, why=ACCESS_ENDED)
    unfinished = [rid for rid, status in todo.stuck if status == Status.REVOKING]
    _revoke_in_batches(ctx, todo.overdue + todo.retry + unfinished)
    # Each step on its own: one request or step that fails unexpectedly must not keep
    # the others (a departed holder's revocation, a denial's lift) from happening.
    _step("revoking the access of departed holders", functools.partial(_revoke_departed, ctx))
    if todo.left_behind:
        _step(
            "taking back failed grants",
            functools.partial(granting.finish_rollbacks, ctx, todo.left_behind),
        )
    granting_ = [rid for rid, status in todo.stuck if status == Status.GRANTING]
    for request_id in todo.approved + granting_:
        _step(f"granting {request_id}", functools.partial(granting.grant, ctx, request_id))
    for request_id in todo.extensions:
        _step(f"extending {request_id}", functools.partial(prolonging.apply, ctx, request_id))
    _step("lifting session denials", ctx.session_ends.sweep)


def _revoke_in_batches(ctx: Context, due: Sequence[str]) -> None:
    # More than one batch is a backlog (the bot was down): say so until it is gone,
    # so Slack posts wait rather than compete with taking access away.
    backlog = len(due) > _SWEEP_BATCH
    ctx.backlog = Backlog(since=ctx.clock.now()) if backlog else None
    # A batch waits for its calls at most a sweep interval: one held up by a provider
    # that hangs finishes on its own (by its deadline) while the sweeper goes on.
    patience = ctx.config.settings.sweep_interval.total_seconds()
    size, start, most = _SWEEP_BATCH, 0, _largest_batch(ctx)
    try:
        while start < len(due):
            began = _elapsed()
            batch = revoking.start_revoking(
                ctx, due[start : start + size], BOT_ACTOR, "expired", only_due=True
            )
            start += size
            if batch is None:
                continue  # another process has them: nothing learnt of the calls
            if not batch.wait(patience):
                size = _SWEEP_BATCH  # held up: it finishes by its deadline meanwhile
                continue
            size = _next_size(size, _elapsed() - began, most)
            if ctx.backlog is not None:
                ctx.backlog = dataclasses.replace(ctx.backlog, progress=ctx.clock.now())
    finally:
        ctx.backlog = None


def _largest_batch(ctx: Context) -> int:
    with ctx.sessions() as session:  # no connection is made to ask
        dialect = session.get_bind().dialect.name
    return max(_SWEEP_BATCH_MOST.get(dialect, _SWEEP_BATCH), _SWEEP_BATCH)


def _next_size(size: int, took: float, most: int) -> int:
    """The next batch's size after one of ``size`` took ``took`` seconds (real time: how
    fast the providers and the database answer, whatever the bot's clock says)."""
    if took < _QUICK_BATCH:
        return min(size * 2, most)
    if took > _SLOW_BATCH:
        return max(size // 2, _SWEEP_BATCH)
    return size


def _step(what: str, job: Callable[[], object]) -> None:
    try:
        job()
    except DirectoryUnavailable as exc:
        log.warning("sweep: %s waits for the next sweep: %s", what, exc)
    except Exception:
        log.exception("sweep: %s failed; the next sweep tries again", what)


def _revoke_departed(ctx: Context) -> None:
    """End the access of people Slack now says are deactivated, or may no longer hold
    the role (a member turned guest, an account moved out of the workspace). Asked of
    Slack afresh each sweep, once per person (the directory caches answers briefly);
    a lookup Slack does not answer decides nothing."""
    with ctx.transaction() as session:
        rows = holding.active_holders(session)
    holders: dict[str, list[tuple[str, str]]] = {}
    for request_id, requester_id, role in rows:
        holders.setdefault(requester_id, []).append((request_id, role))
    people_ = sorted(holders)
    if len(people_) > _HOLDER_CHECKS:
        start = bisect.bisect_right(people_, ctx.last_holder)
        people_ = (people_[start:] + people_[:start])[:_HOLDER_CHECKS]
    ending = _departed(ctx, people_, holders)
    # Waited for at most a sweep interval, as the sweeper's own batches: one held up
    # by a provider that hangs ends by its deadline while the sweeper goes on.
    patience = ctx.config.settings.sweep_interval.total_seconds()
    for reason, request_ids in ending.items():
        if request_ids and (
            started := revoking.start_revoking(ctx, request_ids, BOT_ACTOR, reason)
        ):
            started.wait(patience)


def _departed(
    ctx: Context, user_ids: Sequence[str], holders: dict[str, list[tuple[str, str]]]
) -> dict[str, list[str]]:
    """reason → the grants of these people to end for it."""
    ending: dict[str, list[str]] = {}
    for user_id in user_ids:
        grants = holders[user_id]
        previous, ctx.last_holder = ctx.last_holder, user_id
        try:
            kind = people.standing(ctx, user_id)
        except Deactivated:
            ending.setdefault("requester deactivated", []).extend(r for r, _ in grants)
            continue
        except DirectoryUnavailable as exc:
            log.warning("not checking who still may hold access this sweep: %s", exc)
            ctx.last_holder = previous  # they are asked about first next time
            break  # Slack is not answering: asking about the others would not help
        except DirectoryError as exc:
            log.warning("could not check that %s may still hold access: %s", user_id, exc)
            continue
        reason = f"requester is now a {kind} account"
        ending.setdefault(reason, []).extend(
            r for r, role in grants if not admits(ctx.config, role, kind)
        )
    return ending


#: Why an extension still undecided expired: the access it extends ended first.
ACCESS_ENDED = "the access it extends ended"


def expire_pending(ctx: Context, request_id: str, *, why: str | None = None) -> None:
    """Expire a request nobody decided: past its ``pending_ttl``, or (``why``) an
    extension whose access ended first."""
    details = (
        {"pending_ttl": format_duration(ctx.config.settings.pending_ttl)}
        if why is None
        else {"reason": why}
    )
    with ctx.transaction() as session:
        move(
            ctx,
            session,
            request_id,
            EXPIRE_UNDECIDED,
            actor=BOT_ACTOR,
            details=details,
            decided_at=ctx.now(),
        )


def upcoming_expiries(ctx: Context, within: timedelta | None = None) -> list[tuple[str, datetime]]:
    """Every active grant not yet due (ending ``within`` from now, when given) and when it
    ends: the expiry jobs come from this. Grants already due are the sweep's, revoked in
    batches."""
    now = ctx.now()
    with ctx.transaction() as session:
        return due.upcoming_expiries(session, now, None if within is None else now + within)


def catching_up(ctx: Context) -> bool:
    """Whether Slack posts are to wait for the sweeper working off a backlog of overdue
    grants: while its batches keep completing, each within ``_BACKLOG_PRIORITY`` by the
    bot's clock of the one before, and for ``_BACKLOG_HOLD_LIMIT`` at most. A provider
    that hangs must not silence Slack (and the audit channel, which reports failed
    revocations) for longer; a backlog that takes minutes is reported as it goes."""
    backlog = ctx.backlog
    if backlog is None:
        return False
    now = ctx.clock.now()
    # A clock stepped back must not stretch the hold past its bounds.
    return (
        timedelta(0) <= now - backlog.since < _BACKLOG_HOLD_LIMIT
        and timedelta(0) <= now - (backlog.progress or backlog.since) < _BACKLOG_PRIORITY
    )
