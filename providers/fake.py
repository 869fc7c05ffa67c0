"""An in-memory provider for tests and local trials. It honours the full interface (and
passes the contract suite), records every call and can be told to fail.

Like every provider it retries its own temporary failures (``retryable``), here under
`providers.resilience.NO_WAIT`: four attempts, each recorded in ``calls``, and no real
waiting, so tests stay fast. A subclass that overrides ``grant`` or ``revoke`` (to fail,
block or count) is retried around its override, as a cloud's SDK call would be.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from providers.base import GrantOutcome, Provider, ProviderError, TargetSpec
from providers.resilience import NO_WAIT, RetryPolicy

if TYPE_CHECKING:  # annotations only
    from providers.base import GrantContext, Principal

R = TypeVar("R")
# The providers whose retry loop this thread is inside: an override calling
# super().grant() is one attempt of the outer loop, not a loop of its own.
_retrying = threading.local()


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


def _retried(method: Callable[..., R]) -> Callable[..., R]:
    """``method`` tried again while it raises a retryable ProviderError, under the
    provider's ``retry`` policy."""

    @functools.wraps(method)
    def call(self: FakeProvider, *args: Any, **kwargs: Any) -> R:
        active: set[int] = _retrying.__dict__.setdefault("providers", set())
        if id(self) in active:
            return method(self, *args, **kwargs)
        active.add(id(self))
        try:
            tries = self.retry.start(self.sleep)
            while True:
                try:
                    return method(self, *args, **kwargs)
                except ProviderError as exc:
                    if not exc.retryable or not tries.again(why=exc):
                        raise
        finally:
            active.discard(id(self))

    return call


def _no_sleep(seconds: float) -> None:
    """NO_WAIT never asks to wait; a policy that does is waited out by an injected sleep."""


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
    #: (email, resource) → when the grant said it ends, moved later by ``extend``: a
    #: cloud that ends access by itself (a GCP condition, a PIM schedule) holds one.
    ends: dict[tuple[str, str], datetime] = field(default_factory=dict)
    #: Slack domain → account domain, like GCP's JIT_GCP_DOMAIN_MAP: emails of the first
    #: stand for accounts of the second.
    domains: dict[str, str] = field(default_factory=dict)
    #: Resources that do not exist: a live check refuses them and so does a grant, as a
    #: cloud refuses a project or account it does not have.
    missing: set[str] = field(default_factory=set)
    #: How temporary failures are retried; NO_WAIT by default (see the module docstring).
    retry: RetryPolicy = NO_WAIT
    sleep: Callable[[float], None] = _no_sleep
    _failures: dict[tuple[str, str], _Failure] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("grant", "revoke", "extend"):
            if name in cls.__dict__:
                setattr(cls, name, _retried(cls.__dict__[name]))

    def fail(
        self, action: str, resource: str, message: str, *, times: int = 1, retryable: bool = False
    ) -> None:
        """Make the next ``times`` attempts of ``action`` ("grant"/"revoke") on resource
        fail ("extend" too); each retry of a retryable failure is an attempt."""
        with self._lock:
            self._failures[(action, resource)] = _Failure(message, retryable, times)

    def describe(self, target: TargetSpec) -> str:
        target = _as_fake(target)
        return f"fake resource `{target.resource}`"

    def validate(self, target: TargetSpec, *, live: bool = False) -> list[str]:
        target = _as_fake(target)
        if live and target.resource in self.missing:
            raise ProviderError(f"fake resource `{target.resource}` does not exist")
        return []

    @_retried
    def grant(
        self, principal: Principal, target: TargetSpec, context: GrantContext
    ) -> GrantOutcome:
        target = _as_fake(target)
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
            self.ends[holding] = context.expires_at
            return GrantOutcome(principal=account)

    def account_email(self, email: str) -> str:
        local, _, domain = email.lower().rpartition("@")
        return f"{local}@{self.domains.get(domain, domain)}"

    @_retried
    def revoke(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        target = _as_fake(target)
        with self._lock:
            self._record("revoke", principal, target, context)
            self.holdings.discard((principal.email, target.resource))
            self.ends.pop((principal.email, target.resource), None)

    @_retried
    def extend(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        """Move the end of access held to ``context.expires_at``, never earlier; access
        not held cannot be extended (as a cloud refuses to extend what is gone)."""
        target = _as_fake(target)
        with self._lock:
            self._record("extend", principal, target, context)
            holding = (principal.email, target.resource)
            if holding not in self.holdings:
                raise ProviderError(f"fake resource `{target.resource}` is not held; not extended")
            self.ends[holding] = max(self.ends.get(holding, context.expires_at), context.expires_at)

    def is_granted(self, principal: Principal, target: TargetSpec) -> bool | None:
        target = _as_fake(target)
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


def _as_fake(target: TargetSpec) -> FakeTarget:
    if not isinstance(target, FakeTarget):
        raise TypeError(f"the fake provider cannot handle {target.provider} targets")
    return target
