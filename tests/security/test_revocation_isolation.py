"""Revocations are kept apart (issue 14, point 7): a provider that hangs fills only its
own slots of the revocation executor, the lease heartbeat keeps beating, and one
deadline per revocation turns a hang into ``revoke_failed``, announced and left to the
sweeper, without a late answer changing what was recorded.

The expiries here are the bot's own APScheduler date jobs: the fake clock is set so that
the grants end a few real seconds after they are made."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from sqlalchemy import select
from sqlmodel import col

from bot.storage.models import AccessRequest, RequestTarget
from providers.base import GrantContext, GrantOutcome, Principal, Provider, TargetSpec
from providers.fake import FakeProvider
from tests.conftest import AUDIT_CHANNEL, Bot
from tests.e2e.helpers import submit
from tests.fakes.slack_api import FakeSlack

ROLES = """
roles:
  panel:
    description: Admin of a panel whose revocations hang
    max_duration: 2h
    environments:
      dev:
        - provider: stuck
          resource: panel
  db-admin:
    description: Fix data by hand
    max_duration: 2h
    environments:
      dev:
        - provider: fake
          resource: db-dev
"""

APPROVERS = """
rules:
  - environments: [dev]
    roles: ["*"]
    auto_approve: true
settings:
  revoke_concurrency: 4
  revoke_deadline: 2m
"""

HUNG = [f"UHUNG{i}" for i in range(8)]
HEALTHY = "UHEALTHY"
# Real seconds from making the grants to the first expiry job.
LEAD = 4


class StuckTarget(TargetSpec):
    provider: Literal["stuck"] = "stuck"
    resource: str


class HangingProvider(Provider):
    """Grants at once; every revoke call blocks until the test lets go."""

    name = "stuck"
    target_model = StuckTarget

    def __init__(self) -> None:
        self.holdings: set[str] = set()
        self.release = threading.Event()
        self.calls = 0
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def describe(self, target: TargetSpec) -> str:
        assert isinstance(target, StuckTarget)
        return f"stuck resource `{target.resource}`"

    def grant(
        self, principal: Principal, target: TargetSpec, context: GrantContext
    ) -> GrantOutcome:
        with self._lock:
            self.holdings.add(principal.email)
        return GrantOutcome()

    def revoke(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            self.release.wait(60)
            with self._lock:
                self.holdings.discard(principal.email)
        finally:
            with self._lock:
                self.running -= 1


class TimedProvider(FakeProvider):
    """The fake cloud, noting the wall-clock time of each revoke call."""

    def __init__(self) -> None:
        super().__init__()
        self.revoked_at: list[float] = []

    def revoke(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        self.revoked_at.append(time.time())
        super().revoke(principal, target, context)


def _rows(bot: Bot, ids: list[str]) -> dict[str, Any]:
    """Every column of the requests and their targets, as the database holds them."""
    with bot.runtime.engine.connect() as connection:
        requests = connection.execute(
            select(AccessRequest.__table__).where(col(AccessRequest.id).in_(ids))  # type: ignore[attr-defined]
        ).all()
        targets = connection.execute(
            select(RequestTarget.__table__).where(col(RequestTarget.request_id).in_(ids))  # type: ignore[attr-defined]
        ).all()
    return {"requests": sorted(map(tuple, requests)), "targets": sorted(map(tuple, targets))}


@pytest.fixture
def stuck() -> Any:
    provider = HangingProvider()
    yield provider
    provider.release.set()


def test_revocations_hanging_on_one_provider_delay_no_other_and_end_by_their_deadline(
    make_bot: Callable[..., Bot], slack: FakeSlack, stuck: HangingProvider
) -> None:
    for i, user in enumerate(HUNG):
        slack.add_user(user, f"hung{i}@example.com", f"hung{i}")
    slack.add_user(HEALTHY, "healthy@example.com", "healthy")
    healthy = TimedProvider()
    bot = make_bot(ROLES, APPROVERS, providers={"fake": healthy, "stuck": stuck})

    # The eight hanging grants end LEAD real seconds from now, the healthy one a second
    # later: its expiry job fires while all eight are stuck in their calls.
    bot.clock.set(datetime.now(UTC) - timedelta(hours=1) + timedelta(seconds=LEAD))
    hung = [submit(bot, user, "panel dev 1h INC-1 hangs on revoke") for user in HUNG]
    bot.clock.advance(timedelta(seconds=1))
    fine = submit(bot, HEALTHY, "db-admin dev 1h INC-1 revokes at once")
    expires_at = bot.service.get(fine).expires_at
    assert expires_at is not None
    assert len(stuck.holdings) == 8 and healthy.holdings == {("healthy@example.com", "db-dev")}
    bot.clock.advance(timedelta(hours=1))

    slack.wait_for(lambda: bot.service.get(fine).status == "revoked", timeout=LEAD + 10)
    [revoked_at] = healthy.revoked_at
    assert revoked_at - expires_at.timestamp() < 1.0, "the healthy revoke waited"
    assert healthy.holdings == set()
    slack.wait_for(lambda: any("has ended" in m["text"] for m in slack.messages_in(HEALTHY)))
    # The hanging provider got its own four slots, no more; the other four wait their turn.
    slack.wait_for(lambda: stuck.calls == 4)
    assert stuck.most == 4
    assert {bot.service.get(rid).status for rid in hung} == {"revoking"}

    # The heartbeat keeps renewing the leases of all eight (as another process would
    # see: updated_at follows the clock), though every revocation is stuck.
    beat = bot.clock.advance(timedelta(seconds=1))
    slack.wait_for(
        lambda: all(bot.service.get(rid).updated_at == beat for rid in hung),
        timeout=bot.service.lease.total_seconds(),
    )

    # The deadline passes: each is revoke_failed, and says so to its requester and the
    # audit channel, like any failed revocation.
    bot.clock.advance(timedelta(minutes=2))
    slack.wait_for(lambda: {bot.service.get(rid).status for rid in hung} == {"revoke_failed"})
    bot.settle()
    errors = sorted(bot.service.get(rid).error or "" for rid in hung)
    assert sum("no answer within the revocation deadline (2m)" in e for e in errors) == 4
    assert sum("not started within the revocation deadline (2m)" in e for e in errors) == 4
    for user, rid in zip(HUNG, hung, strict=True):
        assert "failed; the bot keeps retrying" in bot.dms_to(user)[-1]["text"]
        assert [e.action for e in bot.service.audit_events(rid)][-1] == "revoke_failed"
    posts = [m["text"] for m in slack.messages_in(AUDIT_CHANNEL)]
    assert all(any(f"`{rid}` *revoke_failed*" in p for p in posts) for rid in hung)

    # The four calls still out answer now, after the deadline: nothing they say changes
    # what was recorded, and the four that never started are not made any more.
    recorded = _rows(bot, hung)
    stuck.release.set()
    slack.wait_for(lambda: stuck.running == 0)
    bot.settle()
    assert _rows(bot, hung) == recorded
    assert stuck.calls == 4

    # The sweeper finishes them.
    bot.service.sweep()
    bot.settle()
    assert {bot.service.get(rid).status for rid in hung} == {"revoked"}
    assert stuck.holdings == set()
    for rid in hung:
        actions = [e.action for e in bot.service.audit_events(rid)]
        assert actions[-4:] == ["revoke_started", "revoke_failed", "revoke_started", "revoked"]


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("revoke_concurrency: 0", "settings.revoke_concurrency"),
        ("revoke_deadline: 0s", "settings.revoke_deadline"),
        ("revoke_deadline: 2h", "expected between 1s and 1h"),
    ],
)
def test_revocation_limits_out_of_range_are_refused_naming_the_setting(
    make_bot: Callable[..., Bot], setting: str, expected: str
) -> None:
    approvers = APPROVERS.split("settings:")[0] + f"settings:\n  {setting}\n"
    with pytest.raises(Exception, match=expected) as raised:
        make_bot(ROLES, approvers, providers={"fake": FakeProvider(), "stuck": HangingProvider()})
    assert "approvers.yaml" in str(raised.value)
