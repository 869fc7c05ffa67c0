"""Names that matter across the bot: the audit trail's actions, votes and their outcomes,
and the actor the bot records for what it does by itself.

They are ``StrEnum``s so they are stored, exported and compared as the plain strings the
audit trail has always held (``AuditAction.GRANTED == "granted"``): renaming a member
here is a schema change for every audit export, so add names, never rename them.
"""

from __future__ import annotations

from enum import StrEnum

# The actor of everything the bot does by itself (auto-approval, grants, expiry, drift).
BOT_ACTOR = "jit-bot"


class AuditAction(StrEnum):
    # requesting and deciding
    REQUESTED = "requested"
    AUTO_APPROVED = "auto_approved"
    # the requester's own break-glass: the recorded approval of a request no one approved
    BREAK_GLASS = "break_glass"
    # one of the rule's approvers judged a break-glass use afterwards (see Verdict)
    BREAK_GLASS_REVIEWED = "break_glass_reviewed"
    APPROVAL_RECORDED = "approval_recorded"
    APPROVED = "approved"
    DENIED = "denied"
    CANCELLED = "cancelled"
    EXPIRED_UNDECIDED = "expired_undecided"
    # waited escalate_after undecided: the rule's escalate_to group was asked too
    ESCALATED = "escalated"
    # granting
    GRANT_STARTED = "grant_started"
    GRANT_RESUMED = "grant_resumed"
    STANDING_ACCESS_FOUND = "standing_access_found"
    GRANTED = "granted"
    GRANT_FAILED = "grant_failed"
    ROLLED_BACK = "rolled_back"
    # extending: the extension's own events, and the move of the access it extends
    EXTENSION_STARTED = "extension_started"
    EXTENSION_RESUMED = "extension_resumed"
    EXTENDED = "extended"
    EXTENSION_FAILED = "extension_failed"  # nothing extended; the access ends as it would
    EXPIRY_MOVED = "expiry_moved"
    # the holder was shown a fresh generated password (never recorded) for these targets
    CREDENTIALS_SHOWN = "credentials_shown"
    # revoking
    REVOKE_STARTED = "revoke_started"
    REVOKED = "revoked"
    REVOKE_FAILED = "revoke_failed"
    SESSIONS_ENDED = "sessions_ended"
    SESSION_DENIAL_LIFTED = "session_denial_lifted"
    # drift between the providers and the database
    DRIFT_DETECTED = "drift_detected"
    DRIFT_REVOKED = "drift_revoked"
    DRIFT_REVOKE_FAILED = "drift_revoke_failed"
    # administration
    SYNC = "sync"
    AUDIT_KEY_CHANGED = "audit_key_changed"


class Decision(StrEnum):
    """What an approver chose; stored on the vote row."""

    APPROVE = "approve"
    DENY = "deny"


class VoteOutcome(StrEnum):
    """What one vote did to its request."""

    RECORDED = "recorded"  # counted; the request still waits for more approvals
    APPROVED = "approved"  # the last approval needed: the grant starts
    DENIED = "denied"  # one deny decides


class Verdict(StrEnum):
    """What the post-incident review of a break-glass use found; stored on its review."""

    JUSTIFIED = "justified"
    NOT_JUSTIFIED = "not_justified"
