"""Drift: compare what the clouds say people hold with what the database says jit-bot
granted, report the difference to the audit trail (and so the audit channel), and with
``revoke_unknown`` remove access nobody can explain.

Two kinds of drift:
- *unexplained*: a cloud assignment that no live jit-bot request accounts for (granted
  by hand, left behind, or standing access outside jit-bot);
- *missing*: a grant the database thinks is active that the cloud no longer has.
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
        seen: dict[tuple[str, str], tuple[Provider, TargetSpec]] = {}
        sources: dict[tuple[str, str], set[str | None]] = {}  # the grants the cloud names
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
                    seen[(holding.email.lower(), key)] = (provider, holding.unit)
                    sources.setdefault((holding.email.lower(), key), set()).add(holding.request_id)
        explained, active = self._database_view()
        findings = [
            Finding("unexplained", email, provider.describe(unit))
            for (email, key), (provider, unit) in sorted(seen.items())
            if (email, key) not in explained
        ]
        findings += [
            Finding("missing", email, description, request_id)
            for (email, key), (request_id, description) in sorted(active.items())
            if key in checked_keys and (email, key) not in seen
        ]
        self._report(findings)
        if self.config.settings.revoke_unknown:
            self._remove(
                [
                    (email, seen[(email, key)], request_id)
                    for (email, key) in seen
                    if (email, key) not in explained
                    for request_id in sorted(sources[(email, key)], key=str)
                ]
            )
        return findings

    def _database_view(
        self,
    ) -> tuple[set[tuple[str, str]], dict[tuple[str, str], tuple[str, str]]]:
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
                )
                .join(RequestTarget, col(RequestTarget.request_id) == col(AccessRequest.id))
                .where(col(AccessRequest.status).in_(_LIVE))
            ).all()
        explained = {(email.lower(), key) for _, email, _, key, _, _, _ in rows}
        active = {
            (email.lower(), key): (request_id, description)
            for request_id, email, status, key, target_status, preexisting, description in rows
            if status == Status.ACTIVE and target_status == TargetStatus.GRANTED and not preexisting
        }
        return explained, active

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
        self, unexplained: list[tuple[str, tuple[Provider, TargetSpec], str | None]]
    ) -> None:
        now = self.clock.now()
        for email, (provider, unit), request_id in unexplained:
            # Where the cloud names the grant an access came from, remove that grant.
            context = GrantContext(request_id or "drift", "", "", "revoke_unknown", now)
            error: str | None = None
            try:
                provider.revoke(Principal(slack_user_id="", email=email), unit, context)
            except ProviderError as exc:
                outcome, error = AuditAction.DRIFT_REVOKE_FAILED, str(exc)
            else:
                outcome = AuditAction.DRIFT_REVOKED
            self._record(
                outcome, {"email": email, "target": provider.describe(unit), "error": error}
            )

    def _record(self, action: AuditAction, details: dict[str, Any]) -> None:
        """An event of the bot's own, about no one request, in a transaction of its own."""
        with self.sessions.begin() as session:
            audit.record_by_bot(session, self.clock, self.notifier, action, None, details)
