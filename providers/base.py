"""The provider interface every cloud module implements, and the values it passes around.

A *target* is one entry of a role's environment in roles.yaml (``provider: …`` plus that
provider's fields). ``expand`` splits it into the concrete units that are granted one by
one (one AWS account, one GCP project …), so a partial failure can be rolled back unit by
unit and approvers see exactly what they approve.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar

from pydantic import BaseModel, ConfigDict


def one_clean_line(value: str, example: str) -> str:
    """A target's name, rendered inside backticks on one line of a Slack message: one
    line of printable text, no surrounding spaces, no backticks."""
    if value != value.strip() or not value.isprintable() or "`" in value:
        raise ValueError(
            "must be one line of printable text without leading or trailing spaces "
            f"or backticks, for example {example}"
        )
    return value


class TargetSpec(BaseModel):
    """Base of every provider's target model; subclasses add their own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str

    def key(self) -> str:
        """A stable identity: two grants with the same key give the same access."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def identity_problem(self, email_domains: Sequence[str]) -> str | None:
        """Why people with emails of these domains could not be told apart on this target
        (their cloud names would collide); None where they can."""
        return None

    def shortest_grant(self) -> tuple[timedelta, str] | None:
        """The soonest this target can take access away again, and why; None: at once.
        Shorter requests are refused, so the expiry people are shown is the real one."""
        return None


@dataclass(frozen=True)
class Principal:
    """Who receives access."""

    slack_user_id: str
    email: str
    # What the provider said it granted to (GrantOutcome.principal), when revoking a
    # recorded grant: a user renamed or deleted since is still found by it.
    recorded: str | None = None


@dataclass(frozen=True)
class GrantContext:
    """Why access is granted; providers use it for idempotency keys, titles and audit."""

    request_id: str
    role: str
    environment: str
    reason: str
    expires_at: datetime


@dataclass(frozen=True)
class GrantOutcome:
    """What a grant found. ``preexisting`` means the principal already held this access
    outside jit-bot (standing access): revocation must then leave it alone."""

    preexisting: bool = False
    detail: str = ""
    #: The cloud's own name for who received the access (an Identity Store user id, an
    #: Entra object id, a Google member), shown to people and kept with the grant.
    principal: str = ""


@dataclass(frozen=True)
class Holding:
    """Access the cloud says someone holds: for finding drift between the cloud and the
    grants jit-bot believes are active."""

    email: str
    unit: TargetSpec
    #: The jit-bot request the cloud says this access came from, where it records one
    #: (a GCP binding's condition title); drift's clean-up removes exactly that grant.
    request_id: str | None = None
    #: Who holds it in the cloud's own words, where the email is not enough to find them
    #: (a database login: a ``{local}`` template drops the domain, and a template may
    #: have changed since): matched with the grant's recorded ``GrantOutcome.principal``,
    #: and what drift's clean-up revokes from.
    principal: str | None = None


@dataclass(frozen=True)
class Credentials:
    """How one person connects to a target with a password the provider just made
    (``credentials: generated``). Shown once to that person, never stored or logged:
    the password stays out of ``repr``."""

    host: str
    port: int
    database: str | None
    user: str
    password: str = field(repr=False)


class ProviderError(Exception):
    """A provider could not do what it was asked.

    Providers retry their own temporary failures, with their cloud's rules, under one
    policy each (providers/resilience.py); the domain does not retry on top. So a
    ProviderError that reaches the domain is final for this attempt, and ``retryable``
    only says whether trying again later may succeed (throttling, 5xx, timeouts): the
    sweeper tries such a revocation again, and people are told it may work later."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class Provider(ABC):
    """Grants and revokes one kind of target. Implementations hold their SDK clients,
    built by the composition root and passed in; nothing is built at import time."""

    name: ClassVar[str]
    target_model: ClassVar[type[TargetSpec]]
    #: True when the cloud keeps each request's grant apart (a GCP binding per request):
    #: revoking one request's grant never takes away another's, so access is revoked when
    #: its own grant ends, whoever else holds the same. False (most clouds: one assignment
    #: per person, role and scope): jit-bot keeps access another active grant still needs.
    separate_grants: ClassVar[bool] = False

    def validate(self, target: TargetSpec, *, live: bool = False) -> list[str]:
        """Check a target beyond its model: raise ProviderError for what is wrong, return
        warnings. With ``live`` also check it exists and the bot's credentials can act."""
        return []

    def expand(self, target: TargetSpec) -> list[TargetSpec]:
        """The concrete units a target stands for; by default the target itself."""
        return [target]

    @abstractmethod
    def describe(self, target: TargetSpec) -> str:
        """One line for humans: what granting this unit gives."""

    @abstractmethod
    def grant(
        self, principal: Principal, target: TargetSpec, context: GrantContext
    ) -> GrantOutcome:
        """Return once access is effective, or raise ProviderError. Idempotent for the
        same request."""

    @abstractmethod
    def revoke(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        """Remove the access; "already absent" is success. Raise ProviderError otherwise."""

    def extend(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        """Make the access this request already holds on ``target`` last until
        ``context.expires_at`` (the new, later expiry), without a moment without it and
        without a second grant; idempotent, and never shortens it. By default nothing:
        where the cloud does not end access by itself (AWS Identity Center, a webhook),
        the bot's own revocation, rescheduled, is what ends it.

        ``context.request_id`` is the request the access was granted under (so the grant
        is found by the same names as at grant time); ``principal.recorded`` may carry
        what the grant's outcome named. Raise ProviderError (retryable where trying again
        may work) when the access cannot be made to last: it then ends at the old time."""
        return None

    def issue_credentials(
        self, principal: Principal, target: TargetSpec, context: GrantContext
    ) -> Credentials | None:
        """A fresh password for the login this request's grant on ``target`` went to,
        valid until ``context.expires_at`` at most, replacing any earlier one; None where
        the target's people log in as the company arranges (the default). Called only for
        the holder of active access, checked by the domain at the click."""
        return None

    def lane(self, target: TargetSpec) -> str | None:
        """When jit-bot makes many calls at once (revoking a batch of grants), calls on
        targets in the same lane are made one after the other: for a provider whose calls
        rewrite one shared document, such as a cloud IAM policy. None: no such limit."""
        return None

    def endpoint(self, target: TargetSpec) -> str:
        """The system a call on this target talks to. Revocations take turns per endpoint,
        a few at a time, so one that hangs holds up only calls to itself. By default the
        provider's own API."""
        return self.name

    def is_granted(self, principal: Principal, target: TargetSpec) -> bool | None:
        """Whether the principal holds this access now; None where the provider cannot tell."""
        return None

    def inventory(self, target: TargetSpec) -> list[Holding] | None:
        """Who holds the access this target stands for, per unit; None where the provider
        cannot list it (drift is then not checked for it)."""
        return None

    def refresh(self) -> None:
        """Forget cached lookups (users, accounts, names), e.g. after ``/jit sync``."""
        return None

    def account_email(self, email: str) -> str:
        """The email of the cloud account this provider grants to for a Slack email, as
        far as it is known without asking the cloud (GCP's domain map folds domains);
        the Slack email itself by default. Two Slack accounts whose emails give the
        same account here are one person to jit-bot (self-approval, distinct votes)."""
        return email.lower()
