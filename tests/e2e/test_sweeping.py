"""The sweeper revokes many overdue grants together: one batch, every grant handled as if
alone (audit, requester told, shared access kept), provider calls in parallel except
where the provider says they must not be."""

from __future__ import annotations

import contextlib
import threading
from datetime import datetime, timedelta
from typing import cast

import pytest
from sqlalchemy.orm import sessionmaker

from bot import audit
from bot.audit_key import AuditKey
from bot.operations import sweeping as service_module
from providers.base import GrantContext, Principal, TargetSpec
from providers.fake import FakeProvider
from providers.gcp import GcpProvider, GcpTarget
from tests.conftest import (
    ALICE,
    AUDIT_KEY,
    BOB,
    CAROL,
    MALLORY,
    Bot,
    audit_lines,
    stop,
)
from tests.e2e.helpers import submit
from tests.fakes.slack_api import FakeSlack

# ``lane`` reads nothing but its target.
_NO_CLIENTS = cast(GcpProvider, object())
PEOPLE = {ALICE: "alice@example.com", BOB: "bob@example.com", CAROL: "carol@example.com"}


def test_one_sweep_revokes_every_overdue_grant_and_keeps_what_another_grant_needs(
    bot: Bot,
) -> None:
    short = {user: submit(bot, user, "db-admin dev 30m batch") for user in PEOPLE}
    long = submit(bot, ALICE, "db-admin dev 1h still needed")
    assert bot.provider.holdings == {(email, "db-dev") for email in PEOPLE.values()}

    bot.clock.advance(timedelta(minutes=31))
    bot.service.sweep()
    bot.settle()

    assert {rid: bot.service.get(rid).status for rid in short.values()} == {
        rid: "revoked" for rid in short.values()
    }
    assert bot.service.get(long).status == "active"
    # Alice's second grant still needs db-dev: hers stays, the others' are gone.
    assert bot.provider.holdings == {("alice@example.com", "db-dev")}
    assert bot.provider.count("revoke") == {
        ("bob@example.com", "db-dev"): 1,
        ("carol@example.com", "db-dev"): 1,
    }
    kept = bot.service.targets_of(short[ALICE])[0]
    assert (kept.status, kept.error) == ("kept", f"still needed by {long}")
    for user, request_id in short.items():
        actions = [e.action for e in bot.service.audit_events(request_id)]
        assert actions[-2:] == ["revoke_started", "revoked"], actions
        assert "has ended" in bot.dms_to(user)[-1]["text"]
    assert audit.verify(sessionmaker(bot.runtime.engine), [AuditKey(AUDIT_KEY.encode(), "")]).ok

    bot.clock.advance(timedelta(minutes=30))
    bot.service.sweep()
    bot.settle()
    assert bot.provider.holdings == set()
    assert bot.service.get(long).status == "revoked"


def test_a_failed_revocation_in_a_batch_fails_only_its_own_grant(bot: Bot) -> None:
    ids = {user: submit(bot, user, "db-admin dev 30m batch") for user in PEOPLE}
    bot.provider.fail("revoke", "db-dev", "AccessDenied: not now", times=1)

    bot.clock.advance(timedelta(minutes=31))
    bot.service.sweep()
    bot.settle()

    statuses = sorted(bot.service.get(rid).status for rid in ids.values())
    assert statuses == ["revoke_failed", "revoked", "revoked"]
    failed = next(rid for rid in ids.values() if bot.service.get(rid).status == "revoke_failed")
    assert "AccessDenied: not now" in (bot.service.get(failed).error or "")
    assert len(bot.provider.holdings) == 1

    bot.service.sweep()  # the next sweep retries it
    bot.settle()
    assert bot.provider.holdings == set()
    assert bot.service.get(failed).status == "revoked"


class _Overlapping(FakeProvider):
    """Counts how many revoke calls run at once. With ``lane`` set, every target shares
    one lane; without, the first two calls must meet (they wait for each other), which
    only parallel calls can."""

    def __init__(self, lane: str | None) -> None:
        super().__init__()
        self._lane = lane
        self._meet = threading.Barrier(2, timeout=5)
        self._running = 0
        self.most = 0
        self._count = threading.Lock()

    def lane(self, target: TargetSpec) -> str | None:
        return self._lane

    def revoke(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        with self._count:
            self._running += 1
            self.most = max(self.most, self._running)
        try:
            if self._lane is None and not self._meet.broken:
                self._meet.wait()  # raises if the calls were made one after the other
            else:
                threading.Event().wait(0.02)  # room for an overlap, if there were one
            super().revoke(principal, target, context)
        finally:
            with self._count:
                self._running -= 1


def _sweep_four_grants(make_bot, provider: _Overlapping) -> Bot:  # type: ignore[no-untyped-def]
    bot: Bot = make_bot(providers={"fake": provider})
    for user in (*PEOPLE, MALLORY):
        submit(bot, user, "db-admin dev 30m batch")
    bot.clock.advance(timedelta(minutes=31))
    bot.service.sweep()
    bot.settle()
    return bot


def test_a_batch_makes_its_provider_calls_in_parallel(make_bot) -> None:  # type: ignore[no-untyped-def]
    provider = _Overlapping(lane=None)
    _sweep_four_grants(make_bot, provider)
    assert provider.holdings == set()
    assert provider.most >= 2


def test_calls_in_one_lane_are_made_one_after_the_other(make_bot) -> None:  # type: ignore[no-untyped-def]
    provider = _Overlapping(lane="one-policy")
    _sweep_four_grants(make_bot, provider)
    assert provider.holdings == set()
    assert provider.count("revoke") and provider.most == 1


def test_the_gcp_provider_puts_calls_on_one_resource_in_one_lane() -> None:
    # Grants and revokes rewrite the resource's whole IAM policy (read, modify, write).
    lane = GcpProvider.lane
    one = GcpTarget(role="roles/logging.viewer", projects=["proj-one"])
    other = GcpTarget(role="roles/browser", projects=["proj-one"])
    elsewhere = GcpTarget(role="roles/logging.viewer", projects=["proj-two"])
    assert lane(_NO_CLIENTS, one) == lane(_NO_CLIENTS, other) == "projects/proj-one"
    assert lane(_NO_CLIENTS, elsewhere) == "projects/proj-two"


class _Watching(FakeProvider):
    """Notes how many Slack calls had been made each time a revoke call starts."""

    def __init__(self, slack: FakeSlack) -> None:
        super().__init__()
        self._slack = slack
        self.slack_calls_seen: list[int] = []

    def revoke(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        self.slack_calls_seen.append(len(self._slack.calls))
        super().revoke(principal, target, context)


def test_slack_posts_wait_while_the_sweeper_works_off_a_backlog(
    make_bot, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    provider = _Watching(slack)
    bot: Bot = make_bot(providers={"fake": provider})
    ids = [submit(bot, user, "db-admin dev 30m batch") for user in PEOPLE]
    _batches_of_one(monkeypatch)  # three batches: a backlog
    bot.clock.advance(timedelta(minutes=31))
    before = len(slack.calls)

    bot.service.sweep()

    # Each batch's "revoke started" posts were queued, yet none went out while revoking.
    assert provider.slack_calls_seen == [before] * len(ids)
    bot.settle()
    assert len(slack.calls) > before
    assert all("has ended" in bot.dms_to(user)[-1]["text"] for user in PEOPLE)


def _batches_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_module, "_SWEEP_BATCH", 1)
    monkeypatch.setattr(service_module, "_SWEEP_BATCH_MOST", {})


class _Stopwatch:
    """Real time as the sweeper reads it, each batch taking the next of ``took``."""

    def __init__(self, took: list[float]) -> None:
        self._took, self._now, self._began = list(took), 0.0, True

    def __call__(self) -> float:
        self._began = not self._began
        if self._began:  # read when the batch is done
            self._now += self._took.pop(0)
        return self._now


def _batch_sizes(  # type: ignore[no-untyped-def]
    make_bot,
    monkeypatch: pytest.MonkeyPatch,
    took: list[float],
    most: dict[str, int] | None = None,
) -> list[int]:
    """Sweep three overdue grants, the first batch of one, each batch taking ``took``
    seconds, at most ``most`` by database (2 on both unless given): the batches' sizes,
    in order."""
    bot: Bot = make_bot()
    ids = [submit(bot, user, "db-admin dev 30m batch") for user in PEOPLE]
    monkeypatch.setattr(service_module, "_SWEEP_BATCH", 1)
    if most is None:
        most = {"sqlite": 2, "postgresql": 2}
    monkeypatch.setattr(service_module, "_SWEEP_BATCH_MOST", most)
    monkeypatch.setattr(service_module, "_elapsed", _Stopwatch(took))
    sizes: list[int] = []
    start_revoking = service_module.revoking.start_revoking

    def noting(ctx, request_ids, *args, **kwargs):  # type: ignore[no-untyped-def]
        sizes.append(len(request_ids))
        return start_revoking(ctx, request_ids, *args, **kwargs)

    monkeypatch.setattr(service_module.revoking, "start_revoking", noting)
    bot.clock.advance(timedelta(minutes=31))
    bot.service.sweep()
    assert {bot.service.get(request_id).status for request_id in ids} == {"revoked"}
    return sizes


def test_a_backlog_of_quick_revocations_goes_in_bigger_batches(
    make_bot, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    assert _batch_sizes(make_bot, monkeypatch, [0.1, 0.1]) == [1, 2]


def test_slow_revocations_keep_the_batches_small(make_bot, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    assert _batch_sizes(make_bot, monkeypatch, [3.0, 3.0, 3.0]) == [1, 1, 1]


def test_batches_neither_quick_nor_slow_keep_their_size(
    make_bot, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    assert _batch_sizes(make_bot, monkeypatch, [1.0, 1.0, 1.0]) == [1, 1, 1]


def test_batch_sizes_double_while_quick_and_halve_while_slow_within_bounds() -> None:
    first, most = service_module._SWEEP_BATCH, 1_000
    quick, slow = service_module._QUICK_BATCH / 2, service_module._SLOW_BATCH * 2
    assert service_module._next_size(first, quick, most) == first * 2
    assert service_module._next_size(most, quick, most) == most
    assert service_module._next_size(most, slow, most) == most // 2
    assert service_module._next_size(first, slow, most) == first
    assert service_module._next_size(first * 2, service_module._SLOW_BATCH, most) == first * 2


def test_batches_grow_on_postgresql_only(
    make_bot, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    # The bounds as the bot has them: SQLite, in the bot's process, has no round trips
    # for bigger batches to save.
    most = dict(service_module._SWEEP_BATCH_MOST)
    sizes = _batch_sizes(make_bot, monkeypatch, [0.1, 0.1, 0.1], most)
    assert sizes == ([1, 2] if database_url.startswith("postgresql") else [1, 1, 1])


class _TakingTime(FakeProvider):
    """Revoke call ``i`` takes ``steps[i]`` of the bot's clock. Each call notes, once its
    time has passed, when that was (by the bot's clock), whether Slack posts were held
    back and what the audit channel in Slack held by then. When they were not, it first
    waits, on Slack's traffic, for the posts about the revocations already done, for as
    long as a test waits for anything (not long enough for the sweeper to give up on the
    batch and end the backlog by itself)."""

    def __init__(self, steps: list[timedelta]) -> None:
        super().__init__()
        self._steps = steps
        self._bot: Bot | None = None
        self.seen: list[tuple[datetime, bool, list[str]]] = []
        self.done: list[str] = []  # request ids revoked, in order

    def watch(self, bot: Bot) -> None:
        self._bot = bot

    def revoke(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        bot = self._bot
        assert bot is not None
        bot.clock.advance(self._steps[len(self.done)])
        held = bot.service.catching_up
        if not held:
            earlier = list(self.done)
            with contextlib.suppress(AssertionError):  # not delivered: the test says so
                bot.slack.wait_for(
                    lambda: all(_said(_posts(bot), rid) == _REVOKING for rid in earlier)
                )
        self.seen.append((bot.clock.now(), held, _posts(bot)))
        super().revoke(principal, target, context)
        self.done.append(context.request_id)


_REVOKING = ["revoke_started", "revoked"]


def _posts(bot: Bot) -> list[str]:
    """The audit channel as Slack has it now (without waiting for the bot to settle)."""
    return audit_lines(bot.slack)


def _said(posts: list[str], request_id: str) -> list[str]:
    """The revocation steps the audit posts report for a request, in the order posted."""
    return [k for p in posts for k in _REVOKING if f"`{request_id}` *{k}*" in p]


def _backlog(
    make_bot, monkeypatch: pytest.MonkeyPatch, steps: list[timedelta]
) -> tuple[Bot, _TakingTime, list[str], list[str], datetime]:  # type: ignore[no-untyped-def]
    """Overdue grants, one per batch (a backlog) and one per step, swept: the bot, the
    provider, the grants, the audit channel before the sweep and when the sweep began."""
    assert timedelta(seconds=15) == service_module._BACKLOG_PRIORITY
    provider = _TakingTime(steps)
    bot: Bot = make_bot(providers={"fake": provider})
    provider.watch(bot)
    users = list(PEOPLE)[: len(steps)]
    ids = [submit(bot, user, "db-admin dev 30m batch") for user in users]
    _batches_of_one(monkeypatch)
    bot.clock.advance(timedelta(minutes=31))
    bot.settle()
    before, swept_at = _posts(bot), bot.clock.now()

    bot.service.sweep()

    # In the end every revocation was said, once, and Slack no longer waits.
    assert sorted(provider.done) == sorted(ids)
    posts = bot.audit_posts()
    assert all(_said(posts, request_id) == _REVOKING for request_id in ids), posts
    assert not bot.service.catching_up
    return bot, provider, ids, before, swept_at


def test_posts_wait_while_the_backlog_s_batches_keep_completing(
    make_bot, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    # Three batches of 10 s each: 30 s in all, longer than one batch may hold Slack back,
    # but each batch is done within 15 s of the one before.
    steps = [timedelta(seconds=10)] * 3
    _, provider, _, before, swept_at = _backlog(make_bot, monkeypatch, steps)

    assert [at - swept_at for at, _, _ in provider.seen] == [
        timedelta(seconds=10),
        timedelta(seconds=20),
        timedelta(seconds=30),
    ]
    # All the while Slack was held back, and heard nothing of the revocations.
    assert [held for _, held, _ in provider.seen] == [True, True, True]
    assert [posts for _, _, posts in provider.seen] == [before] * 3


def test_posts_held_back_resume_while_a_batch_takes_longer_than_the_bound(
    make_bot, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    # The first batch takes 10 s, the second 20 s (a provider that hangs): 15 s after
    # the first was done, while the second is still being revoked, Slack hears again.
    steps = [timedelta(seconds=10), timedelta(seconds=20)]
    _, provider, _, before, _ = _backlog(make_bot, monkeypatch, steps)

    [(_, first_held, first), (_, last_held, last)] = provider.seen
    assert (first_held, first) == (True, before)
    assert not last_held
    new = last[len(before) :]
    assert last[: len(before)] == before
    assert _said(new, provider.done[0]) == _REVOKING, new
    assert "revoked" not in _said(new, provider.done[1])


def test_posts_held_back_by_a_long_backlog_resume_at_the_limit(
    make_bot, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    # Batches keep completing, but the backlog holds Slack back for a limited time in all
    # (lowered here to 25 s): at 30 s, during the third batch, Slack is no longer held
    # back, and hears of the two batches before it, and nothing yet of the third.
    monkeypatch.setattr(service_module, "_BACKLOG_HOLD_LIMIT", timedelta(seconds=25))
    steps = [timedelta(seconds=10)] * 3
    _, provider, _, before, swept_at = _backlog(make_bot, monkeypatch, steps)

    assert [held for _, held, _ in provider.seen] == [True, True, False]
    assert [posts for _, _, posts in provider.seen[:2]] == [before, before]
    last_at, _, last = provider.seen[2]
    assert last_at - swept_at >= timedelta(seconds=25)
    new = last[len(before) :]
    assert last[: len(before)] == before
    for request_id in provider.done[:2]:
        assert _said(new, request_id) == _REVOKING, new
    assert "revoked" not in _said(new, provider.done[2])


class _Broken(FakeProvider):
    """Raises something no provider should (a bug) when revoking Bob's access."""

    def revoke(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        if principal.email == PEOPLE[BOB]:
            raise KeyError("a bug in the provider")
        super().revoke(principal, target, context)


def test_a_provider_bug_on_one_grant_does_not_hold_up_the_rest_of_the_batch(make_bot) -> None:  # type: ignore[no-untyped-def]
    provider = _Broken()
    bot: Bot = make_bot(providers={"fake": provider})
    ids = {user: submit(bot, user, "db-admin dev 30m batch") for user in PEOPLE}
    bot.clock.advance(timedelta(minutes=31))

    bot.service.sweep()
    bot.settle()

    assert {user: bot.service.get(rid).status for user, rid in ids.items()} == {
        ALICE: "revoked",
        BOB: "revoke_failed",
        CAROL: "revoked",
    }
    assert "unexpected error: KeyError" in (bot.service.get(ids[BOB]).error or "")
    assert provider.holdings == {(PEOPLE[BOB], "db-dev")}
    assert any(f"`{ids[BOB]}` *revoke_failed*" in p for p in bot.audit_posts())


def test_a_restarted_bot_gives_grants_their_expiry_jobs_as_their_end_nears(make_bot) -> None:  # type: ignore[no-untyped-def]
    first = make_bot()
    short = submit(first, ALICE, "db-admin dev 30m soon")
    long = submit(first, BOB, "db-admin dev 1h later")
    stop(first)  # its jobs die with it

    second = make_bot()
    second.runtime.look_ahead()
    assert second.runtime.timers.scheduled() == {}  # both end beyond the horizon
    second.clock.advance(timedelta(minutes=26))
    second.runtime.look_ahead()
    short_end = second.service.get(short).expires_at
    assert second.runtime.timers.scheduled() == {short: short_end}
    second.clock.advance(timedelta(minutes=30))
    second.runtime.look_ahead()
    assert set(second.runtime.timers.scheduled()) == {short, long}
    # Whatever the jobs do, the sweeper is the backstop: past their ends both are revoked.
    second.clock.advance(timedelta(hours=1))
    second.service.sweep()
    second.settle()
    assert {second.service.get(r).status for r in (short, long)} == {"revoked"}
