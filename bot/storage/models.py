"""Tables. The database is the truth about every request; nothing about a request's state
lives only in process memory or in a Slack message."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Table, UniqueConstraint, text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def table_of(model: type[SQLModel]) -> Table:
    """A model's table, for Core statements: bulk inserts without the ORM's per-row work."""
    table = model.__table__  # type: ignore[attr-defined]
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return table


def _when(*, index: bool = False, nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), index=index, nullable=nullable))


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    GRANTING = "granting"
    ACTIVE = "active"
    REVOKING = "revoking"
    REVOKE_FAILED = "revoke_failed"
    REVOKED = "revoked"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    FAILED = "failed"
    #: An extension applied: the access it extends now lasts longer (its own row moved).
    EXTENDED = "extended"


TERMINAL = frozenset(
    {
        Status.REVOKED,
        Status.DENIED,
        Status.EXPIRED,
        Status.CANCELLED,
        Status.FAILED,
        Status.EXTENDED,
    }
)


class AccessRequest(SQLModel, table=True):
    __tablename__ = "access_request"
    # History piles up (see migration 0014): one person's requests by time and by status,
    # and everyone's by status and expiry, so that the everyday reads find the live few;
    # one person's live requests by email too (0015: the grants another one still needs).
    __table_args__ = (
        Index("ix_access_request_requester_id_created_at", "requester_id", "created_at"),
        Index("ix_access_request_requester_id_status", "requester_id", "status"),
        Index("ix_access_request_requester_email_status", "requester_email", "status"),
        Index("ix_access_request_status_expires_at", "status", "expires_at"),
    )

    id: str = Field(primary_key=True, max_length=32)
    requester_id: str = Field(max_length=32)
    requester_email: str = Field(max_length=320)
    role: str = Field(max_length=100)
    environment: str = Field(max_length=100)
    reason: str
    duration_seconds: int
    status: str = Field(max_length=20)
    rule_index: int
    required_approvals: int
    auto_approve: bool = False
    allow_self_approval: bool = False
    approvers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _when(nullable=False)
    updated_at: datetime = _when(nullable=False)
    decided_at: datetime | None = _when()
    granted_at: datetime | None = _when()
    expires_at: datetime | None = _when()
    ended_at: datetime | None = _when()
    ended_by: str | None = Field(default=None, max_length=32)
    end_reason: str | None = None
    error: str | None = None
    version: int = 0
    #: The Slack interaction that asked (its trigger_id): delivered twice, still one request.
    origin: str | None = Field(default=None, max_length=200, unique=True, index=True)
    #: Granted at once by the requester's own break-glass, with no approver's click.
    break_glass: bool = Field(default=False, index=True)
    #: The incident the break-glass was for, as the requester typed it (shown escaped).
    incident: str | None = Field(default=None, max_length=100)
    #: An extension: the active request whose access it asks to keep longer. It grants
    #: nothing of its own; once applied, that request's expiry moves.
    extends: str | None = Field(default=None, index=True, max_length=32)
    #: For an extension: the role's max_duration when it was asked, in seconds. A total
    #: from the first grant past it is approved only by approvers, explicitly, and their
    #: DM says so.
    max_total_seconds: int | None = None
    #: The expiry the requester was last nudged about ("10 minutes left"): an extension
    #: moves the expiry, and the next one is nudged about again, once.
    nudged_for: datetime | None = _when()
    #: Approvers who get no DM (a quiet group's members): they may still decide, from the
    #: App Home or with /jit approve. A subset of ``approvers``.
    quiet_approvers: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    #: People told of the request without buttons (the rule's ``notify`` groups).
    watchers: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )
    #: While pending: when its approvers are reminded next, and when they last were (the
    #: request's creation before the first reminder); the wait doubles each time.
    next_reminder_at: datetime | None = _when(index=True)
    reminded_at: datetime | None = _when()
    #: While pending: when the rule's escalate_to group is asked; set to escalated_at once
    #: it was (by a compare-and-set, so a restart or a second replica escalates once).
    escalate_at: datetime | None = _when(index=True)
    escalated_at: datetime | None = _when()


class TargetStatus(StrEnum):
    PENDING = "pending"
    GRANTING = "granting"  # the provider was called; whether it landed is not known yet
    GRANTED = "granted"
    FAILED = "failed"
    REVOKED = "revoked"
    KEPT = "kept"  # left in place: standing access, or another active grant still needs it
    REVOKE_FAILED = "revoke_failed"


class RequestTarget(SQLModel, table=True):
    """One concrete unit of access a request grants (one account, one project …)."""

    __tablename__ = "request_target"

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(foreign_key="access_request.id", index=True, max_length=32)
    position: int
    provider: str = Field(max_length=50)
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    target_key: str = Field(index=True)
    description: str
    status: str = Field(default=TargetStatus.PENDING, index=True, max_length=20)
    preexisting: bool = False
    error: str | None = None
    granted_at: datetime | None = _when()
    revoked_at: datetime | None = _when()
    # The cloud identity that receives this access (its provider's own name for it),
    # known before the grant where no lookup is needed, confirmed by the grant.
    principal: str | None = Field(default=None, max_length=320)


class Vote(SQLModel, table=True):
    __tablename__ = "vote"
    __table_args__ = (UniqueConstraint("request_id", "voter_id", name="uq_vote_request_voter"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(foreign_key="access_request.id", index=True, max_length=32)
    voter_id: str = Field(max_length=32)
    decision: str = Field(max_length=10)  # approve | deny
    reason: str | None = None
    created_at: datetime = _when(nullable=False)
    # Who voted, as the principal they stand for: one person's two accounts count once.
    voter_email: str | None = Field(default=None, max_length=320)


class AuditEvent(SQLModel, table=True):
    """Append-only: the code never updates or deletes a row of this table."""

    __tablename__ = "audit_event"
    # How many syncs someone asked for lately (bot/quotas.py), without reading the trail.
    __table_args__ = (Index("ix_audit_event_action_at", "action", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _when(nullable=False)
    actor: str = Field(max_length=64)
    action: str = Field(max_length=64)
    request_id: str | None = Field(default=None, index=True, max_length=32)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # A hash chain: ``hash`` covers ``prev_hash`` and this event's own content (id
    # included), so a changed, removed or reordered event breaks the chain after it.
    prev_hash: str = Field(default="", max_length=64, sa_column_kwargs={"server_default": ""})
    hash: str = Field(default="", max_length=64, sa_column_kwargs={"server_default": ""})
    # Which key signed ``hash`` (an HMAC; see bot/audit_key.py). None: an unkeyed SHA-256
    # event from before the chain was keyed.
    key_id: str | None = Field(default=None, max_length=16)


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


# The predicate of the pending messages' partial index (migration 0016).
_PENDING_ONLY = text(f"status = '{OutboxStatus.PENDING}'")


class OutboxMessage(SQLModel, table=True):
    """A Slack call to make. Written in the same transaction as the change it reports, so
    a Slack outage delays a post and never loses it."""

    __tablename__ = "outbox_message"
    # The pending messages in order, for the look for due ones (migration 0016): a
    # constant predicate, so a statement that names the status as one can use it.
    __table_args__ = (
        Index(
            "ix_outbox_message_pending",
            "id",
            postgresql_where=_PENDING_ONLY,
            sqlite_where=_PENDING_ONLY,
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = _when(nullable=False)
    ordering_key: str = Field(index=True, max_length=64)
    method: str = Field(max_length=40)
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    message_ref: str | None = Field(default=None, max_length=128)
    status: str = Field(default=OutboxStatus.PENDING, index=True, max_length=10)
    attempts: int = 0
    next_attempt_at: datetime = _when(index=True, nullable=False)
    sent_at: datetime | None = _when()
    last_error: str | None = None


class SlackMessage(SQLModel, table=True):
    """Where a message we posted landed, so it can be updated in place later."""

    __tablename__ = "slack_message"

    ref: str = Field(primary_key=True, max_length=128)
    channel: str = Field(max_length=32)
    ts: str = Field(max_length=32)


class BotSignal(SQLModel, table=True):
    """A request from outside the process (``jit-bot sync``) that every running bot acts
    on when it next looks: the newest ``raised_at`` wins."""

    __tablename__ = "bot_signal"

    name: str = Field(primary_key=True, max_length=32)
    raised_at: datetime = _when(nullable=False)


class DenialStatus(StrEnum):
    IN_FORCE = "in_force"  # written, or to be written, to the cloud
    LIFTING = "lifting"  # a sweeper has claimed its removal (until ``claimed_until``)
    LIFTED = "lifted"


class SessionDenial(SQLModel, table=True):
    """A denial that ends the live sessions of a revoked grant (an AWS Deny statement):
    recorded so that its removal, once those sessions have run out, survives restarts and
    is made by one process."""

    __tablename__ = "session_denial"
    __table_args__ = (
        UniqueConstraint("request_id", "scope", name="uq_session_denial_request_scope"),
    )

    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(foreign_key="access_request.id", index=True, max_length=32)
    provider: str = Field(max_length=50)
    #: The shared document it lives in (an AWS permission set).
    scope: str = Field(index=True, max_length=400)
    #: A target unit in that scope, for the provider to reach it again.
    spec: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    name: str = Field(max_length=128)
    principal_id: str = Field(max_length=200)
    before: datetime = _when(nullable=False)
    lift_after: datetime = _when(index=True, nullable=False)
    status: str = Field(default=DenialStatus.IN_FORCE, index=True, max_length=10)
    claimed_until: datetime | None = _when()
    version: int = 0
    lifted_at: datetime | None = _when()
    error: str | None = None


class BreakGlassReview(SQLModel, table=True):
    """The post-incident review of one break-glass use: opened as the glass is broken,
    decided once by one of the rule's approvers (never the requester), and reminded to
    them daily until then. ``reminded_at`` is when the reviewers were last asked, so a
    restart or a second replica never asks twice in a day."""

    __tablename__ = "break_glass_review"

    request_id: str = Field(primary_key=True, foreign_key="access_request.id", max_length=32)
    opened_at: datetime = _when(nullable=False)
    reminded_at: datetime = _when(index=True, nullable=False)
    #: justified | not_justified; None while unreviewed.
    verdict: str | None = Field(default=None, max_length=20)
    reviewer_id: str | None = Field(default=None, max_length=32)
    reviewed_at: datetime | None = _when()
    #: What the reviewer typed (at most ``reviewing.NOTE_MAX``; shown escaped).
    note: str | None = None


class HomeViewer(SQLModel, table=True):
    """Someone who has opened the bot's Home tab: only their Homes are re-published when
    a request that concerns them changes (everyone else's is built when they open it).
    ``admin`` is whether they were an admin then, so a change to everyone's access
    refreshes the Homes that show it without asking Slack who the admins are."""

    __tablename__ = "home_viewer"

    user_id: str = Field(primary_key=True, max_length=32)
    opened_at: datetime = _when(nullable=False)
    admin: bool = False
    #: What their last click on the Home did, or why not (mrkdwn, escaped): shown at its
    #: top, through the refreshes that follow, until they open it again.
    notice: str | None = None
