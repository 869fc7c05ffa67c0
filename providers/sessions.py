"""Ending live sessions: the optional provider capability for clouds whose sessions
outlive the access they were taken under (an AWS role session stays valid for its
permission set's session duration after the assignment is deleted).

Such a provider writes *denials*: "refuse every session of this person issued before
this instant". They live in a document several people share (an AWS permission set's
inline policy), so jit-bot asks for the whole set of its denials in that document at
once, computed from the database: whichever process writes last writes the truth, and
a write lost to a race is put right by the next sweep.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from providers.base import Principal, TargetSpec


@dataclass(frozen=True)
class SessionScope:
    """Where a person's sessions for a target are ended, and for how long that matters."""

    #: The shared document denials are written to; targets with the same key share it.
    key: str
    #: The cloud's own id of the person (what a denial's condition names).
    principal_id: str
    #: How long a session issued just before the denial can live: after that the denial
    #: has nothing left to refuse and is lifted.
    lifetime: timedelta


@dataclass(frozen=True)
class Denial:
    """Refuse the sessions of ``principal_id`` issued before ``before``."""

    name: str  # identifies the denial in the document (an IAM statement id)
    principal_id: str
    before: datetime


class EndsSessions(ABC):
    """Mixed into a Provider whose sessions outlive a revoked grant."""

    @abstractmethod
    def session_scope(
        self, principal: Principal, target: TargetSpec, *, recorded: str | None = None
    ) -> SessionScope | None:
        """Where this person's sessions for this target are ended; None when the target
        is configured not to end them (or the person has no cloud identity to name).
        ``recorded``: the cloud's name for them kept with the grant
        (``GrantOutcome.principal``), used before any lookup: a person deleted or renamed
        since (offboarding) must still have their sessions ended."""

    @abstractmethod
    def denial_name(self, request_id: str) -> str:
        """The name of the denial that ends the sessions of this request's grant."""

    @abstractmethod
    def write_denials(
        self, target: TargetSpec, denials: Sequence[Denial], *, enforce: bool = False
    ) -> bool:
        """Make jit-bot's denials in the target's scope exactly ``denials``, leaving
        everything else in the document as it is, and make that effective. Returns
        whether the document had to change. Raise ProviderError on failure.
        ``enforce``: make it effective even when the document already says it (an
        earlier write may have changed it and then failed to take effect)."""
