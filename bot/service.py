"""The request lifecycle: request, decide, grant, expire, revoke. No Slack, no cloud SDK.

Every state change is one compare-and-set on the request row (``UPDATE … WHERE id = ?
AND status IN (…)``), committed together with its audit event and the outbox messages
that tell people about it. Provider calls happen outside transactions; their results are
recorded per target so a crash at any point can be resumed from the database.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Update, and_, func, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlmodel import col

from bot import audit, quotas
from bot.clock import Clock
from bot.config import JitConfig, Rule
from bot.directory import Directory, Person
from bot.durations import format_duration
from bot.errors import (
    Deactivated,
    DirectoryError,
    DirectoryUnavailable,
    NotAllowed,
    NotEnoughApprovers,
    RequestNotFound,
    TargetsUnavailable,
    UnverifiedIdentity,
    WrongState,
)
from bot.notify import Notifier, RequesterNews
from bot.policy import (
    REFUSAL_TEXT,
    Refusal,
    RequestCheck,
    Standing,
    VoteDecision,
    admits,
    check_identity,
    check_request,
    decide_vote,
    distinct_approvers,
    match_rule,
    may_request,
    requestable_roles,
    same_person,
    standing_of,
    standing_refusal,
    undecided_too_long,
)
from bot.revoker import Call, Outcome, Revocation, Revoker
from bot.session_ends import SessionEnds
from bot.storage.models import (
    TERMINAL,
    AccessRequest,
    AuditEvent,
    BotSignal,
    RequestTarget,
    Status,
    TargetStatus,
    Vote,
)
from providers.base import GrantContext, Principal, Provider, ProviderError, TargetSpec

log = logging.getLogger(__name__)
T = TypeVar("T")

BOT = "jit-bot"
_ID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
# Statuses whose granted targets count as "still needed" when another grant ends.
_HOLDING = (Status.GRANTING, Status.ACTIVE)
_RELEASABLE = (
    TargetStatus.GRANTING,
    TargetStatus.GRANTED,
    TargetStatus.FAILED,
    TargetStatus.REVOKE_FAILED,
)

# A request's owner confirms it still owns it (a write that renews the lease) before a
# provider call or a write, unless it did so this recently: a batch costs nothing extra,
# a thread that sat in a call for longer than a lease finds out.
_OWNERS = (Status.GRANTING, Status.REVOKING, Status.FAILED)
_LOST = "another jit-bot process took this request over"
# Requests the sweeper revokes in one go.
_SWEEP_BATCH = 200
# People holding access whose account one sweep asks Slack about (users.info allows about
# 100 calls a minute and the sweeper runs twice a minute); more are taken in turns.
_HOLDER_CHECKS = 50
# How long Slack posts may wait for the sweeper to work off a backlog.
_BACKLOG_PRIORITY = timedelta(seconds=15)


def new_request_id() -> str:
    return "R-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


@dataclass(frozen=True)
class VoteResult:
    request: AccessRequest
    approvals: int
    outcome: str  # "recorded" | "approved" | "denied"


class ExpiryScheduler:
    """Where the service asks for a revocation at a given instant (APScheduler in the
    runtime). The database stays the truth: the sweeper catches anything missed."""

    def schedule(self, request_id: str, at: datetime) -> None:  # pragma: no cover
        raise NotImplementedError

    def cancel(self, request_id: str) -> None:  # pragma: no cover
        raise NotImplementedError


class AccessService:
    def __init__(
        self,
        *,
        config: JitConfig,
        sessions: sessionmaker[Session],
        directory: Directory,
        providers: Mapping[str, Provider],
        clock: Clock,
        notifier: Notifier,
        expiry: ExpiryScheduler,
        background: Callable[[Callable[[], None]], None],
        lease: timedelta = timedelta(seconds=8),
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = 4,
        revoker: Revoker | None = None,
    ) -> None:
        self.config = config
        self._sessions = sessions
        self.directory = directory
        self._providers = providers
        self._clock = clock
        self._notify = notifier
        self._expiry = expiry
        self._background = background
        self._lease = lease
        self._sleep = sleep
        self._attempts = attempts
        # Revoke calls run there, per provider endpoint, each revocation within a deadline.
        self._revoker = revoker or Revoker(clock)
        self._busy: set[str] = set()
        # request id → (its version when this process took it, when that was last
        # confirmed): a thread that lost its lease to another process stops, see _owned.
        self._fences: dict[str, tuple[int, datetime]] = {}
        self._backlog_since: datetime | None = None  # when the sweeper met a backlog
        self._busy_lock = threading.Lock()
        self._synced_at: datetime | None = None
        self._session_ends = SessionEnds(
            sessions=sessions, providers=providers, clock=clock, notifier=notifier
        )
        self._last_holder = ""  # where the next sweep's look at who holds access starts

    # ----------------------------------------------------------------- requesting

    def check(
        self, requester_id: str, role: str, environment: str, duration: str, reason: str
    ) -> RequestCheck:
        """Validate a request without storing anything; raise a JitError naming the fix."""
        return check_request(
            self.config,
            role,
            environment,
            duration,
            reason,
            self._membership(requester_id),
            standing=self._standing(requester_id),
        )

    def check_form(self, role: str, environment: str, duration: str, reason: str) -> None:
        """What can be checked from the config alone, with no Slack lookup: the role and
        environment exist, the duration is valid and within the role's maximum, a reason
        is given. (The request modal's answer must carry these errors, and it has to
        come within Slack's three seconds; who may ask is checked by ``check``.)"""
        check_request(
            self.config,
            role,
            environment,
            duration,
            reason,
            lambda _: True,
            standing=Standing.MEMBER,
        )

    def submit(
        self, requester_id: str, checked: RequestCheck, *, origin: str | None = None
    ) -> AccessRequest:
        """Store a checked request, ask its approvers (or approve it by rule) and return it.

        ``origin`` names the Slack interaction that asked (its trigger_id): the same one
        delivered again, to this process or another, gets back the request it stored."""
        self.follow_signals()
        if origin is not None and (earlier := self._by_origin(origin)) is not None:
            return earlier
        # Checked again when the request is stored; checking first spares Slack and the
        # clouds the lookups of a flood.
        with self._transaction() as session:
            quotas.check_request(session, self.config.settings, requester_id, self._now())
        requester = self.directory.person(requester_id)
        self._check_identity(requester, "request access")
        rule = checked.rule
        allow_self = self.config.allows_self_approval(rule)
        approvers: list[str] = []
        if not rule.auto_approve:
            resolved = self._approvers_of(rule, checked.role)
            # People, not accounts: a second account of the requester cannot approve, and
            # two accounts of one approver count once (as the votes will be counted).
            people = distinct_approvers(
                {user: self._principals(self.directory.person(user).email) for user in resolved},
                requester=requester_id,
                requester_principals=self._principals(requester.email),
                allow_self_approval=allow_self,
            )
            if people < rule.required_approvals:
                raise NotEnoughApprovers(
                    f"`{checked.role}` in `{checked.environment}` needs "
                    f"{rule.required_approvals} approval(s) but only {people} "
                    "approver(s) other than you can be found in Slack; "
                    "ask the bot's administrators to check approvers.yaml."
                )
            approvers = sorted(resolved)
        units = self._units(checked.role, checked.environment)
        now = self._clock.now()
        request = AccessRequest(
            id=new_request_id(),
            requester_id=requester_id,
            requester_email=requester.email,
            role=checked.role,
            environment=checked.environment,
            reason=checked.reason,
            duration_seconds=int(checked.duration.total_seconds()),
            status=Status.APPROVED if rule.auto_approve else Status.PENDING,
            rule_index=checked.rule_index,
            required_approvals=0 if rule.auto_approve else rule.required_approvals,
            auto_approve=rule.auto_approve,
            allow_self_approval=allow_self,
            approvers=approvers,
            created_at=now,
            updated_at=now,
            decided_at=now if rule.auto_approve else None,
            origin=origin,
        )
        try:
            self._store(request, checked, units)
        except IntegrityError:
            earlier = self._by_origin(origin) if origin is not None else None
            if earlier is None:
                raise
            return earlier  # the same interaction, stored at once by another process
        if rule.auto_approve:
            self._background(lambda: self.grant(request.id))
        return request

    def _by_origin(self, origin: str) -> AccessRequest | None:
        with self._transaction() as session:
            return session.scalars(
                select(AccessRequest).where(col(AccessRequest.origin) == origin)
            ).first()

    def _store(
        self,
        request: AccessRequest,
        checked: RequestCheck,
        units: Sequence[tuple[Provider, TargetSpec, str]],
    ) -> None:
        """The request, its targets, its audit event and its messages, in one transaction."""
        requester_id, rule, approvers = request.requester_id, checked.rule, request.approvers
        with self._transaction() as session:
            quotas.check_request(session, self.config.settings, requester_id, request.created_at)
            session.add(request)
            session.flush()
            targets = [
                RequestTarget(
                    request_id=request.id,
                    position=i,
                    provider=provider.name,
                    spec=unit.model_dump(mode="json"),
                    target_key=f"{provider.name}:{unit.key()}",
                    description=description,
                    principal=_known_principal(provider, request.requester_email),
                )
                for i, (provider, unit, description) in enumerate(units)
            ]
            session.add_all(targets)
            session.flush()
            self._audit(
                session,
                requester_id,
                "requested",
                request,
                duration=format_duration(checked.duration),
                reason=checked.reason,
                requester_email=request.requester_email,
                approvers=approvers,
                targets=[t.description for t in targets],
            )
            if rule.auto_approve:
                self._audit(session, BOT, "auto_approved", request, rule=checked.rule_index + 1)
            else:
                self._notify.ask_approvers(session, request, targets)
            self._notify.tell_requester(session, request, targets, [], RequesterNews.SUBMITTED)

    # ------------------------------------------------------------------ deciding

    def vote(
        self, request_id: str, voter_id: str, decision: str, reason: str | None = None
    ) -> VoteResult:
        """Record an approve/deny click after re-checking, from the database and the
        current config, that this person may decide this request now."""
        assert decision in ("approve", "deny")
        request = self.get(request_id)
        self._refuse_if_expired(request)
        self._check_standing(request, voter_id)
        approvers = self._current_approvers(request)
        voter = self._voter(voter_id, request, approvers)
        with self._transaction() as session:
            # Take the row lock first: concurrent voters on one request queue up here, so
            # the count below sees every committed vote and exactly one voter completes it.
            locked = _moved(
                session,
                update(AccessRequest)
                .where(col(AccessRequest.id) == request_id)
                .where(col(AccessRequest.status) == Status.PENDING)
                .values(version=col(AccessRequest.version) + 1),
            )
            verdict = self._verdict(
                session,
                request,
                Status.PENDING if locked else Status.APPROVED,
                voter_id,
                voter,
                approvers,
            )
            if not verdict.allowed:
                assert verdict.refusal is not None
                raise NotAllowed(REFUSAL_TEXT[verdict.refusal])
            if voter is not None:
                self._check_identity(voter, "decide access requests")
            session.add(
                Vote(
                    request_id=request_id,
                    voter_id=voter_id,
                    decision=decision,
                    reason=reason,
                    created_at=self._clock.now(),
                    voter_email=voter.email if voter is not None else None,
                )
            )
            try:
                session.flush()
            except IntegrityError:
                raise NotAllowed(REFUSAL_TEXT[Refusal.ALREADY_VOTED]) from None
            approvals = _approvals(session, request_id, approvers)
            outcome = "recorded"
            if decision == "deny":
                self._set_status(
                    session, request_id, [Status.PENDING], Status.DENIED, decided_at=self._now()
                )
                outcome = "denied"
                self._audit(session, voter_id, "denied", request, reason=reason)
            else:
                self._audit(
                    session,
                    voter_id,
                    "approval_recorded",
                    request,
                    approvals=approvals,
                    required=request.required_approvals,
                )
                if approvals >= request.required_approvals:
                    self._set_status(
                        session,
                        request_id,
                        [Status.PENDING],
                        Status.APPROVED,
                        decided_at=self._now(),
                    )
                    outcome = "approved"
                    self._audit(session, BOT, "approved", request, approvals=approvals)
            request = self._load(session, request_id)
            self._refresh(session, request)
            if outcome == "denied":
                self._tell(session, request, RequesterNews.DENIED)
        if outcome == "approved":
            self._background(lambda: self.grant(request_id))
        return VoteResult(request, approvals, outcome)

    def can_decide(self, request_id: str, user_id: str) -> None:
        """Raise NotAllowed unless ``user_id`` could approve or deny the request now."""
        request = self.get(request_id)
        self._refuse_if_expired(request)
        approvers = self._current_approvers(request)
        voter = self._voter(user_id, request, approvers)
        self._check_standing(request, user_id)
        with self._transaction() as session:
            verdict = self._verdict(
                session, request, Status(request.status), user_id, voter, approvers
            )
        if not verdict.allowed:
            assert verdict.refusal is not None
            raise NotAllowed(REFUSAL_TEXT[verdict.refusal])
        if voter is not None:
            self._check_identity(voter, "decide access requests")

    def _voter(self, user_id: str, request: AccessRequest, approvers: set[str]) -> Person | None:
        """The clicker, looked up when their identity matters: an approver (anyone else is
        refused by id alone)."""
        if user_id not in approvers:
            return None
        return self.directory.person(user_id)

    def _verdict(
        self,
        session: Session,
        request: AccessRequest,
        status: Status,
        voter_id: str,
        voter: Person | None,
        approvers: set[str],
    ) -> VoteDecision:
        """decide_vote with people compared by id and by principal (email after each
        provider's mapping): votes cast so far are read in ``session``."""
        votes = session.execute(
            select(col(Vote.voter_id), col(Vote.voter_email)).where(
                col(Vote.request_id) == request.id
            )
        ).all()
        return decide_vote(
            status=status,
            voter=voter_id,
            requester=request.requester_id,
            approvers=approvers,
            allow_self_approval=request.allow_self_approval,
            voted={voted_id for voted_id, _ in votes},
            voter_principals=self._principals(voter.email) if voter is not None else (),
            requester_principals=self._principals(request.requester_email),
            voted_principals={p for _, email in votes if email for p in self._principals(email)},
            expired=self._undecided_too_long(request),
        )

    def _undecided_too_long(self, request: AccessRequest) -> bool:
        return undecided_too_long(request.created_at, self.config.settings.pending_ttl, self._now())

    def _refuse_if_expired(self, request: AccessRequest) -> None:
        """A click on a request past its ``pending_ttl`` expires it now, rather than at the
        next sweep, and never counts."""
        if request.status == Status.PENDING and self._undecided_too_long(request):
            self._expire_pending(request.id)
            raise NotAllowed(REFUSAL_TEXT[Refusal.EXPIRED])

    def cancel(self, request_id: str, actor: str) -> AccessRequest:
        request = self.get(request_id)
        if actor != request.requester_id:
            raise NotAllowed("Only the requester can cancel a request; nothing changed.")
        with self._transaction() as session:
            if not self._set_status(
                session, request_id, [Status.PENDING], Status.CANCELLED, decided_at=self._now()
            ):
                raise WrongState(
                    f"{request_id} is {self._load(session, request_id).status}, not pending; "
                    "only a pending request can be cancelled (use `/jit revoke` to end access)."
                )
            request = self._load(session, request_id)
            self._audit(session, actor, "cancelled", request)
            self._refresh(session, request)
            self._tell(session, request, RequesterNews.CANCELLED)
        return request

    # ------------------------------------------------------------------- granting

    def grant(self, request_id: str) -> None:
        """Grant every target of an approved request; roll back on a partial failure."""
        with self._claim(request_id) as claimed:
            if claimed:
                self._grant(request_id)

    def _grant(self, request_id: str) -> None:
        with self._transaction() as session:
            request = self._load(session, request_id)
        try:
            identity_problem = (
                self._identity_changed(request) if request.status == Status.APPROVED else None
            )
            eligible = request.status != Status.APPROVED or self._still_eligible(request)
        except DirectoryUnavailable as exc:
            # Not an answer: the request stays approved and the sweeper asks again; failing
            # it would refuse someone who may still be eligible.
            log.warning("%s: eligibility not checked, granting later: %s", request_id, exc)
            return
        except DirectoryError as exc:
            self._fail(
                request_id,
                Status.APPROVED,
                "Could not check that the requester may still request "
                f"`{request.role}`: {exc} Nothing was granted.",
            )
            return
        if identity_problem is not None:
            self._fail(request_id, Status.APPROVED, identity_problem, reason="identity_changed")
            return
        if not eligible:
            self._fail(
                request_id,
                Status.APPROVED,
                f"The requester may no longer request `{request.role}`; nothing was granted.",
            )
            return
        with self._transaction() as session:
            if request.status == Status.APPROVED:
                expires_at = self._now() + timedelta(seconds=request.duration_seconds)
                if not self._set_status(
                    session, request_id, [Status.APPROVED], Status.GRANTING, expires_at=expires_at
                ):
                    return
                request = self._load(session, request_id)
                self._audit(session, BOT, "grant_started", request, expires_at=expires_at)
            elif request.status == Status.GRANTING:
                # Resuming after a crash: take the request over (the CAS on version makes
                # sure only one process does) and continue where the targets say.
                if not self._take_over(session, [request_id], Status.GRANTING):
                    return
                request = self._load(session, request_id)
                self._audit(session, BOT, "grant_resumed", request)
            else:
                return
        self._fence([request])
        assert request.expires_at is not None
        expires_at = request.expires_at
        context = self._context(request)
        principal = self._principal(request)
        targets = self._targets(request_id)
        # A target that failed means the grant had failed and a crash cut its rollback
        # short: finish the rollback, do not carry on granting the rest.
        failed = next((t for t in targets if t.status == TargetStatus.FAILED), None)
        failure = None if failed is None else f"{failed.description}: {failed.error}"
        for target in targets if failure is None else []:
            if target.status not in (TargetStatus.PENDING, TargetStatus.GRANTING):
                continue
            # Mark the call before making it: if we crash in between, the resumed grant
            # knows this access may be ours, not standing access found in the cloud.
            called_before = target.status == TargetStatus.GRANTING
            if not self._record_target(request_id, target.id, TargetStatus.GRANTING):
                return  # another process took the grant over: it carries on, not us
            provider, spec = self._spec(target)
            try:
                outcome = self._retrying(partial(provider.grant, principal, spec, context))
            except ProviderError as exc:
                failure = f"{target.description}: {exc}"
                if not self._record_target(
                    request_id, target.id, TargetStatus.FAILED, error=str(exc)
                ):
                    return
                break
            # A cloud cannot tell our own earlier grant from standing access: what another
            # active jit-bot grant of this person holds is not standing, and must still be
            # revoked when the last grant needing it ends.
            preexisting = (
                outcome.preexisting
                and not called_before
                and (request.requester_email, target.target_key)
                not in self._other_holders([request], jit_owned=True)
            )
            if not self._record_target(
                request_id,
                target.id,
                TargetStatus.GRANTED,
                granted_at=self._now(),
                preexisting=preexisting,
                error=None,
                principal=outcome.principal or target.principal,
            ):
                return
            if preexisting:
                with self._transaction() as session:
                    self._audit(
                        session,
                        BOT,
                        "standing_access_found",
                        request,
                        target=target.description,
                        detail=outcome.detail,
                    )
        if failure is None:
            with self._transaction() as session:
                if not self._set_status(
                    session,
                    request_id,
                    [Status.GRANTING],
                    Status.ACTIVE,
                    fenced=True,
                    granted_at=self._now(),
                ):
                    return
                request = self._load(session, request_id)
                self._audit(
                    session,
                    BOT,
                    "granted",
                    request,
                    expires_at=request.expires_at,
                    principal=request.requester_email,
                    principals=_granted_to(_snapshot(session, request_id)[0]),
                )
                self._refresh(session, request)
                self._tell(session, request, RequesterNews.GRANTED)
            self._expiry.schedule(request_id, expires_at)
            return
        rollback_errors = self._release([(request, self._targets(request_id))])[request_id]
        self._fail(
            request_id, Status.GRANTING, failure, fenced=True, rollback_errors=rollback_errors
        )

    def _finish_rollbacks(self, request_ids: Sequence[str]) -> None:
        """A failed grant whose rollback a cloud refused left access behind: take it back
        now. The request stays ``failed`` (a terminal state); only its targets move, and
        the lease on the request row keeps two processes from doing it at once."""
        with self._claim_all(request_ids) as claimed:
            if not claimed:
                return
            with self._transaction() as session:
                taken = self._take_over(session, claimed, Status.FAILED)
                requests = _load_all(session, taken)
                granted = _snapshots(session, taken)
            if not requests:
                return
            self._fence(list(requests.values()))
            errors = self._release([(r, granted[rid][0]) for rid, r in requests.items()])
            done = [rid for rid in requests if not errors[rid]]
            if not done:
                return  # still refused: the grant_failed post said so, the next sweep retries
            with self._transaction() as session:
                ended = _load_all(session, done)
                self._audit_all(session, [(BOT, "rolled_back", ended[rid], {}) for rid in done])
                snapshots = _snapshots(session, done)
                for request_id, request in ended.items():
                    self._notify.refresh_approver_messages(session, request, *snapshots[request_id])
                    self._notify.tell_requester(
                        session, request, *snapshots[request_id], RequesterNews.ROLLED_BACK
                    )

    def _fail(
        self, request_id: str, current: Status, error: str, *, fenced: bool = False, **details: Any
    ) -> None:
        with self._transaction() as session:
            if not self._set_status(
                session,
                request_id,
                [current],
                Status.FAILED,
                fenced=fenced,
                error=error,
                ended_at=self._now(),
            ):
                return
            request = self._load(session, request_id)
            self._audit(session, BOT, "grant_failed", request, error=error, **details)
            self._refresh(session, request)
            self._tell(session, request, RequesterNews.FAILED)

    def _identity_changed(self, request: AccessRequest) -> str | None:
        """Read the requester afresh from Slack as access is about to be granted: what is
        wrong with who would receive it now, or None. An email changed since the request
        would hand the approved access to another cloud user than the approvers saw."""
        person = self.directory.person_now(request.requester_id)
        if person.email != request.requester_email:
            return (
                "The requester's Slack email changed since the request, from "
                f"{request.requester_email} to {person.email}; the approval was for "
                f"{request.requester_email}, so nothing was granted. Request again if the "
                "new email is right."
            )
        try:
            self._check_identity(person, "receive access")
        except UnverifiedIdentity as exc:
            return f"The requester cannot receive access: {exc} Nothing was granted."
        return None

    def _check_identity(self, person: Person, acting: str) -> None:
        check_identity(
            person.email,
            person.email_confirmed,
            self.config.settings.allowed_email_domains,
            acting=acting,
        )

    def _own_principals(self, user_id: str) -> frozenset[str]:
        """This account's principals, or none if Slack cannot say who it is now (then
        only its id tells its own requests apart)."""
        try:
            return self._principals(self.directory.person(user_id).email)
        except DirectoryError:
            return frozenset()

    def _principals(self, email: str) -> frozenset[str]:
        """Every name the person with this email has in the clouds jit-bot grants in:
        the email, and what each provider maps it to. Accounts sharing any of these are
        one person."""
        return frozenset(
            {email.lower(), *(p.account_email(email) for p in self._providers.values())}
        )

    def _still_eligible(self, request: AccessRequest) -> bool:
        """Eligibility is checked again when access is about to be granted: someone who
        left the role's requesters since asking gets nothing."""
        role = self.config.roles.get(request.role)
        if role is None or request.environment not in role.environments:
            return False
        return may_request(
            self.config,
            request.role,
            self._membership(request.requester_id),
            standing=self._standing(request.requester_id),
        )

    # ------------------------------------------------------------------- revoking

    def end_early(self, request_id: str, actor: str) -> AccessRequest:
        """End access now, on the requester's or one of its approvers' word."""
        request = self.get(request_id)
        if actor != request.requester_id and actor not in self._current_approvers(request):
            raise NotAllowed(
                "Only the requester or an approver of this request can end it; nothing changed."
            )
        if request.status not in (Status.ACTIVE, Status.REVOKE_FAILED):
            raise WrongState(f"{request_id} is {request.status}; only active access can be ended.")

        def start() -> None:  # only started: the calls run on the revocation executor
            self._start_revoking([request_id], actor, "ended early")

        self._background(start)
        return request

    def expire(self, request_id: str) -> None:
        """Revoke if the request is active and its time is up (the expiry job's entry).
        Returns once the revocation has started: its calls run on the revocation
        executor, so an expiry job never waits on a provider."""
        request = self.get(request_id)
        due = request.expires_at is not None and request.expires_at <= self._now()
        if request.status == Status.ACTIVE and due:
            self._start_revoking([request_id], BOT, "expired")

    def revoke(self, request_id: str, *, actor: str, reason: str) -> None:
        self.revoke_many([request_id], actor=actor, reason=reason)

    def revoke_many(self, request_ids: Sequence[str], *, actor: str, reason: str) -> None:
        """Revoke several grants together: one transaction starts them all, their provider
        calls run in parallel, one transaction records how each ended. A bot starting on
        thousands of overdue grants catches up in seconds, not minutes. Returns once that
        is recorded (at the latest when the revocation deadline has passed)."""
        started = self._start_revoking(request_ids, actor, reason)
        if started is not None:
            started.wait()

    def _start_revoking(
        self, request_ids: Sequence[str], actor: str, reason: str
    ) -> Revocation | None:
        """Start revoking and return at once: the calls run on the revocation executor,
        and how each grant ended is recorded when they have answered or the deadline has
        passed (then as ``revoke_failed``, for the sweeper to retry)."""
        claimed = self._take(request_ids)
        if not claimed:
            return None
        try:
            begun = self._begin_revoke(claimed, actor, reason)
            if begun is None:
                self._let_go(claimed)
                return None
            requests, granted = begun
            grants = [(request, granted[rid][0]) for rid, request in requests.items()]
            kept, calls = self._plan_release(grants)
        except BaseException:
            self._let_go(claimed)
            raise

        def record(outcomes: list[Outcome]) -> None:
            try:
                errors = self._record_release(grants, kept, calls, outcomes)
                # Sessions taken during the grant outlive it where the cloud lets them: end
                # those too; a failure leaves the revocation failed, and retrying it
                # retries this.
                for request_id, problems in self._session_ends.end(list(requests.values())).items():
                    errors[request_id] += problems
                self._end_revoke(requests, errors, actor)
            finally:
                self._let_go(claimed)

        try:
            return self._revoker.start(self._revoke_calls(calls), record)
        except BaseException:
            # Never started (no thread to be had): claimed, it would keep its lease fresh
            # and no sweeper would ever take it over.
            self._let_go(claimed)
            raise

    def _begin_revoke(
        self, request_ids: Sequence[str], actor: str, reason: str
    ) -> tuple[dict[str, AccessRequest], dict[str, tuple[list[RequestTarget], list[Vote]]]] | None:
        now = self._now()
        with self._transaction() as session:
            started = self._set_statuses(
                session,
                request_ids,
                [Status.ACTIVE, Status.REVOKE_FAILED],
                Status.REVOKING,
                ended_at=func.coalesce(col(AccessRequest.ended_at), now),
                ended_by=func.coalesce(col(AccessRequest.ended_by), actor),
                end_reason=func.coalesce(col(AccessRequest.end_reason), reason),
            )
            rest = [request_id for request_id in request_ids if request_id not in started]
            resumed = self._take_over(session, rest, Status.REVOKING)
            requests = _load_all(session, started + resumed)
            self._audit_all(
                session,
                [(actor, "revoke_started", requests[rid], {"reason": reason}) for rid in started],
            )
            granted = _snapshots(session, list(requests))
        if not requests:
            return None
        self._fence(list(requests.values()))
        for request_id in requests:
            self._expiry.cancel(request_id)
        return requests, granted

    def _end_revoke(
        self, requests: Mapping[str, AccessRequest], errors: Mapping[str, list[str]], actor: str
    ) -> None:
        with self._transaction() as session:
            failed: list[str] = []
            for request_id, problems in errors.items():
                if problems and self._set_status(
                    session,
                    request_id,
                    [Status.REVOKING],
                    Status.REVOKE_FAILED,
                    fenced=True,
                    error="; ".join(problems),
                ):
                    failed.append(request_id)
            revoked = self._set_statuses(
                session,
                [rid for rid in requests if not errors.get(rid)],
                [Status.REVOKING],
                Status.REVOKED,
                fenced=True,
                error=None,
            )
            ended = _load_all(session, failed + revoked)
            self._audit_all(
                session,
                [(BOT, "revoke_failed", ended[rid], {"errors": errors[rid]}) for rid in failed]
                + [
                    (
                        ended[rid].ended_by or actor,
                        "revoked",
                        ended[rid],
                        {"reason": ended[rid].end_reason},
                    )
                    for rid in revoked
                ],
            )
            snapshots = _snapshots(session, list(ended))
            for request_id, request in ended.items():
                news = RequesterNews.REVOKE_FAILED if request_id in failed else RequesterNews.ENDED
                self._notify.refresh_approver_messages(session, request, *snapshots[request_id])
                self._notify.tell_requester(session, request, *snapshots[request_id], news)

    def _release(
        self, grants: Sequence[tuple[AccessRequest, Sequence[RequestTarget]]]
    ) -> dict[str, list[str]]:
        """Revoke every target these requests granted, except access that was there before
        jit-bot (standing) or that another active grant of the same person still needs
        (where the cloud does not keep each grant apart).
        Returns each request's errors; targets that failed stay marked for the sweeper to
        retry."""
        kept, calls = self._plan_release(grants)
        outcomes = self._revoker.run(self._revoke_calls(calls))
        return self._record_release(grants, kept, calls, outcomes)

    def _plan_release(
        self, grants: Sequence[tuple[AccessRequest, Sequence[RequestTarget]]]
    ) -> tuple[list[tuple[str, dict[str, Any]]], list[tuple[AccessRequest, RequestTarget]]]:
        """The targets to keep, (request id, row) each, and the revoke calls to make."""
        holders = self._other_holders([request for request, _ in grants])
        kept: list[tuple[str, dict[str, Any]]] = []
        calls: list[tuple[AccessRequest, RequestTarget]] = []
        for request, targets in grants:
            for target in targets:
                # A grant call that failed may still have landed in the cloud (a timeout
                # after the cloud accepted it); revoking is idempotent, so revoke those too.
                if target.status not in _RELEASABLE:
                    continue
                holder = holders.get((request.requester_email, target.target_key))
                if self._providers[target.provider].separate_grants:
                    holder = None  # revoking this grant leaves the other one in place
                if target.preexisting:
                    why = "standing access"
                elif holder is not None:
                    why = f"still needed by {holder}"
                else:
                    calls.append((request, target))
                    continue
                kept.append((request.id, {"id": target.id, "error": why}))
        return kept, calls

    def _record_release(
        self,
        grants: Sequence[tuple[AccessRequest, Sequence[RequestTarget]]],
        kept: Sequence[tuple[str, dict[str, Any]]],
        calls: Sequence[tuple[AccessRequest, RequestTarget]],
        outcomes: Sequence[Outcome],
    ) -> dict[str, list[str]]:
        """Record each target's end; returns each request's errors."""
        rows = [(rid, TargetStatus.KEPT, row) for rid, row in kept]
        errors: dict[str, list[str]] = {request.id: [] for request, _ in grants}
        for (request, target), problem in zip(calls, outcomes, strict=True):
            if problem is None:
                row = {"id": target.id, "revoked_at": self._now()}
                rows.append((request.id, TargetStatus.REVOKED, row))
            elif problem != _LOST:
                errors[request.id].append(f"{target.description}: {problem}")
                rows.append(
                    (request.id, TargetStatus.REVOKE_FAILED, {"id": target.id, "error": problem})
                )
        with self._transaction() as session:
            # Only what this process still owns: a request another process took over is
            # that process's to record (the row lock taken here keeps it from taking it now).
            mine = self._renew(session, list(errors))
            for status in (TargetStatus.KEPT, TargetStatus.REVOKED, TargetStatus.REVOKE_FAILED):
                batch = [
                    {**row, "status": status}
                    for rid, st, row in rows
                    if st == status and rid in mine
                ]
                if batch:
                    session.execute(update(RequestTarget), batch)
        return errors

    def _revoke_one(
        self, request: AccessRequest, target: RequestTarget, wanted: Callable[[], bool]
    ) -> str | None:
        """One provider revoke call; the error, if it failed (``_LOST`` if another
        process has taken the request over, when no call is made)."""
        if not self._owned(request.id):
            return _LOST
        try:
            provider, spec = self._spec(target)
            principal = dataclasses.replace(self._principal(request), recorded=target.principal)
            context = self._context(request)
            self._retrying(partial(provider.revoke, principal, spec, context), wanted=wanted)
        except ProviderError as exc:
            return str(exc)
        except Exception as exc:  # a bug in one call must not hold up the whole batch
            log.exception("revoking %s of %s failed", target.description, request.id)
            return f"unexpected error: {exc!r}"
        return None

    def _revoke_calls(self, calls: Sequence[tuple[AccessRequest, RequestTarget]]) -> list[Call]:
        """The calls for the revocation executor. One request's targets go in their order,
        calls a provider says write the same thing (its ``lane``) one after the other, and
        each takes a slot of the endpoint it talks to."""
        found: list[Call] = []
        for request, target in calls:
            endpoint, lane = self._endpoint_and_lane(target)
            found.append(
                Call(
                    endpoint=endpoint,
                    lane=("request", request.id) if lane is None else ("lane", lane),
                    run=partial(self._revoke_one, request, target),
                )
            )
        return found

    def _endpoint_and_lane(self, target: RequestTarget) -> tuple[str, str | None]:
        try:
            provider, spec = self._spec(target)
            return provider.endpoint(spec), provider.lane(spec)
        except Exception:  # the call itself will fail and say why
            return target.provider, None

    def _other_holders(
        self, requests: Sequence[AccessRequest], *, jit_owned: bool = False
    ) -> dict[tuple[str, str], str]:
        """(email, target key) → another active request of the same person that holds
        this same access. The requests asked about never count as holders of each other's.

        With ``jit_owned`` (asked when a cloud reports access as already there): any
        other request of the person through which jit-bot may have put it there, even
        one being granted or revoked right now. Access found then is jit-bot's own, not
        standing, and is revoked when the last grant needing it ends; in doubt, access
        ends rather than stays."""
        # Start from the people's own live requests (indexed by email, a handful each),
        # not from every grant of a target, which a popular role shares with thousands.
        emails = {request.requester_email for request in requests}
        query = (
            select(
                col(AccessRequest.requester_email),
                col(RequestTarget.target_key),
                col(RequestTarget.request_id),
            )
            .join(RequestTarget, col(RequestTarget.request_id) == col(AccessRequest.id))
            .where(
                col(AccessRequest.requester_email).in_(emails),
                col(AccessRequest.id).not_in([request.id for request in requests]),
            )
            .order_by(col(RequestTarget.request_id).desc())
        )
        if jit_owned:
            query = query.where(
                col(AccessRequest.status).in_([*_HOLDING, Status.REVOKING, Status.REVOKE_FAILED]),
                col(RequestTarget.status).in_(_RELEASABLE),
                col(RequestTarget.preexisting).is_(False),
            )
        else:
            query = query.where(
                col(AccessRequest.status).in_(_HOLDING),
                col(RequestTarget.status) == TargetStatus.GRANTED,
            )
        with self._transaction() as session:
            # Ordered newest id first, so the dict keeps the lowest id: a stable answer.
            return {(email, key): holder for email, key, holder in session.execute(query)}

    # ------------------------------------------------------------------- sweeping

    def sweep(self) -> None:
        """Make the world match the database: expire stale pending requests, revoke
        overdue grants, retry failed revocations and resume work a crash interrupted."""
        self.follow_signals()
        now = self._now()
        ttl = self.config.settings.pending_ttl
        with self._transaction() as session:
            stale = list(
                session.scalars(
                    select(col(AccessRequest.id)).where(
                        col(AccessRequest.status) == Status.PENDING,
                        col(AccessRequest.created_at) <= now - ttl,
                    )
                )
            )
            overdue = list(
                session.scalars(
                    select(col(AccessRequest.id)).where(
                        col(AccessRequest.status).in_([Status.ACTIVE, Status.REVOKE_FAILED]),
                        col(AccessRequest.expires_at) <= now,
                    )
                )
            )
            retry = list(
                session.scalars(
                    select(col(AccessRequest.id)).where(
                        col(AccessRequest.status) == Status.REVOKE_FAILED,
                        col(AccessRequest.expires_at) > now,
                    )
                )
            )
            # An approved request has no provider call in flight (approved → granting is a
            # compare-and-set), so it is picked up at once; granting/revoking ones only once
            # their lease has run out, in case another process is still working on them.
            approved = list(
                session.scalars(
                    select(col(AccessRequest.id)).where(
                        col(AccessRequest.status) == Status.APPROVED
                    )
                )
            )
            stuck = session.execute(
                select(col(AccessRequest.id), col(AccessRequest.status)).where(
                    col(AccessRequest.status).in_([Status.GRANTING, Status.REVOKING]),
                    col(AccessRequest.updated_at) <= now - self._lease,
                )
            ).all()
            left_behind = list(
                session.scalars(
                    select(col(AccessRequest.id))
                    .join(RequestTarget, col(RequestTarget.request_id) == col(AccessRequest.id))
                    .where(
                        col(AccessRequest.status) == Status.FAILED,
                        col(AccessRequest.updated_at) <= now - self._lease,
                        col(RequestTarget.status) == TargetStatus.REVOKE_FAILED,
                    )
                    .distinct()
                )
            )
        for request_id in stale:
            self._expire_pending(request_id)
        unfinished = [rid for rid, status in stuck if status == Status.REVOKING]
        due = overdue + retry + unfinished
        # More than one batch is a backlog (the bot was down): say so until it is gone,
        # so Slack posts wait rather than compete with taking access away.
        self._backlog_since = self._clock.now() if len(due) > _SWEEP_BATCH else None
        # A batch waits for its calls at most a sweep interval: one held up by a provider
        # that hangs finishes on its own (by its deadline) while the sweeper goes on.
        patience = self.config.settings.sweep_interval.total_seconds()
        try:
            for start in range(0, len(due), _SWEEP_BATCH):
                batch = self._start_revoking(due[start : start + _SWEEP_BATCH], BOT, "expired")
                if batch is not None:
                    batch.wait(patience)
        finally:
            self._backlog_since = None
        # Each step on its own: one request or step that fails unexpectedly must not keep
        # the others (a departed holder's revocation, a denial's lift) from happening.
        self._step("revoking the access of departed holders", self._revoke_departed)
        if left_behind:
            self._step("taking back failed grants", lambda: self._finish_rollbacks(left_behind))
        for request_id in approved + [rid for rid, status in stuck if status == Status.GRANTING]:
            self._step(f"granting {request_id}", functools.partial(self.grant, request_id))
        self._step("lifting session denials", self._session_ends.sweep)

    @staticmethod
    def _step(what: str, job: Callable[[], object]) -> None:
        try:
            job()
        except DirectoryUnavailable as exc:
            log.warning("sweep: %s waits for the next sweep: %s", what, exc)
        except Exception:
            log.exception("sweep: %s failed; the next sweep tries again", what)

    def _revoke_departed(self) -> None:
        """End the access of people Slack now says are deactivated, or may no longer hold
        the role (a member turned guest, an account moved out of the workspace). Asked of
        Slack afresh each sweep, once per person (the directory caches answers briefly);
        a lookup Slack does not answer decides nothing."""
        with self._transaction() as session:
            rows = session.execute(
                select(
                    col(AccessRequest.id), col(AccessRequest.requester_id), col(AccessRequest.role)
                ).where(col(AccessRequest.status) == Status.ACTIVE)
            ).all()
        holders: dict[str, list[tuple[str, str]]] = {}
        for request_id, requester_id, role in rows:
            holders.setdefault(requester_id, []).append((request_id, role))
        people = sorted(holders)
        if len(people) > _HOLDER_CHECKS:
            start = bisect.bisect_right(people, self._last_holder)
            people = (people[start:] + people[:start])[:_HOLDER_CHECKS]
        ending: dict[str, list[str]] = {}
        for user_id in people:
            grants = holders[user_id]
            previous, self._last_holder = self._last_holder, user_id
            try:
                kind = self._standing(user_id)
            except Deactivated:
                ending.setdefault("requester deactivated", []).extend(r for r, _ in grants)
                continue
            except DirectoryUnavailable as exc:
                log.warning("not checking who still may hold access this sweep: %s", exc)
                self._last_holder = previous  # they are asked about first next time
                break  # Slack is not answering: asking about the others would not help
            except DirectoryError as exc:
                log.warning("could not check that %s may still hold access: %s", user_id, exc)
                continue
            reason = f"requester is now a {kind} account"
            ending.setdefault(reason, []).extend(
                r for r, role in grants if not admits(self.config, role, kind)
            )
        # Waited for at most a sweep interval, as the sweeper's own batches: one held up
        # by a provider that hangs ends by its deadline while the sweeper goes on.
        patience = self.config.settings.sweep_interval.total_seconds()
        for reason, request_ids in ending.items():
            if request_ids and (started := self._start_revoking(request_ids, BOT, reason)):
                started.wait(patience)

    def _expire_pending(self, request_id: str) -> None:
        with self._transaction() as session:
            if not self._set_status(
                session, request_id, [Status.PENDING], Status.EXPIRED, decided_at=self._now()
            ):
                return
            request = self._load(session, request_id)
            self._audit(
                session,
                BOT,
                "expired_undecided",
                request,
                pending_ttl=format_duration(self.config.settings.pending_ttl),
            )
            self._refresh(session, request)
            self._tell(session, request, RequesterNews.EXPIRED)

    def upcoming_expiries(self) -> list[tuple[str, datetime]]:
        """Every active grant not yet due and when it ends: the scheduler is rebuilt from
        this at start-up. Grants already due are the first sweep's, revoked in batches."""
        with self._transaction() as session:
            rows = session.execute(
                select(col(AccessRequest.id), col(AccessRequest.expires_at)).where(
                    col(AccessRequest.status) == Status.ACTIVE,
                    col(AccessRequest.expires_at) > self._now(),
                )
            ).all()
        return [(r[0], r[1]) for r in rows if r[1] is not None]

    # ------------------------------------------------------------------- reading

    def get(self, request_id: str) -> AccessRequest:
        with self._transaction() as session:
            return self._load(session, request_id)

    def targets_of(self, request_id: str) -> list[RequestTarget]:
        return self._targets(request_id)

    def votes_of(self, request_id: str) -> list[Vote]:
        with self._transaction() as session:
            return _snapshot(session, request_id)[1]

    def mine(self, user_id: str) -> list[AccessRequest]:
        """The user's requests that are not finished yet."""
        with self._transaction() as session:
            return list(
                session.scalars(
                    select(AccessRequest)
                    .where(
                        col(AccessRequest.requester_id) == user_id,
                        col(AccessRequest.status).not_in(list(TERMINAL)),
                    )
                    .order_by(col(AccessRequest.created_at))
                )
            )

    def awaiting(self, user_id: str) -> list[AccessRequest]:
        """Pending requests that this user may decide now."""
        with self._transaction() as session:
            pending = list(
                session.scalars(
                    select(AccessRequest)
                    .where(col(AccessRequest.status) == Status.PENDING)
                    .order_by(col(AccessRequest.created_at))
                )
            )
            voted = set(
                session.scalars(select(col(Vote.request_id)).where(col(Vote.voter_id) == user_id))
            )
        # Who may decide is asked now, as a click would be: someone since removed from
        # the approvers (or deactivated, or turned guest) no longer sees the request.
        current: dict[tuple[str, str, str], set[str]] = {}
        mine = self._own_principals(user_id)
        shown = []
        for r in pending:
            own = r.requester_id == user_id or same_person(
                mine, self._principals(r.requester_email)
            )
            if r.id in voted or (own and not r.allow_self_approval):
                continue
            key = (r.role, r.environment, r.requester_id)
            if key not in current:
                current[key] = self._current_approvers(r)
            if user_id in current[key]:
                shown.append(r)
        return shown

    def audit_events(self, request_id: str | None = None) -> list[AuditEvent]:
        with self._transaction() as session:
            query = select(AuditEvent).order_by(col(AuditEvent.id))
            if request_id is not None:
                query = query.where(col(AuditEvent.request_id) == request_id)
            return list(session.scalars(query))

    # ------------------------------------------------------------------- caches

    def sync(self, actor: str) -> None:
        """Forget cached users, groups, accounts and names here, and ask every other
        running bot to do the same (``/jit sync``)."""
        allowed = self.config.settings.admins + [
            entry for members in self.config.groups.values() for entry in members
        ]
        if actor != BOT and not self.directory.is_member(allowed, actor):
            raise NotAllowed("Only approvers and admins can run `/jit sync`.")
        with self._transaction() as session:
            if actor != BOT:
                quotas.check_sync(session, self.config.settings, actor, self._now())
            audit.record(
                session,
                self._clock,
                self._notify,
                actor=actor,
                action=quotas.SYNC_ACTION,
                request_id=None,
                details={},
            )
        raise_signal(self._sessions, "sync", self._now())
        self.follow_signals()

    def follow_signals(self) -> None:
        """Act on a sync raised by `jit-bot sync` or another replica since we last looked."""
        with self._transaction() as session:
            signal = session.get(BotSignal, "sync")
        if signal is None or (self._synced_at and signal.raised_at <= self._synced_at):
            return
        self._synced_at = signal.raised_at
        self.directory.refresh()
        for provider in self._providers.values():
            provider.refresh()
        log.info("caches refreshed (sync raised at %s)", signal.raised_at)

    def requestable(self, user_id: str) -> list[tuple[str, str]]:
        """(name, description) of every role this user may request."""
        names = requestable_roles(
            self.config, self._membership(user_id), standing=self._standing(user_id)
        )
        return [(name, self.config.roles[name].description) for name in names]

    def approvers_for(self, role: str, environment: str, requester_id: str) -> Rule | None:
        matched = match_rule(self.config, role, environment, self._membership(requester_id))
        return matched[1] if matched else None

    def person(self, user_id: str) -> Person:
        return self.directory.person(user_id)

    # ------------------------------------------------------------------- helpers

    def _membership(self, user_id: str) -> Callable[[Sequence[str]], bool]:
        return lambda entries: self.directory.is_member(entries, user_id)

    def _standing(self, user_id: str) -> Standing:
        """What kind of account this is (raises Deactivated, DirectoryError)."""
        return standing_of(self.directory.person(user_id), self.directory.workspace())

    def _check_standing(self, request: AccessRequest, voter_id: str) -> None:
        """Refuse, saying why, a voter whose account may not approve this role at all."""
        try:
            kind = self._standing(voter_id)
        except DirectoryUnavailable:
            raise
        except DirectoryError:
            return  # no such account: not among the approvers, decide_vote says so
        if not admits(self.config, request.role, kind):
            raise NotAllowed(standing_refusal(kind, request.role, "approve") + " Nothing changed.")

    def _approvers_of(self, rule: Rule, role: str) -> set[str]:
        """The rule's approvers for this role: only accounts that may approve it now
        (deactivated ones, bots, other workspaces' accounts and, unless the role allows
        them, guests count for nothing)."""
        entries = [entry for group in rule.approvers for entry in self.config.groups[group]]
        return {user for user in self.directory.resolve(entries) if self._may_approve(user, role)}

    def _may_approve(self, user_id: str, role: str) -> bool:
        try:
            kind = self._standing(user_id)
        except DirectoryUnavailable:
            raise  # no answer: neither a yes nor a no
        except DirectoryError as exc:
            log.info("%s is not counted as an approver of %s: %s", user_id, role, exc)
            return False
        return admits(self.config, role, kind)

    def _current_approvers(self, request: AccessRequest) -> set[str]:
        """The approvers of this request as the config and Slack say right now."""
        matched = match_rule(
            self.config, request.role, request.environment, self._membership(request.requester_id)
        )
        if matched is None or matched[1].auto_approve:
            return set()
        return self._approvers_of(matched[1], request.role)

    def _units(self, role: str, environment: str) -> list[tuple[Provider, TargetSpec, str]]:
        """The concrete units a request grants, each with its description, asked of the
        clouds now (an OU's accounts, a permission set's ARN)."""
        units: list[tuple[Provider, TargetSpec, str]] = []
        for target in self.config.targets[(role, environment)]:
            provider = self._providers[target.provider]
            try:
                units.extend((provider, u, provider.describe(u)) for u in provider.expand(target))
            except ProviderError as exc:
                raise TargetsUnavailable(
                    f"jit-bot could not work out what `{role}` in `{environment}` grants "
                    f"({target.provider}: {exc}); nothing was requested. Try again in a "
                    "minute; if it keeps failing, ask the bot's administrators to run "
                    "`jit-bot check --live`."
                ) from None
        return units

    def _spec(self, target: RequestTarget) -> tuple[Provider, TargetSpec]:
        provider = self._providers[target.provider]
        return provider, provider.target_model.model_validate(target.spec)

    def _targets(self, request_id: str) -> list[RequestTarget]:
        with self._transaction() as session:
            return _snapshot(session, request_id)[0]

    def _record_target(
        self, request_id: str, target_id: int | None, status: TargetStatus, **values: Any
    ) -> bool:
        """Record a target's state, if this process still owns the request (False: it
        was taken over, nothing is written)."""
        with self._transaction() as session:
            if not self._renew(session, [request_id]):
                return False
            session.execute(
                update(RequestTarget)
                .where(col(RequestTarget.id) == target_id)
                .values(status=status, **values)
            )
            return True

    def _fence(self, requests: Sequence[AccessRequest]) -> None:
        """This process now owns these requests' grant or revoke, at their version."""
        now = self._now()
        with self._busy_lock:
            for request in requests:
                self._fences[request.id] = (request.version, now)

    def _owned(self, request_id: str) -> bool:
        """Whether this process still owns the request (and its lease is renewed)."""
        with self._busy_lock:
            fence = self._fences.get(request_id)
        if fence is not None and self._now() - fence[1] < self._lease / 4:
            return True
        with self._transaction() as session:
            return bool(self._renew(session, [request_id]))

    def _renew(self, session: Session, request_ids: Sequence[str]) -> set[str]:
        """Of these requests, those still at the version this process took them at; their
        lease is renewed, and their row stays locked until the transaction ends."""
        with self._busy_lock:
            fences = {rid: self._fences[rid] for rid in request_ids if rid in self._fences}
        if not fences:
            return set()
        now = self._now()
        mine = set(
            _moved(
                session,
                update(AccessRequest)
                .where(
                    _at_versions({rid: version for rid, (version, _) in fences.items()}),
                    col(AccessRequest.status).in_(_OWNERS),
                )
                .values(updated_at=now),
            )
        )
        with self._busy_lock:
            for rid in mine:
                self._fences[rid] = (fences[rid][0], now)
        return mine

    @staticmethod
    def _principal(request: AccessRequest) -> Principal:
        return Principal(slack_user_id=request.requester_id, email=request.requester_email)

    @staticmethod
    def _context(request: AccessRequest) -> GrantContext:
        assert request.expires_at is not None
        return GrantContext(
            request_id=request.id,
            role=request.role,
            environment=request.environment,
            reason=request.reason,
            expires_at=request.expires_at,
        )

    def _now(self) -> datetime:
        return self._clock.now()

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with self._sessions.begin() as session:
            yield session

    def _retrying(self, call: Callable[[], T], wanted: Callable[[], bool] = lambda: True) -> T:
        """A provider call, tried again with jittered backoff while the provider says the
        failure is temporary (throttling, 5xx). Providers retry their own calls too; this
        covers what they give up on, so one bad minute does not fail a grant. Not tried
        again once it is no longer ``wanted`` (its revocation is past its deadline)."""
        for attempt in range(1, self._attempts + 1):
            try:
                return call()
            except ProviderError as exc:
                if not exc.retryable or attempt == self._attempts or not wanted():
                    raise
                log.warning("provider call failed (attempt %d), retrying: %s", attempt, exc)
                self._sleep(random.uniform(0.5, 1.0) * 2**attempt)
        raise AssertionError("unreachable")

    def heartbeat(self) -> None:
        """Renew the lease on every request this process is granting or revoking, so no
        other process takes it over while we are still at it; one another process took
        over already (its version moved on) is not renewed."""
        with self._busy_lock:
            busy = list(self._busy)
        if not busy:
            return
        with self._transaction() as session:
            self._renew(session, busy)

    @property
    def catching_up(self) -> bool:
        """Whether the sweeper is working off a backlog of overdue grants, for at most
        ``_BACKLOG_PRIORITY`` by the bot's clock: a provider that hangs must not silence
        Slack (and the audit channel, which reports failed revocations) for longer."""
        since = self._backlog_since
        # A clock stepped back must not stretch the hold past its bound.
        return since is not None and timedelta(0) <= self._clock.now() - since < _BACKLOG_PRIORITY

    @property
    def lease(self) -> timedelta:
        return self._lease

    @contextmanager
    def _claim(self, request_id: str) -> Iterator[bool]:
        """In-process guard: one thread at a time works on a request's grant or revoke."""
        with self._claim_all([request_id]) as claimed:
            yield bool(claimed)

    @contextmanager
    def _claim_all(self, request_ids: Sequence[str]) -> Iterator[list[str]]:
        """Claim those of ``request_ids`` no other thread of this process is working on."""
        claimed = self._take(request_ids)
        try:
            yield claimed
        finally:
            self._let_go(claimed)

    def _take(self, request_ids: Sequence[str]) -> list[str]:
        """Claim (see ``_claim_all``) for work that ends on another thread."""
        with self._busy_lock:
            claimed = [rid for rid in dict.fromkeys(request_ids) if rid not in self._busy]
            self._busy.update(claimed)
        return claimed

    def _let_go(self, claimed: Sequence[str]) -> None:
        with self._busy_lock:
            self._busy.difference_update(claimed)
            for request_id in claimed:
                self._fences.pop(request_id, None)

    def _load(self, session: Session, request_id: str) -> AccessRequest:
        request = session.get(AccessRequest, request_id, populate_existing=True)
        if request is None:
            raise RequestNotFound(f"There is no request `{request_id}`.")
        return request

    def _set_status(
        self,
        session: Session,
        request_id: str,
        expected: Collection[Status],
        new: Status,
        *,
        fenced: bool = False,
        **values: Any,
    ) -> bool:
        """Compare-and-set: move the request to ``new`` only if it is still in one of the
        ``expected`` states (and, ``fenced``, at the version this process owns it at).
        Returns whether this call made the move."""
        return bool(
            self._set_statuses(session, [request_id], expected, new, fenced=fenced, **values)
        )

    def _set_statuses(
        self,
        session: Session,
        request_ids: Sequence[str],
        expected: Collection[Status],
        new: Status,
        *,
        fenced: bool = False,
        **values: Any,
    ) -> list[str]:
        """Compare-and-set on several requests at once; returns the ids this call moved.
        ``fenced``: only those still at the version this process owns them at."""
        if not request_ids:
            return []
        condition = and_(
            col(AccessRequest.id).in_(request_ids),
            col(AccessRequest.status).in_(list(expected)),
        )
        if fenced:
            with self._busy_lock:
                fences = {rid: self._fences[rid][0] for rid in request_ids if rid in self._fences}
            if not fences:
                return []
            condition = and_(
                condition,
                _at_versions(fences),
            )
        return _moved(
            session,
            update(AccessRequest)
            .where(condition)
            .values(
                status=new,
                updated_at=self._now(),
                version=col(AccessRequest.version) + 1,
                **values,
            ),
        )

    def _take_over(self, session: Session, request_ids: Sequence[str], status: Status) -> list[str]:
        """Claim requests stuck in granting/revoking (or failed ones with access left
        behind) once their lease has run out; returns the ids claimed. The lease check is
        part of the compare-and-set, so only one process wins each."""
        if not request_ids:
            return []
        return _moved(
            session,
            update(AccessRequest)
            .where(
                col(AccessRequest.id).in_(request_ids),
                col(AccessRequest.status) == status,
                col(AccessRequest.updated_at) <= self._now() - self._lease,
            )
            .values(updated_at=self._now(), version=col(AccessRequest.version) + 1),
        )

    def _audit(
        self, session: Session, actor: str, action: str, request: AccessRequest, **details: Any
    ) -> None:
        self._audit_all(session, [(actor, action, request, details)])

    def _audit_all(
        self,
        session: Session,
        events: Sequence[tuple[str, str, AccessRequest, Mapping[str, Any]]],
    ) -> None:
        """Append (actor, action, request, details) events to the trail, in order."""
        audit.record_all(
            session,
            self._clock,
            self._notify,
            [
                audit.Entry(
                    actor=actor,
                    action=action,
                    request_id=request.id,
                    details={
                        "role": request.role,
                        "environment": request.environment,
                        "requester": request.requester_id,
                        **details,
                    },
                )
                for actor, action, request, details in events
            ],
        )

    def _refresh(self, session: Session, request: AccessRequest) -> None:
        targets, votes = _snapshot(session, request.id)
        self._notify.refresh_approver_messages(session, request, targets, votes)

    def _tell(self, session: Session, request: AccessRequest, news: RequesterNews) -> None:
        targets, votes = _snapshot(session, request.id)
        self._notify.tell_requester(session, request, targets, votes, news)


def raise_signal(sessions: sessionmaker[Session], name: str, at: datetime) -> None:
    """Record a signal for every running bot (upsert: the newest time wins)."""
    with sessions.begin() as session:
        signal = session.get(BotSignal, name)
        if signal is None:
            session.add(BotSignal(name=name, raised_at=at))
        elif signal.raised_at < at:
            signal.raised_at = at


def _snapshot(session: Session, request_id: str) -> tuple[list[RequestTarget], list[Vote]]:
    return _snapshots(session, [request_id])[request_id]


def _snapshots(
    session: Session, request_ids: Sequence[str]
) -> dict[str, tuple[list[RequestTarget], list[Vote]]]:
    """Each request's targets (in order) and votes, read in two queries."""
    found: dict[str, tuple[list[RequestTarget], list[Vote]]] = {
        request_id: ([], []) for request_id in request_ids
    }
    if not request_ids:
        return found
    for target in session.scalars(
        select(RequestTarget)
        .where(col(RequestTarget.request_id).in_(request_ids))
        .order_by(col(RequestTarget.request_id), col(RequestTarget.position))
    ):
        found[target.request_id][0].append(target)
    for vote in session.scalars(
        select(Vote).where(col(Vote.request_id).in_(request_ids)).order_by(col(Vote.id))
    ):
        found[vote.request_id][1].append(vote)
    return found


def _load_all(session: Session, request_ids: Sequence[str]) -> dict[str, AccessRequest]:
    """The requests, fresh from the database, in the order asked for."""
    if not request_ids:
        return {}
    loaded = {
        request.id: request
        for request in session.scalars(
            select(AccessRequest)
            .where(col(AccessRequest.id).in_(request_ids))
            .execution_options(populate_existing=True)
        )
    }
    return {request_id: loaded[request_id] for request_id in request_ids}


def _at_versions(versions: Mapping[str, int]) -> ColumnElement[bool]:
    """Requests at exactly these versions: ``(id, version) IN (…)``, one bound list."""
    return tuple_(col(AccessRequest.id), col(AccessRequest.version)).in_(list(versions.items()))


def _moved(session: Session, statement: Update) -> list[str]:
    """Run a compare-and-set UPDATE on requests; the ids it changed."""
    returning = statement.returning(col(AccessRequest.id)).execution_options(
        synchronize_session=False
    )
    return list(session.scalars(returning))


def _granted_to(targets: Sequence[RequestTarget]) -> list[str]:
    """Each target with the cloud identity that received it, for the audit trail."""
    return [f"{t.description} → {t.principal}" for t in targets if t.principal]


def _known_principal(provider: Provider, email: str) -> str | None:
    """The account a target will be granted to, where the provider maps the email to
    another one without asking its cloud (GCP's domain map); None: the email itself, or
    only known once granted."""
    account = provider.account_email(email)
    return None if account == email.lower() else account


def _approvals(session: Session, request_id: str, approvers: Collection[str]) -> int:
    """The approvals that count now: votes of people who are approvers of the request at
    this moment. One deactivated (or removed from the approvers) since counts for nothing."""
    voters = session.scalars(
        select(col(Vote.voter_id)).where(
            col(Vote.request_id) == request_id, col(Vote.decision) == "approve"
        )
    )
    return sum(1 for voter in voters if voter in approvers)
