"""Granting and taking access away: rollback, expiry, restarts, early end, pending
timeout, overlapping grants and standing access."""

from __future__ import annotations

import threading
from datetime import timedelta

from providers.base import GrantContext, GrantOutcome, Holding, Principal, TargetSpec
from providers.fake import FakeProvider, FakeTarget
from tests.conftest import ALICE, APPROVERS_YAML, AUDIT_CHANNEL, BOB, CAROL, MALLORY, Bot, stop
from tests.e2e.helpers import buttons, click, force, force_target, latest, submit

ALICE_EMAIL = "alice@example.com"


def _approved(bot: Bot, text: str = "prod-support prod 1h INC-1") -> str:
    request_id = submit(bot, ALICE, text)
    click(bot, BOB, "approve", request_id)
    return request_id


def test_a_partial_failure_rolls_back_what_was_granted_and_says_why(bot: Bot) -> None:
    bot.provider.fail("grant", "prod-logs", "AccessDenied: the bot may not touch prod-logs")
    request_id = _approved(bot)
    request = bot.service.get(request_id)
    assert request.status == "failed"
    assert "AccessDenied" in (request.error or "")
    assert bot.provider.holdings == set()
    assert [(c.action, c.resource) for c in bot.provider.calls] == [
        ("grant", "prod-db"),
        ("grant", "prod-logs"),
        ("revoke", "prod-db"),
        ("revoke", "prod-logs"),  # it may have landed before failing: revoke to be sure
    ]
    failed = bot.dms_to(ALICE)[-1]
    assert "failed" in failed["text"] and "AccessDenied" in str(failed["blocks"])
    assert any("grant_failed" in p and "AccessDenied" in p for p in bot.audit_posts())
    for approver in (BOB, CAROL):
        assert "Grant failed" in str(latest(bot.dms_to(approver)[0])["blocks"])


def test_access_a_refused_rollback_left_behind_is_taken_back_by_the_sweeper(bot: Bot) -> None:
    """The request stays failed (a terminal state), but nobody is told "nothing is left
    granted" while something is, and the sweeper keeps at it until it is gone."""
    bot.provider.fail("grant", "prod-logs", "AccessDenied: the bot may not touch prod-logs")
    bot.provider.fail("revoke", "prod-db", "AccessDenied: the bot may not revoke", times=2)
    request_id = _approved(bot)

    request = bot.service.get(request_id)
    assert request.status == "failed"
    assert (ALICE_EMAIL, "prod-db") in bot.provider.holdings
    told = bot.dms_to(ALICE)[-1]
    assert "nothing is left granted" not in told["text"]
    assert "keeps trying" in told["text"] and "may not revoke" in str(told["blocks"])
    for approver in (BOB, CAROL):
        assert "taking back what it granted FAILED" in str(latest(bot.dms_to(approver)[0]))
    assert any("grant_failed" in p and "may not revoke" in p for p in bot.audit_posts())

    bot.service.sweep()  # within the lease of the failed attempt: left alone
    assert bot.provider.count("revoke")[(ALICE_EMAIL, "prod-db")] == 1
    bot.clock.advance(bot.service.lease)
    bot.service.sweep()  # refused again
    bot.settle()
    assert (ALICE_EMAIL, "prod-db") in bot.provider.holdings
    bot.clock.advance(bot.service.lease)
    bot.service.sweep()
    bot.settle()

    assert bot.provider.holdings == set()
    assert bot.service.get(request_id).status == "failed"
    assert [t.status for t in bot.service.targets_of(request_id)] == ["revoked", "revoked"]
    assert [e.action for e in bot.service.audit_events(request_id)][-1] == "rolled_back"
    assert "nothing is left granted" in bot.dms_to(ALICE)[-1]["text"]
    assert "Grant failed; nothing is left granted" in str(latest(bot.dms_to(BOB)[0]))
    bot.clock.advance(bot.service.lease)
    bot.service.sweep()
    assert bot.provider.count("revoke")[(ALICE_EMAIL, "prod-db")] == 3  # done: not again


def test_granted_requester_gets_the_expiry_time_and_extend_and_end_access_buttons(
    bot: Bot,
) -> None:
    request_id = _approved(bot)
    request = bot.service.get(request_id)
    assert request.expires_at == request.granted_at + timedelta(hours=1)  # type: ignore[operator]
    dm = bot.dms_to(ALICE)[-1]
    assert f"<!date^{int(request.expires_at.timestamp())}^" in dm["text"]  # type: ignore[union-attr]
    assert [(b["action_id"], b["value"]) for b in buttons(dm)] == [
        ("extend", request_id),
        ("end_access", request_id),
    ]


def test_the_expiry_job_revokes_when_the_bots_clock_reaches_expires_at(bot: Bot) -> None:
    """The expiry job, not the sweeper (nobody calls it here), ends a grant. It waits on
    the host's clock what is left by the bot's: while the fake clock stands still it keeps
    waking early and waiting again; once the clock reaches expires_at it revokes."""
    request_id = _approved(bot, "prod-support prod 2s INC-1")
    assert bot.provider.holdings == {(ALICE_EMAIL, "prod-db"), (ALICE_EMAIL, "prod-logs")}
    sweeps = bot.runtime.sweeper.runs
    bot.clock.advance(timedelta(seconds=2))
    bot.slack.wait_for(
        lambda: any("has ended" in m["text"] for m in bot.slack.messages_in(ALICE)), timeout=30
    )
    bot.settle()
    assert bot.runtime.sweeper.runs == sweeps  # no periodic sweep did it
    assert bot.service.get(request_id).status == "revoked"
    assert bot.provider.holdings == set()
    assert [e.action for e in bot.service.audit_events(request_id)][-1] == "revoked"


def test_the_sweeper_revokes_whatever_is_past_expiry(bot: Bot) -> None:
    request_id = _approved(bot)
    bot.clock.advance(timedelta(minutes=59))
    bot.service.sweep()
    assert bot.service.get(request_id).status == "active"
    bot.clock.advance(timedelta(minutes=1))
    bot.service.sweep()
    bot.settle()
    assert bot.service.get(request_id).status == "revoked"
    assert bot.provider.holdings == set()
    assert "has ended" in bot.dms_to(ALICE)[-1]["text"]
    for approver in (BOB, CAROL):
        assert "Access ended" in str(latest(bot.dms_to(approver)[0])["blocks"])
    # The grant message loses its button.
    [granted] = [m for m in bot.dms_to(ALICE) if m["updates"]]
    assert not buttons(latest(granted)) and "has ended" in latest(granted)["text"]


def test_access_that_expired_while_the_bot_was_down_is_revoked_right_after_start(
    make_bot,  # type: ignore[no-untyped-def]
) -> None:
    first = make_bot()
    request_id = _approved(first)
    assert first.provider.holdings
    stop(first)  # no revocation on the way down, as in a crash
    first.clock.advance(timedelta(hours=2))
    second = make_bot()
    second.slack.wait_for(lambda: second.service.get(request_id).status == "revoked")
    assert second.provider.holdings == set()
    second.settle()
    assert "has ended" in second.slack.messages_in(ALICE)[-1]["text"]


def test_a_restart_reschedules_every_active_grant(make_bot) -> None:  # type: ignore[no-untyped-def]
    """The second bot's start-up sweep finds nothing due (make_bot settles it); what ends
    the grant afterwards, with nobody sweeping, is the expiry job it scheduled."""
    first = make_bot()
    request_id = _approved(first, "prod-support prod 2s INC-1")
    stop(first)
    second = make_bot()
    assert second.service.get(request_id).status == "active"
    sweeps = second.runtime.sweeper.runs
    second.clock.advance(timedelta(seconds=2))
    second.slack.wait_for(
        lambda: any("has ended" in m["text"] for m in second.slack.messages_in(ALICE)), timeout=30
    )
    second.settle()
    assert second.runtime.sweeper.runs == sweeps  # no periodic sweep did it
    assert second.service.get(request_id).status == "revoked"
    assert second.provider.holdings == set()


def test_end_access_button_revokes_at_once(bot: Bot) -> None:
    request_id = _approved(bot)
    assert "Ending access" in click(bot, ALICE, "end_access", request_id)
    request = bot.service.get(request_id)
    assert request.status == "revoked" and request.ended_by == ALICE
    assert bot.provider.holdings == set()


def test_an_approver_can_end_access_with_jit_revoke(bot: Bot) -> None:
    request_id = _approved(bot)
    assert "Ending access" in bot.command(CAROL, f"revoke {request_id}")["text"]
    bot.settle()
    assert bot.service.get(request_id).status == "revoked"
    assert bot.service.get(request_id).end_reason == "ended early"


def test_others_cannot_end_someone_elses_access(bot: Bot) -> None:
    request_id = _approved(bot)
    assert (
        "Only the requester or an approver" in bot.command(MALLORY, f"revoke {request_id}")["text"]
    )
    assert "Only the requester or an approver" in click(bot, MALLORY, "end_access", request_id)
    assert bot.service.get(request_id).status == "active"
    assert "no request" in bot.command(ALICE, "revoke nonsense")["text"]


def test_ending_access_that_is_not_active_says_so(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    assert "only active access can be ended" in bot.command(ALICE, f"revoke {request_id}")["text"]


def test_a_request_nobody_decides_in_time_expires(bot: Bot) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    bot.clock.advance(timedelta(minutes=59))
    bot.service.sweep()
    assert bot.service.get(request_id).status == "pending"
    bot.clock.advance(timedelta(minutes=1))
    bot.service.sweep()
    bot.settle()
    assert bot.service.get(request_id).status == "expired"
    assert "expired without a decision" in bot.dms_to(ALICE)[-1]["text"]
    for approver in (BOB, CAROL):
        message = latest(bot.dms_to(approver)[0])
        assert not buttons(message) and "Expired" in str(message["blocks"])
    assert "already been decided" in click(bot, BOB, "approve", request_id)
    assert bot.provider.calls == []


def test_access_another_active_grant_still_needs_stays_in_place(bot: Bot) -> None:
    first = _approved(bot, "prod-support prod 1h INC-1")
    bot.clock.advance(timedelta(minutes=30))
    second = _approved(bot, "prod-support prod 2h INC-2")
    bot.clock.advance(timedelta(minutes=31))
    bot.service.sweep()
    bot.settle()
    assert bot.service.get(first).status == "revoked"
    assert bot.provider.holdings == {(ALICE_EMAIL, "prod-db"), (ALICE_EMAIL, "prod-logs")}
    kept = [t.error for t in bot.service.targets_of(first)]
    assert kept == [f"still needed by {second}"] * 2
    bot.clock.advance(timedelta(hours=2))
    bot.service.sweep()
    assert bot.provider.holdings == set()


def test_access_granted_again_while_it_is_being_revoked_is_not_taken_for_standing_access(
    bot: Bot,
) -> None:
    first = _approved(bot, "prod-support prod 1h INC-1")
    now = bot.clock.now()
    # The first grant is being revoked, its cloud calls not yet made, when a second
    # request for the same access is granted: the cloud answers "already assigned", as AWS
    # does, and cannot say that jit-bot put it there.
    force(bot, first, status="revoking", ended_at=now, ended_by=ALICE, updated_at=now)
    bot.provider.standing |= {(ALICE_EMAIL, "prod-db"), (ALICE_EMAIL, "prod-logs")}
    second = _approved(bot, "prod-support prod 2h INC-2")
    assert [t.preexisting for t in bot.service.targets_of(second)] == [False, False]

    bot.clock.advance(bot.service.lease + timedelta(seconds=1))
    bot.service.sweep()  # the first revocation resumes, and leaves what the second needs
    bot.settle()
    assert bot.service.get(first).status == "revoked"
    assert [t.error for t in bot.service.targets_of(first)] == [f"still needed by {second}"] * 2

    click(bot, ALICE, "end_access", second)
    assert bot.provider.holdings == set(), "access jit-bot granted must not outlive its grants"


def test_standing_access_found_at_grant_time_is_left_alone_at_revocation(bot: Bot) -> None:
    bot.provider.standing.add((ALICE_EMAIL, "prod-db"))
    request_id = _approved(bot)
    events = bot.service.audit_events(request_id)
    assert [e.details.get("target") for e in events if e.action == "standing_access_found"] == [
        "fake resource `prod-db`"
    ]
    click(bot, ALICE, "end_access", request_id)
    assert bot.provider.holdings == {(ALICE_EMAIL, "prod-db")}
    assert [c.resource for c in bot.provider.calls if c.action == "revoke"] == ["prod-logs"]


def test_a_failed_revocation_is_retried_by_the_sweeper_and_shouted_about(bot: Bot) -> None:
    request_id = _approved(bot)
    # Eight failures: the revoke click and the first sweep each give up after four tries.
    bot.provider.fail("revoke", "prod-logs", "Throttled", times=8, retryable=True)
    click(bot, ALICE, "end_access", request_id)
    assert bot.service.get(request_id).status == "revoke_failed"
    assert bot.provider.holdings == {(ALICE_EMAIL, "prod-logs")}
    assert any("revoke_failed" in p and "Throttled" in p for p in bot.audit_posts())
    assert "failed" in bot.dms_to(ALICE)[-1]["text"]
    bot.service.sweep()
    assert bot.service.get(request_id).status == "revoke_failed"
    bot.service.sweep()
    bot.settle()
    assert bot.service.get(request_id).status == "revoked"
    assert bot.provider.holdings == set()


class _BlockingProvider(FakeProvider):
    """Blocks inside grant until released, to observe what happens meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.returned = threading.Event()

    def grant(
        self, principal: Principal, target: TargetSpec, context: GrantContext
    ) -> GrantOutcome:
        self.entered.set()
        assert self.release.wait(20), "test never released the provider"
        try:
            return super().grant(principal, target, context)
        finally:
            self.returned.set()


def test_slack_is_acknowledged_before_any_provider_call(make_bot) -> None:  # type: ignore[no-untyped-def]
    provider = _BlockingProvider()
    bot = make_bot(providers={"fake": provider})
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    try:
        reply = bot.sim.block_action(BOB, "approve", request_id)
        # The click was answered while the provider is still stuck in grant: had the bot
        # granted before acknowledging, the answer would only come once grant returned.
        assert reply.status == 200
        assert provider.entered.wait(10)
        assert not provider.returned.is_set()
        auto = bot.sim.command(ALICE, "request db-admin dev 30m seed")
        assert auto.status == 200
        assert not provider.returned.is_set()
    finally:
        provider.release.set()
    bot.settle()
    assert bot.service.get(request_id).status == "active"


def test_an_approval_a_crash_interrupted_before_granting_is_granted_after_restart(
    make_bot,  # type: ignore[no-untyped-def]
) -> None:
    first = make_bot()
    request_id = submit(first, ALICE, "prod-support prod 1h INC-1")
    force(first, request_id, status="approved", decided_at=first.clock.now())
    stop(first)
    second = make_bot()
    second.slack.wait_for(lambda: second.service.get(request_id).status == "active")
    assert second.provider.holdings == {(ALICE_EMAIL, "prod-db"), (ALICE_EMAIL, "prod-logs")}


def test_a_grant_a_crash_interrupted_midway_is_resumed_once_its_lease_runs_out(
    make_bot,  # type: ignore[no-untyped-def]
) -> None:
    first = make_bot()
    request_id = submit(first, ALICE, "prod-support prod 1h INC-1")
    now = first.clock.now()
    force(first, request_id, status="granting", expires_at=now + timedelta(hours=1), updated_at=now)
    prod_db = first.service.targets_of(request_id)[0]
    force_target(first, prod_db.id, status="granted")
    first.provider.holdings.add((ALICE_EMAIL, "prod-db"))
    stop(first)
    second = make_bot()
    second.service.sweep()
    assert second.service.get(request_id).status == "granting"  # another process may own it
    second.clock.advance(timedelta(minutes=5))
    second.service.sweep()
    second.settle()
    assert second.service.get(request_id).status == "active"
    assert [(c.action, c.resource) for c in second.provider.calls] == [("grant", "prod-logs")]


def test_a_rollback_a_crash_interrupted_is_finished_not_taken_for_a_grant(
    make_bot,  # type: ignore[no-untyped-def]
) -> None:
    """The crash came after prod-logs failed and before the rollback of prod-db: the
    resumed grant must fail and take prod-db back, not call the request active."""
    first = make_bot()
    request_id = submit(first, ALICE, "prod-support prod 1h INC-1")
    now = first.clock.now()
    force(first, request_id, status="granting", expires_at=now + timedelta(hours=1), updated_at=now)
    prod_db, prod_logs = first.service.targets_of(request_id)
    for target, status in ((prod_db, "granted"), (prod_logs, "failed")):
        force_target(first, target.id, status=status, error="AccessDenied: not allowed")
    first.provider.holdings.add((ALICE_EMAIL, "prod-db"))
    stop(first)
    second = make_bot()
    second.clock.advance(timedelta(minutes=5))
    second.service.sweep()
    second.settle()

    request = second.service.get(request_id)
    assert request.status == "failed" and "AccessDenied" in (request.error or "")
    assert second.provider.holdings == set()
    assert ("grant", "prod-logs") not in [(c.action, c.resource) for c in second.provider.calls]
    assert [e.action for e in second.service.audit_events(request_id)][-2:] == [
        "grant_resumed",
        "grant_failed",
    ]
    assert "failed" in second.dms_to(ALICE)[-1]["text"]


class ListingProvider(FakeProvider):
    """The fake cloud, able to list who holds what, as the drift check needs."""

    def inventory(self, target: TargetSpec) -> list[Holding] | None:
        assert isinstance(target, FakeTarget)
        held = sorted(self.holdings)
        return [Holding(email, target) for email, resource in held if resource == target.resource]


def test_the_sweeper_and_the_drift_check_run_by_themselves(make_bot) -> None:  # type: ignore[no-untyped-def]
    """Nobody calls either here: the drift check, every second as configured, tells the
    audit channel of a grant the cloud lost; the sweeper, every second too, ends a grant
    past its time (its 1h expiry job is an hour of the host's clock away)."""
    cloud = ListingProvider()
    bot = make_bot(
        approvers=APPROVERS_YAML.replace(
            "settings:", "settings:\n  sweep_interval: 1s\n  reconcile_interval: 1s"
        ),
        providers={"fake": cloud},
    )
    request_id = _approved(bot)
    cloud.holdings.discard((ALICE_EMAIL, "prod-logs"))  # removed by hand

    def drift_posted() -> bool:
        return any(
            "drift_detected" in m["text"] and "prod-logs" in m["text"]
            for m in bot.slack.messages_in(AUDIT_CHANNEL)
        )

    bot.slack.wait_for(drift_posted, timeout=30)
    bot.clock.advance(timedelta(hours=1))
    bot.slack.wait_for(
        lambda: any("has ended" in m["text"] for m in bot.slack.messages_in(ALICE)), timeout=30
    )
    assert bot.service.get(request_id).status == "revoked"
    assert cloud.holdings == set()
    assert ("revoke", "prod-db") in [(c.action, c.resource) for c in cloud.calls]


def test_access_a_crash_left_unrecorded_is_not_mistaken_for_standing_access(
    make_bot,  # type: ignore[no-untyped-def]
) -> None:
    first = make_bot()
    request_id = submit(first, ALICE, "prod-support prod 1h INC-1")
    now = first.clock.now()
    force(first, request_id, status="granting", expires_at=now + timedelta(hours=1))
    prod_db = first.service.targets_of(request_id)[0]
    force_target(first, prod_db.id, status="granting")
    # The call landed just before the crash; like AWS, the cloud now cannot tell it from
    # standing access.
    first.provider.standing.add((ALICE_EMAIL, "prod-db"))
    first.provider.holdings.add((ALICE_EMAIL, "prod-db"))
    stop(first)
    second = make_bot()
    second.clock.advance(timedelta(minutes=5))
    second.service.sweep()
    second.settle()
    assert second.service.get(request_id).status == "active"
    assert not second.service.targets_of(request_id)[0].preexisting
    click(second, ALICE, "end_access", request_id)
    assert ("revoke", "prod-db") in [(c.action, c.resource) for c in second.provider.calls]


def test_a_temporary_provider_failure_is_retried_and_the_grant_converges(bot: Bot) -> None:
    bot.provider.fail("grant", "prod-logs", "Throttled", times=2, retryable=True)
    request_id = _approved(bot)
    assert bot.service.get(request_id).status == "active"
    attempts = [c.resource for c in bot.provider.calls if c.action == "grant"]
    assert attempts == ["prod-db", "prod-logs", "prod-logs", "prod-logs"]
    assert bot.provider.holdings == {(ALICE_EMAIL, "prod-db"), (ALICE_EMAIL, "prod-logs")}
