"""Drift: compare what the clouds say people hold with what the database says jit-bot
granted, report the difference to the audit trail (and so the audit channel), and with
``revoke_unknown`` remove access nobody can explain.

Two kinds of drift:
- *unexplained*: a cloud assignment that no live jit-bot request accounts for (granted
  by hand, left behind, or standing access outside jit-bot);
- *missing*: a grant the database thinks is active that the cloud no longer has.

A holding is matched with a grant by email and target key, or, where the cloud names
who holds it in its own words (a database login, ``Holding.principal``), by that name
as the grant recorded it: the email is not always to be had from it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from sqlmodel import col

from bot import audit
from bot.clock import Clock
from bot.config import JitConfig
from bot.names import AuditAction
from bot.notify import Notifier
from bot.storage.models import AccessRequest, RequestTarget, Status, TargetStatus
from providers.base import GrantContext, Principal, Provider, ProviderError, TargetSpec

log = logging.getLogger(__name__)

# A request in these states may hold access, or be about to: its targets explain what the
# cloud shows, whatever the state of each target row.
_LIVE = (Status.APPROVED, Status.GRANTING, Status.ACTIVE, Status.REVOKING, Status.REVOKE_FAILED)


@dataclass(frozen=True, order=True)
class Finding:
    kind: str  # "unexplained" | "missing"
    email: str
    target: str  # description
    request_id: str | None = None


@dataclass(frozen=True, order=True)
class _Held:
    """One unit someone holds, as a cloud listed it: by email, and where the cloud names
    them so (a database login) by its own name for them, the grant's ``principal`` ('':
    by email only)."""

    email: str
    principal: str
    key: str


@dataclass(frozen=True)
class _Granted:
    """What the live requests explain, by (email, key) and by (recorded principal, key);
    ``active``: (email, principal, key) → (request id, description) of the grants the
    clouds should show."""

    emails: set[tuple[str, str]] = field(default_factory=set)
    unrecorded: set[tuple[str, str]] = field(default_factory=set)  # principal not known yet
    principals: set[tuple[str, str]] = field(default_factory=set)
    active: dict[tuple[str, str, str], tuple[str, str]] = field(default_factory=dict)

    def explains(self, held: _Held) -> bool:
        # A holding named by the cloud's principal is explained by the grant recorded to
        # that principal (not an email rebuilt from it), or by one still being made.
        if not held.principal:
            return (held.email, held.key) in self.emails
        by_principal = (held.principal, held.key) in self.principals
        return by_principal or (held.email, held.key) in self.unrecorded


@dataclass(eq=False, kw_only=True)
class DriftChecker:
    """Compares the clouds with the database; reports each finding once."""

    config: JitConfig
    sessions: sessionmaker[Session]
    providers: Mapping[str, Provider]
    clock: Clock
    notifier: Notifier
    _reported: set[Finding] = field(default_factory=set, init=False)

    def run(self) -> list[Finding]:
        """One comparison. Returns every current finding; reports the new ones."""
        seen: dict[_Held, tuple[Provider, TargetSpec]] = {}
        sources: dict[_Held, set[str | None]] = {}  # the grants the cloud names
        checked_keys: set[str] = set()  # units whose holders the clouds listed
        for targets in self.config.targets.values():
            for target in targets:
                provider = self.providers[target.provider]
                try:
                    holdings = provider.inventory(target)
                    if holdings is None:
                        continue
                    units = provider.expand(target)
                except ProviderError as exc:
                    log.warning("drift check skipped a %s target: %s", target.provider, exc)
                    continue
                checked_keys |= {f"{provider.name}:{unit.key()}" for unit in units}
                for holding in holdings:
                    key = f"{provider.name}:{holding.unit.key()}"
                    held = _Held(holding.email.lower(), holding.principal or "", key)
                    seen[held] = (provider, holding.unit)
                    sources.setdefault(held, set()).add(holding.request_id)
        view = self._database_view()
        findings = [
            Finding("unexplained", held.email, provider.describe(unit))
            for held, (provider, unit) in sorted(seen.items())
            if not view.explains(held)
        ]
        by_email = {(h.email, h.key) for h in seen if not h.principal}
        by_principal = {(h.principal, h.key) for h in seen if h.principal}
        findings += [
            Finding("missing", email, description, request_id)
            for (email, principal, key), (request_id, description) in sorted(view.active.items())
            if key in checked_keys
            and (email, key) not in by_email
            and (principal, key) not in by_principal
        ]
        self._report(findings)
        if self.config.settings.revoke_unknown:
            self._remove(
                [
                    (held, seen[held], request_id)
                    for held in seen
                    if not view.explains(held)
                    for request_id in sorted(sources[held], key=str)
                ]
            )
        return findings

    def _database_view(self) -> _Granted:
        with self.sessions.begin() as session:
            rows = session.execute(
                select(
                    col(AccessRequest.id),
                    col(AccessRequest.requester_email),
                    col(AccessRequest.status),
                    col(RequestTarget.target_key),
                    col(RequestTarget.status),
                    col(RequestTarget.preexisting),
                    col(RequestTarget.description),
                    col(RequestTarget.principal),
                )
                .join(RequestTarget, col(RequestTarget.request_id) == col(AccessRequest.id))
                .where(col(AccessRequest.status).in_(_LIVE))
            ).all()
        granted = _Granted()
        for request_id, email, status, key, target_status, preexisting, what, principal in rows:
            email = email.lower()
            granted.emails.add((email, key))
            if principal:
                granted.principals.add((principal, key))
            else:
                granted.unrecorded.add((email, key))
            granted_now = status == Status.ACTIVE and target_status == TargetStatus.GRANTED
            if granted_now and not preexisting:
                granted.active[(email, principal or "", key)] = (request_id, what)
        return granted

    def _report(self, findings: list[Finding]) -> None:
        new = [f for f in findings if f not in self._reported]
        self._reported = set(findings)
        if not new:
            return
        self._record(
            AuditAction.DRIFT_DETECTED,
            {
                "unexplained": [f"{f.email}: {f.target}" for f in new if f.kind == "unexplained"],
                "missing": [
                    f"{f.email}: {f.target} ({f.request_id})" for f in new if f.kind == "missing"
                ],
            },
        )

    def _remove(
        self, unexplained: list[tuple[_Held, tuple[Provider, TargetSpec], str | None]]
    ) -> None:
        now = self.clock.now()
        for held, (provider, unit), request_id in unexplained:
            # Where the cloud names the grant an access came from, remove that grant; where
            # it names who holds it (a database login), remove it from exactly that one.
            context = GrantContext(request_id or "drift", "", "", "revoke_unknown", now)
            principal = Principal(
                slack_user_id="", email=held.email, recorded=held.principal or None
            )
            error: str | None = None
            try:
                provider.revoke(principal, unit, context)
            except ProviderError as exc:
                outcome, error = AuditAction.DRIFT_REVOKE_FAILED, str(exc)
            else:
                outcome = AuditAction.DRIFT_REVOKED
            self._record(
                outcome, {"email": held.email, "target": provider.describe(unit), "error": error}
            )

    def _record(self, action: AuditAction, details: dict[str, Any]) -> None:
        """An event of the bot's own, about no one request, in a transaction of its own."""
        with self.sessions.begin() as session:
            audit.record_by_bot(session, self.clock, self.notifier, action, None, details)
