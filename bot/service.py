"""The request lifecycle as one object for the Slack edge, the CLI and the runtime:
request, decide, grant, expire, revoke. No Slack, no cloud SDK.

``AccessService`` only wires the bot's dependencies into an operations ``Context`` and
hands each call to the module of ``bot/operations`` that does it (see that package's
docstring for which module holds what). A new capability is a new operations module and
a line here, not a longer class.

Every state change is one compare-and-set on the request row (``UPDATE … WHERE id = ?
AND status IN (…)``), committed together with its audit event and the outbox messages
that tell people about it. Provider calls happen outside transactions; their results are
recorded per target so a crash at any point can be resumed from the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.break_glass import BreakGlassCheck
from bot.config import JitConfig, Rule
from bot.directory import Directory, Person
from bot.extension import ExtensionCheck
from bot.operations import (
    admin,
    breaking_glass,
    credentials,
    deciding,
    escalating,
    extending,
    granting,
    home,
    home_refresh,
    leases,
    nudging,
    queries,
    reminding,
    requesting,
    requesting_again,
    reviewing,
    revoking,
    sweeping,
)
from bot.operations.admin import raise_signal
from bot.operations.context import Context, ExpiryScheduler
from bot.operations.credentials import Shown
from bot.operations.deciding import VoteResult
from bot.operations.home import Home, Review
from bot.operations.queries import Listing
from bot.operations.requesting import new_request_id
from bot.policy import RequestCheck
from bot.stats.figures import Figures
from bot.stats.recent import RecentFigures
from bot.storage.models import AccessRequest, AuditEvent, BreakGlassReview, RequestTarget, Vote
from bot.templates import RequestTemplate

# Imported from here by the runtime, the CLI and the tests.
__all__ = ["AccessService", "ExpiryScheduler", "VoteResult", "new_request_id", "raise_signal"]


class AccessService:
    """The operations on one ``Context`` (built by the runtime, bot/app.py)."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._week = RecentFigures(ctx.sessions, ctx.clock)

    @property
    def config(self) -> JitConfig:
        return self._ctx.config

    @property
    def directory(self) -> Directory:
        return self._ctx.directory

    @property
    def lease(self) -> timedelta:
        return self._ctx.lease

    # ----------------------------------------------------------------- requesting

    def check(
        self, requester_id: str, role: str, environment: str, duration: str, reason: str
    ) -> RequestCheck:
        return requesting.check(self._ctx, requester_id, role, environment, duration, reason)

    def check_form(self, role: str, environment: str, duration: str, reason: str) -> None:
        requesting.check_form(self._ctx, role, environment, duration, reason)

    def submit(
        self, requester_id: str, checked: RequestCheck, *, origin: str | None = None
    ) -> AccessRequest:
        return requesting.submit(self._ctx, requester_id, checked, origin=origin)

    def check_break_glass(
        self,
        requester_id: str,
        role: str,
        environment: str,
        duration: str,
        incident: str,
        reason: str,
    ) -> BreakGlassCheck:
        return breaking_glass.check(
            self._ctx, requester_id, role, environment, duration, incident, reason
        )

    def check_break_glass_form(
        self, role: str, environment: str, duration: str, incident: str, reason: str
    ) -> None:
        breaking_glass.check_form(self._ctx, role, environment, duration, incident, reason)

    def break_glass(
        self, requester_id: str, checked: BreakGlassCheck, *, origin: str | None = None
    ) -> AccessRequest:
        return breaking_glass.submit(self._ctx, requester_id, checked, origin=origin)

    # ----------------------------------------------------------- requesting again

    def recently_finished(self, user_id: str) -> list[AccessRequest]:
        return requesting_again.recently_finished(self._ctx, user_id)

    def repeatable(self, request_id: str, user_id: str) -> AccessRequest:
        return requesting_again.repeatable(self._ctx, request_id, user_id)

    def template(self, request: AccessRequest, user_id: str) -> RequestTemplate:
        return requesting_again.template(self._ctx, request, user_id)

    # ----------------------------------------------------------------- extending

    def check_extension(
        self, requester_id: str, request_id: str, duration: str, reason: str
    ) -> ExtensionCheck:
        return extending.check(self._ctx, requester_id, request_id, duration, reason)

    def check_extension_form(self, duration: str, reason: str) -> None:
        extending.check_form(duration, reason)

    def can_extend(self, request_id: str, requester_id: str) -> AccessRequest:
        return extending.can_extend(self._ctx, request_id, requester_id)

    def extend(
        self, requester_id: str, checked: ExtensionCheck, *, origin: str | None = None
    ) -> AccessRequest:
        return extending.submit(self._ctx, requester_id, checked, origin=origin)

    def nudge(self) -> int:
        return nudging.nudge(self._ctx)

    # ----------------------------------------------------------------- reviewing

    def can_review(self, request_id: str, user_id: str) -> None:
        reviewing.can_review(self._ctx, request_id, user_id)

    def review(
        self, request_id: str, user_id: str, verdict: str, note: str | None = None
    ) -> BreakGlassReview:
        return reviewing.review(self._ctx, request_id, user_id, verdict, note)

    def remind_reviews(self) -> int:
        return reviewing.remind(self._ctx)

    def remind_approvers(self) -> int:
        return reminding.remind(self._ctx)

    def escalate(self) -> int:
        return escalating.escalate(self._ctx)

    # ------------------------------------------------------------------ deciding

    def vote(
        self, request_id: str, voter_id: str, decision: str, reason: str | None = None
    ) -> VoteResult:
        return deciding.vote(self._ctx, request_id, voter_id, decision, reason)

    def can_decide(self, request_id: str, user_id: str) -> None:
        deciding.can_decide(self._ctx, request_id, user_id)

    def cancel(self, request_id: str, actor: str) -> AccessRequest:
        return deciding.cancel(self._ctx, request_id, actor)

    # ------------------------------------------------------------------- granting

    def grant(self, request_id: str) -> None:
        granting.grant(self._ctx, request_id)

    # ------------------------------------------------------------------- revoking

    def end_early(self, request_id: str, actor: str) -> AccessRequest:
        return revoking.end_early(self._ctx, request_id, actor)

    def expire(self, request_id: str) -> None:
        revoking.expire(self._ctx, request_id)

    def revoke(self, request_id: str, *, actor: str, reason: str) -> None:
        revoking.revoke_many(self._ctx, [request_id], actor=actor, reason=reason)

    def revoke_many(self, request_ids: Sequence[str], *, actor: str, reason: str) -> None:
        revoking.revoke_many(self._ctx, request_ids, actor=actor, reason=reason)

    def show_credentials(self, request_id: str, user_id: str) -> tuple[AccessRequest, list[Shown]]:
        return credentials.show(self._ctx, request_id, user_id)

    # ------------------------------------------------------------------- sweeping

    def sweep(self) -> None:
        sweeping.sweep(self._ctx)

    def upcoming_expiries(self, within: timedelta | None = None) -> list[tuple[str, datetime]]:
        return sweeping.upcoming_expiries(self._ctx, within)

    @property
    def catching_up(self) -> bool:
        return sweeping.catching_up(self._ctx)

    def heartbeat(self) -> None:
        leases.heartbeat(self._ctx)

    # ------------------------------------------------------------------- reading

    def get(self, request_id: str) -> AccessRequest:
        return queries.get(self._ctx, request_id)

    def targets_of(self, request_id: str) -> list[RequestTarget]:
        return queries.targets_of(self._ctx, request_id)

    def votes_of(self, request_id: str) -> list[Vote]:
        return queries.votes_of(self._ctx, request_id)

    def mine(self, user_id: str) -> list[AccessRequest]:
        return queries.mine(self._ctx, user_id)

    def awaiting(self, user_id: str) -> list[AccessRequest]:
        return queries.awaiting(self._ctx, user_id)

    def listing(self, user_id: str) -> Listing:
        return queries.listing(self._ctx, user_id)

    def audit_events(self, request_id: str | None = None) -> list[AuditEvent]:
        return queries.audit_events(self._ctx, request_id)

    def requestable(self, user_id: str) -> list[tuple[str, str]]:
        return queries.requestable(self._ctx, user_id)

    def approvers_for(self, role: str, environment: str, requester_id: str) -> Rule | None:
        return queries.approvers_for(self._ctx, role, environment, requester_id)

    def person(self, user_id: str) -> Person:
        return queries.person(self._ctx, user_id)

    # ------------------------------------------------------------------- the Home

    def home(self, user_id: str) -> Home:
        return home.home(self._ctx, user_id)

    def everyone_active(self) -> list[AccessRequest]:
        return home.everyone_active(self._ctx)

    def reviews_waiting(self) -> list[Review]:
        return home.reviews_waiting(self._ctx)

    def week_figures(self) -> Figures:
        """The last seven days' approver-load figures (kept a few minutes)."""
        return self._week.week()

    def home_opened(self, user_id: str) -> None:
        home_refresh.opened(self._ctx, user_id, admin=home.is_admin(self._ctx, user_id))

    def show_home(self, user_id: str, notice: str | None = None) -> None:
        home_refresh.show(self._ctx, user_id, notice)

    # ------------------------------------------------------------------- admin

    def sync(self, actor: str) -> None:
        admin.sync(self._ctx, actor)

    def follow_signals(self) -> None:
        admin.follow_signals(self._ctx)
