"""Revocations are kept apart (issue 14, point 7): a provider that hangs fills only its
own slots of the revocation executor, the lease heartbeat keeps beating, and one
deadline per revocation turns a hang into ``revoke_failed``, announced and left to the
sweeper, without a late answer changing what was recorded.

The expiries here are the bot's own APScheduler date jobs, set to fire at chosen real
instants once the fake clock says the grants are over."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, Literal

import pytest
import sqlalchemy as sa
from sqlalchemy import select
from sqlmodel import col

from bot.clock import as_utc
from bot.storage.models import AccessRequest, RequestTarget
from providers.base import GrantContext, GrantOutcome, Principal, Provider, TargetSpec
from providers.fake import FakeProvider
from tests.conftest import ALICE, BOT_TOKEN, SIGNING_SECRET, Bot, audit_lines, stop
from tests.e2e.helpers import submit
from tests.fakes.processes import START_TIMEOUT, Launcher, wait
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_client import SlackSim
from tests.fakes.webhook_receiver import WebhookReceiver

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
  allowed_email_domains: [example.com]
"""

HUNG = [f"UHUNG{i}" for i in range(8)]
HEALTHY = "UHEALTHY"


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

    hung = [submit(bot, user, "panel dev 1h INC-1 hangs on revoke") for user in HUNG]
    fine = submit(bot, HEALTHY, "db-admin dev 1h INC-1 revokes at once")
    assert len(stuck.holdings) == 8 and healthy.holdings == {("healthy@example.com", "db-dev")}
    # The hour is over; the eight expiry jobs fire at once and take the hanging provider's
    # four slots (the other four wait their turn); then the healthy one fires.
    bot.clock.advance(timedelta(hours=1))
    for rid in hung:
        bot.runtime.timers.schedule(rid, bot.clock.now())
    slack.wait_for(lambda: stuck.calls == 4)
    bot.runtime.timers.schedule(fine, bot.clock.now())

    # Revoked while all four calls still hang (nothing lets them go before the deadline):
    # the healthy revoke waited on none of them.
    slack.wait_for(lambda: bot.service.get(fine).status == "revoked", timeout=30)
    assert len(healthy.revoked_at) == 1
    assert healthy.holdings == set()
    slack.wait_for(lambda: any("has ended" in m["text"] for m in slack.messages_in(HEALTHY)))
    assert stuck.running == 4 and stuck.calls == 4 and stuck.most == 4
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
    posts = audit_lines(slack)
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
    approvers = (
        APPROVERS.split("settings:")[0]
        + f"settings:\n  allowed_email_domains: [example.com]\n  {setting}\n"
    )
    with pytest.raises(Exception, match=expected) as raised:
        make_bot(ROLES, approvers, providers={"fake": FakeProvider(), "stuck": HangingProvider()})
    assert "approvers.yaml" in str(raised.value)


# ---------------------------------------------------------------- a real `jit-bot serve`

PROCESS_ROLES = """
roles:
  panel:
    description: Admin of a panel whose webhook hangs on revoke
    max_duration: 1h
    environments:
      dev:
        - provider: webhook
          name: panel
          url: {hung}
          allow_insecure: true  # the test's receivers listen on 127.0.0.1 over http
          secret_env: JIT_WEBHOOK_SECRET
          timeout_seconds: 30
          max_attempts: 1
  wiki:
    description: Admin of a wiki whose webhook answers
    max_duration: 1h
    environments:
      dev:
        - provider: webhook
          name: wiki
          url: {fine}
          allow_insecure: true
          secret_env: JIT_WEBHOOK_SECRET
"""

PROCESS_APPROVERS = """
rules:
  - environments: [dev]
    roles: ["*"]
    auto_approve: true
settings:
  revoke_deadline: {deadline}s
  allowed_email_domains: [example.com]
"""

WEBHOOK_SECRET = "webhook-hmac-key"
GRANT_SECONDS = 4
DEADLINE_SECONDS = 6
# The bot's lease (AccessService's default) and its heartbeat, every third of it.
LEASE_SECONDS = 8.0


@pytest.fixture
def receivers() -> Iterator[tuple[WebhookReceiver, WebhookReceiver]]:
    hung, fine = WebhookReceiver(WEBHOOK_SECRET).start(), WebhookReceiver(WEBHOOK_SECRET).start()
    try:
        yield hung, fine
    finally:
        hung.stop()
        fine.stop()


@pytest.fixture
def process_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack(token=BOT_TOKEN).start()
    for user in [*HUNG, HEALTHY]:
        fake.add_user(user, f"{user.lower()}@example.com", user.lower())
    try:
        yield fake
        fake.assert_clean()
    finally:
        fake.stop()


def _request(sim: SlackSim, slack: FakeSlack, user: str, text: str) -> str:
    reply = sim.command(user, f"request {text}")
    assert reply.status == 200, reply
    answer = slack.wait_for_response(name=reply.response_url_name)
    assert "approved by rule" in answer["text"], answer
    return next(w.rstrip(":.") for w in answer["text"].split() if w.startswith("R-"))


def _requests(database_url: str) -> dict[str, tuple[str, datetime, datetime | None]]:
    """Request id → (status, updated_at, expires_at), read as another process would."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.select(
                    col(AccessRequest.id),
                    col(AccessRequest.status),
                    col(AccessRequest.updated_at),
                    col(AccessRequest.expires_at),
                )
            )
            return {
                r.id: (r.status, as_utc(r.updated_at), r.expires_at and as_utc(r.expires_at))
                for r in rows
            }
    finally:
        engine.dispose()


def test_a_serving_bot_revokes_on_time_beside_eight_hanging_webhooks_and_keeps_its_heartbeat(
    launcher: Launcher,
    process_slack: FakeSlack,
    receivers: tuple[WebhookReceiver, WebhookReceiver],
    database_url: str,
) -> None:
    hung_hook, fine_hook = receivers
    roles = launcher.tmp_path / "roles.yaml"
    approvers = launcher.tmp_path / "approvers.yaml"
    roles.write_text(PROCESS_ROLES.format(hung=hung_hook.url, fine=fine_hook.url))
    approvers.write_text(PROCESS_APPROVERS.format(deadline=DEADLINE_SECONDS))
    env = launcher.env(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=process_slack.api_url,
        DATABASE_URL=database_url,
        JIT_ROLES_FILE=str(roles),
        JIT_APPROVERS_FILE=str(approvers),
        JIT_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    bot = launcher.serve(env)
    bot.wait_healthy()
    sim = SlackSim(bot.url, SIGNING_SECRET, process_slack)
    hung_hook.hang("revoke")

    # Eight grants to the hanging receiver, made together; then one to the healthy one,
    # which therefore ends last, a moment after the eight (all within about a second).
    hung: list[str] = []
    threads = [
        threading.Thread(
            target=lambda u=user: hung.append(
                _request(sim, process_slack, u, f"panel dev {GRANT_SECONDS}s INC-2 hangs")
            )
        )
        for user in HUNG
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(hung) == 8
    wait(lambda: len(hung_hook.holdings) == 8, START_TIMEOUT, "eight grants")
    fine = _request(sim, process_slack, HEALTHY, f"wiki dev {GRANT_SECONDS}s INC-2 answers")
    wait(lambda: fine_hook.holdings, START_TIMEOUT, "the healthy grant")
    seen = _requests(database_url)
    fine_expires = seen[fine][2]
    assert fine_expires is not None
    assert max(seen[rid][2] for rid in hung) <= fine_expires  # type: ignore[type-var]

    # Watch the database as another replica would, until the deadline has ended the eight.
    renewals: dict[str, list[datetime]] = {rid: [] for rid in hung}
    until = time.monotonic() + GRANT_SECONDS + DEADLINE_SECONDS + 10
    while time.monotonic() < until:
        seen = _requests(database_url)
        for rid in hung:
            status, updated_at, _ = seen[rid]
            if status == "revoking" and updated_at not in renewals[rid]:
                renewals[rid].append(updated_at)
        if all(seen[rid][0] == "revoke_failed" for rid in hung):
            break
        time.sleep(0.05)
    assert {seen[rid][0] for rid in hung} == {"revoke_failed"}, bot.output()

    [revoke] = [e for e in fine_hook.events if e["event"] == "revoke"]
    delay = revoke["received_at"] - fine_expires.timestamp()
    assert hung_hook.waiting == 8  # every hanging revoke had its own slot, and still hangs
    gaps = [
        (later - earlier).total_seconds()
        for stamps in renewals.values()
        for earlier, later in itertools.pairwise(stamps)
    ]
    print(f"healthy revoke {delay:.3f}s after expiry; heartbeat gaps max {max(gaps):.2f}s")
    # Queued behind the eight, it would have waited for their deadline; half of that
    # leaves a loaded machine its slowness without letting a queued revoke pass.
    assert delay < DEADLINE_SECONDS / 2, f"the healthy revoke arrived {delay:.2f}s after expiry"
    assert fine_hook.holdings == set()
    # Renewed every third of the lease: a skipped beat would leave a gap of two thirds.
    assert all(len(stamps) >= 2 for stamps in renewals.values()), renewals
    assert max(gaps) < LEASE_SECONDS / 2, gaps
    assert "maximum number of running instances reached" not in bot.output()
    assert "Traceback" not in bot.output()
    # Each requester is told, as for any failed revocation.
    process_slack.wait_for(
        lambda: all(
            any("failed; the bot keeps retrying" in m["text"] for m in process_slack.messages_in(u))
            for u in HUNG
        ),
        timeout=START_TIMEOUT,
    )


def test_stopping_the_bot_still_ends_a_hanging_revocation_by_its_deadline(
    make_bot: Callable[..., Bot],
) -> None:
    """Shutdown drains the work in flight before it stops watching deadlines: a
    revocation waited on during the drain ends by its deadline, so the process exits
    instead of waiting for the provider."""
    stuck = HangingProvider()
    bot = make_bot(ROLES, APPROVERS, providers={"fake": FakeProvider(), "stuck": stuck})
    request_id = submit(bot, ALICE, "panel dev 1h x")
    assert bot.service.get(request_id).status == "active"
    bot.runtime.work.submit(
        lambda: bot.service.revoke_many([request_id], actor="jit-bot", reason="ended early")
    )
    wait(lambda: stuck.running == 1, 10, "the revoke call to hang")

    stopping = threading.Thread(target=stop, args=(bot,), daemon=True)
    stopping.start()
    time.sleep(0.2)  # real time for stop() to reach the drain; the deadline is fake time
    bot.clock.advance(timedelta(minutes=3))
    stopping.join(15)
    try:
        assert not stopping.is_alive(), "stop() waited for the hanging provider"
        assert bot.service.get(request_id).status == "revoke_failed"
    finally:
        stuck.release.set()
