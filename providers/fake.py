"""An in-memory provider for tests and local trials. It honours the full interface (and
passes the contract suite), records every call and can be told to fail."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from providers.base import (
    GrantContext,
    GrantOutcome,
    Principal,
    Provider,
    ProviderError,
    TargetSpec,
)


class FakeTarget(TargetSpec):
    provider: Literal["fake"] = "fake"
    resource: str


@dataclass
class FakeCall:
    action: str
    email: str
    resource: str
    request_id: str


@dataclass
class _Failure:
    message: str
    retryable: bool
    remaining: int


@dataclass
class FakeProvider(Provider):
    """Holds access as a set of (email, resource). ``standing`` entries were there before
    jit-bot and are reported as preexisting."""

    name = "fake"
    target_model = FakeTarget

    grant_delay: float = 0.0
    holdings: set[tuple[str, str]] = field(default_factory=set)
    standing: set[tuple[str, str]] = field(default_factory=set)
    calls: list[FakeCall] = field(default_factory=list)
    #: Slack domain → account domain, like GCP's JIT_GCP_DOMAIN_MAP: emails of the first
    #: stand for accounts of the second.
    domains: dict[str, str] = field(default_factory=dict)
    #: Resources that do not exist: a live check refuses them and so does a grant, as a
    #: cloud refuses a project or account it does not have.
    missing: set[str] = field(default_factory=set)
    _failures: dict[tuple[str, str], _Failure] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(
        self, action: str, resource: str, message: str, *, times: int = 1, retryable: bool = False
    ) -> None:
        """Make the next ``times`` calls of ``action`` ("grant"/"revoke") on resource fail."""
        with self._lock:
            self._failures[(action, resource)] = _Failure(message, retryable, times)

    def describe(self, target: TargetSpec) -> str:
        assert isinstance(target, FakeTarget)
        return f"fake resource `{target.resource}`"

    def validate(self, target: TargetSpec, *, live: bool = False) -> list[str]:
        assert isinstance(target, FakeTarget)
        if live and target.resource in self.missing:
            raise ProviderError(f"fake resource `{target.resource}` does not exist")
        return []

    def grant(
        self, principal: Principal, target: TargetSpec, context: GrantContext
    ) -> GrantOutcome:
        assert isinstance(target, FakeTarget)
        if self.grant_delay:
            time.sleep(self.grant_delay)
        with self._lock:
            self._record("grant", principal, target, context)
            if target.resource in self.missing:
                raise ProviderError(f"fake resource `{target.resource}` does not exist")
            holding = (principal.email, target.resource)
            account = f"fake:{self.account_email(principal.email)}"
            if holding in self.standing:
                self.holdings.add(holding)
                return GrantOutcome(
                    preexisting=True, detail="standing access already present", principal=account
                )
            self.holdings.add(holding)
            return GrantOutcome(principal=account)

    def account_email(self, email: str) -> str:
        local, _, domain = email.lower().rpartition("@")
        return f"{local}@{self.domains.get(domain, domain)}"

    def revoke(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        assert isinstance(target, FakeTarget)
        with self._lock:
            self._record("revoke", principal, target, context)
            self.holdings.discard((principal.email, target.resource))

    def is_granted(self, principal: Principal, target: TargetSpec) -> bool | None:
        assert isinstance(target, FakeTarget)
        with self._lock:
            return (principal.email, target.resource) in self.holdings

    def count(self, action: str) -> Counter[tuple[str, str]]:
        """How often each (email, resource) saw ``action``."""
        with self._lock:
            return Counter((c.email, c.resource) for c in self.calls if c.action == action)

    def _record(
        self, action: str, principal: Principal, target: FakeTarget, context: GrantContext
    ) -> None:
        self.calls.append(FakeCall(action, principal.email, target.resource, context.request_id))
        failure = self._failures.get((action, target.resource))
        if failure and failure.remaining > 0:
            failure.remaining -= 1
            raise ProviderError(failure.message, retryable=failure.retryable)
