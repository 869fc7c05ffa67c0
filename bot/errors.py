"""The domain's exception tree. Raised by the domain, turned into a Slack message at the
edge. Every message is written for the person who will read it in Slack."""

from __future__ import annotations

from datetime import datetime


class JitError(Exception):
    """Something the user asked for cannot be done; ``str(error)`` says why and how to fix
    it. ``field`` names the modal field at fault, when there is one."""

    field: str | None = None

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        if field is not None:
            self.field = field


class UnknownRole(JitError):
    field = "role"


class UnknownEnvironment(JitError):
    field = "environment"


class NotEligible(JitError):
    field = "role"


class BadDuration(JitError):
    field = "duration"


class MissingReason(JitError):
    field = "reason"


class NoApprovalRule(JitError):
    pass


class NoBreakGlass(JitError):
    """No rule of approvers.yaml allows this person to break the glass for this role
    and environment."""


class BadIncident(JitError):
    """A break-glass without an incident reference, or with one too long to show."""

    field = "incident"


class ReasonTooLong(JitError):
    field = "reason"


class NotEnoughApprovers(JitError):
    pass


class QuotaExceeded(JitError):
    """The person has used up a per-person quota; ``retry_at`` is when they may try again."""

    def __init__(self, message: str, *, retry_at: datetime) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class RequestNotFound(JitError):
    pass


class NotAllowed(JitError):
    """The person clicking or typing may not do this to this request."""


class UnverifiedIdentity(NotAllowed):
    """The Slack account's email cannot be trusted to name a cloud principal: Slack has
    not confirmed it, or it is outside the configured email domains."""


class WrongState(JitError):
    """The request has moved on (decided, ended …) and this action no longer applies."""


class CredentialsUnavailable(JitError):
    """A target could not make a password now (its server is down, the grant is gone)."""


class TargetsUnavailable(JitError):
    """A cloud could not say what a role grants right now (an OU's accounts, a name)."""


class DirectoryError(JitError):
    """A user or group could not be looked up in Slack."""


class DirectoryUnavailable(DirectoryError):
    """Slack kept answering 429 or 5xx (or nothing) to a lookup: no answer, so nothing may
    be decided from it, neither a yes nor a no."""


class Deactivated(DirectoryError):
    """Slack says the account is deactivated: a definite answer, unlike
    DirectoryUnavailable, and one that ends whatever access the account holds."""


class InvalidDecision(JitError):
    """A vote that is neither an approval nor a denial (a tampered or unknown button)."""
