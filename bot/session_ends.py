"""Ending the live sessions of revoked grants, and lifting those ends once the sessions
have run out. No Slack, no cloud SDK: providers that can do it implement
``providers.sessions.EndsSessions``.

A revocation that removed access records one denial per (request, scope), refusing the
person's sessions issued before the moment the access was gone, and has the provider
write its scope's denials. The sweeper lifts each denial once the scope's session
lifetime has passed since then, claiming it with a compare-and-set so one process lifts
it; a lift that fails keeps its claim until it runs out and is tried again.

What a scope holds is always computed from the database (every denial in force, the
newest per person, since it refuses everything an older one does) and written whole. Two
processes writing one scope at once can still overwrite each other's write; the sweeper
writes every scope in use again, so such a loss lasts one sweep at most.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlmodel import col

from bot import audit
from bot.clock import Clock
from bot.names import AuditAction
from bot.notify import Notifier
from bot.storage.lists import among
from bot.storage.models import (
    AccessRequest,
    DenialStatus,
    RequestTarget,
    SessionDenial,
    TargetStatus,
)
from providers.base import Principal, Provider, ProviderError, TargetSpec
from providers.sessions import Denial, EndsSessions

log = logging.getLogger(__name__)

# Lifted this long after the session lifetime: the cloud's clock and ours may differ.
LIFT_MARGIN = timedelta(minutes=5)
# A lift's claim: longer than a provider waits for its own calls, so a slow lift is not
# taken over while it is still under way; a process that died holding it is retried then.
_CLAIM = timedelta(minutes=10)
# Scopes whose denials were lifted this recently are written again by the sweeper too, in
# case a write racing the lift put a lifted denial back.
_RECENT = timedelta(minutes=10)


@dataclass
class _Ending:
    request_id: str
    provider: str
    spec: dict[str, Any]
    principal_id: str
    before: datetime
    lifetime: timedelta


@dataclass(eq=False, kw_only=True)
class SessionEnds:
    """Ends the live sessions a revocation leaves, and lifts the denials once they are
    past their lifetime."""

    sessions: sessionmaker[Session]
    providers: Mapping[str, Provider]
    clock: Clock
    notifier: Notifier
    _locks: dict[str, threading.Lock] = field(default_factory=dict, init=False)
    _locks_lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    # ----------------------------------------------------------------- ending

    def end(
        self, grants: Sequence[tuple[AccessRequest, Sequence[RequestTarget]]]
    ) -> dict[str, list[str]]:
        """End the live sessions of what these requests' revocation removed; each
        request's problems (the revocation is then retried, and this with it).
        ``grants``: each request with its targets as read when the revocation began."""
        problems: dict[str, list[str]] = {request.id: [] for request, _ in grants}
        able = [name for name, p in self.providers.items() if isinstance(p, EndsSessions)]
        # Only requests with a target on a provider that ends sessions (a target's
        # provider never changes): none, no read. A backlog of webhook grants read its
        # targets again for nothing, nearly a tenth of the time it took on SQLite.
        by_id = {
            request.id: request
            for request, targets in grants
            if any(target.provider in able for target in targets)
        }
        if not by_id:
            return problems
        with self._transaction() as session:
            # By the requests' ids alone: a lookup by the revoked status would walk every
            # target ever revoked (SQLite, keeping no statistics, would choose it).
            found = session.scalars(
                select(RequestTarget)
                .where(
                    among(session, col(RequestTarget.request_id), by_id),
                    col(RequestTarget.provider).in_(able),
                )
                .order_by(col(RequestTarget.request_id), col(RequestTarget.position))
            )
            revoked = [target for target in found if target.status == TargetStatus.REVOKED]
        endings = self._endings(revoked, by_id, problems)
        if not endings:
            return problems
        self._record(endings)
        scopes: dict[str, tuple[str, dict[str, Any], list[str]]] = {}
        for (request_id, key), ending in endings.items():
            scopes.setdefault(key, (ending.provider, ending.spec, []))[2].append(request_id)
        for key, (provider_name, spec, request_ids) in scopes.items():
            # Written and made effective even if the document already says it: a
            # revocation retried after a failed provisioning must provision again.
            problem = self._try_write(provider_name, spec, key, enforce=True)
            for request_id in request_ids if problem else ():
                problems[request_id].append(f"ending live sessions: {problem}")
        return problems

    def _endings(
        self,
        revoked: Sequence[RequestTarget],
        by_id: Mapping[str, AccessRequest],
        problems: dict[str, list[str]],
    ) -> dict[tuple[str, str], _Ending]:
        """(request id, scope) → the sessions to end there, for the revoked targets whose
        provider ends sessions; a scope that cannot be worked out is added to ``problems``."""
        endings: dict[tuple[str, str], _Ending] = {}
        for target in revoked:
            provider = self.providers.get(target.provider)
            if not isinstance(provider, EndsSessions) or target.revoked_at is None:
                continue
            request = by_id[target.request_id]
            principal = Principal(request.requester_id, request.requester_email)
            try:
                spec = provider.target_model.model_validate(target.spec)
                scope = provider.session_scope(principal, spec, recorded=target.principal)
            except ProviderError as exc:
                problems[request.id].append(f"{target.description}: ending sessions: {exc}")
                continue
            except Exception as exc:  # a bug must leave the revocation failed, not hang it
                log.exception("ending sessions of %s of %s failed", target.description, request.id)
                problems[request.id].append(f"{target.description}: unexpected error: {exc!r}")
                continue
            if scope is None:
                continue
            # The moment access was gone: a later revoke of the same scope in this
            # request moves it on, so nothing taken in between survives.
            ending = endings.setdefault(
                (request.id, scope.key),
                _Ending(
                    request.id,
                    target.provider,
                    target.spec,
                    scope.principal_id,
                    target.revoked_at,
                    scope.lifetime,
                ),
            )
            ending.before = max(ending.before, target.revoked_at)
        return endings

    def _record(self, endings: Mapping[tuple[str, str], _Ending]) -> None:
        with self._transaction() as session:
            for (request_id, key), ending in endings.items():
                lift_after = ending.before + ending.lifetime + LIFT_MARGIN
                row = session.scalars(
                    select(SessionDenial).where(
                        col(SessionDenial.request_id) == request_id,
                        col(SessionDenial.scope) == key,
                    )
                ).first()
                if row is None:
                    session.add(
                        SessionDenial(
                            request_id=request_id,
                            provider=ending.provider,
                            scope=key,
                            spec=ending.spec,
                            name=self._name(ending.provider, request_id),
                            principal_id=ending.principal_id,
                            before=ending.before,
                            lift_after=lift_after,
                        )
                    )
                    self._audit(
                        session,
                        AuditAction.SESSIONS_ENDED,
                        request_id,
                        scope=key,
                        issued_before=ending.before.isoformat(),
                        lifted_after=lift_after.isoformat(),
                    )
                elif row.before < ending.before:
                    row.before, row.lift_after = ending.before, lift_after
                    row.status, row.claimed_until = DenialStatus.IN_FORCE, None

    def _name(self, provider_name: str, request_id: str) -> str:
        provider = self.providers[provider_name]
        if not isinstance(provider, EndsSessions):  # only such providers' endings are recorded
            raise ProviderError(f"{provider_name} cannot end sessions", retryable=False)
        return provider.denial_name(request_id)

    # ----------------------------------------------------------------- lifting

    def sweep(self) -> None:
        """Lift the denials whose sessions have run out, and write every scope still in
        use again (putting right a write lost to a race between processes)."""
        now = self.clock.now()
        with self._transaction() as session:
            claimed = session.execute(
                update(SessionDenial)
                .where(
                    or_(
                        (col(SessionDenial.status) == DenialStatus.IN_FORCE)
                        & (col(SessionDenial.lift_after) <= now),
                        (col(SessionDenial.status) == DenialStatus.LIFTING)
                        & (col(SessionDenial.claimed_until) <= now),
                    )
                )
                .values(
                    status=DenialStatus.LIFTING,
                    claimed_until=now + _CLAIM,
                    version=col(SessionDenial.version) + 1,
                )
                .returning(
                    col(SessionDenial.id),
                    col(SessionDenial.version),
                    col(SessionDenial.scope),
                    col(SessionDenial.provider),
                    col(SessionDenial.spec),
                )
                .execution_options(synchronize_session=False)
            ).all()
            in_use = session.execute(
                select(
                    col(SessionDenial.scope), col(SessionDenial.provider), col(SessionDenial.spec)
                ).where(
                    or_(
                        col(SessionDenial.status) == DenialStatus.IN_FORCE,
                        col(SessionDenial.lifted_at) >= now - _RECENT,
                    )
                )
            ).all()
        lifting = {scope: (provider, spec) for _, _, scope, provider, spec in claimed}
        for key, (provider_name, spec) in lifting.items():
            fences = [(row_id, version) for row_id, version, scope, _, _ in claimed if scope == key]
            problem = self._try_write(provider_name, spec, key, enforce=True)
            if problem:
                log.warning("lifting session denials in %s failed, retried later: %s", key, problem)
            self._settle(fences, error=problem)
        others = {
            scope: (provider, spec) for scope, provider, spec in in_use if scope not in lifting
        }
        for key, (provider_name, spec) in others.items():
            problem = self._try_write(provider_name, spec, key, checking=True)
            if problem:
                log.warning("checking session denials in %s failed: %s", key, problem)

    def _settle(self, claimed: Sequence[tuple[int | None, int]], *, error: str | None) -> None:
        """Record how a lift ended, for the claims this process still holds."""
        now = self.clock.now()
        with self._transaction() as session:
            for row_id, version in claimed:
                fenced = update(SessionDenial).where(
                    col(SessionDenial.id) == row_id,
                    col(SessionDenial.version) == version,
                    col(SessionDenial.status) == DenialStatus.LIFTING,
                )
                if error is not None:
                    session.execute(fenced.values(error=error))
                    continue
                lifted = session.execute(
                    fenced.values(status=DenialStatus.LIFTED, lifted_at=now, error=None)
                    .returning(col(SessionDenial.request_id), col(SessionDenial.scope))
                    .execution_options(synchronize_session=False)
                ).first()
                if lifted is not None:
                    self._audit(
                        session, AuditAction.SESSION_DENIAL_LIFTED, lifted[0], scope=lifted[1]
                    )

    # ----------------------------------------------------------------- writing

    def _try_write(
        self,
        provider_name: str,
        spec: dict[str, Any],
        key: str,
        *,
        checking: bool = False,
        enforce: bool = False,
    ) -> str | None:
        """Write the scope's denials as the database has them; what went wrong, if anything.
        ``checking``: nothing should have to change, so say so when something did (and
        leave an unchanged scope alone, not re-provision it every sweep). ``enforce``:
        make them effective even when the document already says it."""
        provider = self.providers.get(provider_name)
        if not isinstance(provider, EndsSessions):
            return f"no provider `{provider_name}` to write session denials with"
        try:
            target: TargetSpec = provider.target_model.model_validate(spec)
            with self._lock(key):
                changed = provider.write_denials(target, self._in_force(key), enforce=enforce)
        except ProviderError as exc:
            return str(exc)
        except Exception as exc:  # a bug in one scope must not hold up the others
            log.exception("writing session denials in %s failed", key)
            return f"unexpected error: {exc!r}"
        if changed and checking:
            log.warning("session denials in %s differed from the database; rewritten", key)
        return None

    def _in_force(self, key: str) -> list[Denial]:
        """The scope's denials in force, the newest per person: it refuses every session
        an older one of theirs does."""
        with self._transaction() as session:
            rows = session.scalars(
                select(SessionDenial).where(
                    col(SessionDenial.scope) == key,
                    col(SessionDenial.status) == DenialStatus.IN_FORCE,
                )
            ).all()
            newest: dict[str, Denial] = {}
            for row in sorted(rows, key=lambda r: (r.before, r.name)):
                newest[row.principal_id] = Denial(row.name, row.principal_id, row.before)
        return list(newest.values())

    @contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        with self._locks_lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with self.sessions.begin() as session:
            yield session

    def _audit(
        self, session: Session, action: AuditAction, request_id: str, **details: Any
    ) -> None:
        audit.record_by_bot(session, self.clock, self.notifier, action, request_id, details)
