"""A rule-based state machine drives the real app (signed Slack requests over HTTP, the
database, the fake provider) through requests, approvals, denials, cancellations, early
ends, clock jumps and crash-and-restart, and checks after every step that:

- a request in a terminal state never changes again;
- nothing is granted without the required distinct approvals (or an auto-approve rule);
- each target of a request is granted at most once (once more only where a crash left a
  grant call's outcome unknown, which the process taking over must repeat);
- once work has settled, the provider holds exactly what the database says is active.

Crashes land between steps and in flight: a grant or revocation is held inside the
provider call (before or after the change lands), the bot is abandoned there, a new bot
on the same database and the same provider (the cloud outlives the bot) takes the work
over once its lease has run out, and only then does the abandoned call return. Whatever
the abandoned thread still does must change nothing: no row, no audit event, no access.

Each example starts from an empty database and an empty cloud, so that hypothesis can
replay and shrink a failure.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlmodel import SQLModel

from bot.storage.models import TERMINAL, AccessRequest, Status
from providers.base import GrantContext, GrantOutcome, Principal, TargetSpec
from providers.fake import FakeProvider, FakeTarget
from tests.conftest import ALICE, BOB, CAROL, MALLORY, SEC1, SEC2, Bot, stop
from tests.fakes.slack_client import text_value

PEOPLE = st.sampled_from([ALICE, BOB, CAROL, SEC1, SEC2, MALLORY])
ENGINEERS = st.sampled_from([ALICE, BOB, CAROL])  # who may ask for every role
SKIP = st.integers(0, 1)  # hold the request's first call, or its second
LANDS = st.booleans()  # the held call's change lands before it is held
MOVES_ON = st.booleans()  # the new bot ends (or grants anew) before the call returns
ASKS = st.sampled_from(
    ["prod-support prod 1h", "prod-support staging 2h", "db-admin prod 30m", "db-admin dev 1h"]
)
# Longer than any step takes for real; a held call that outlives it lets go by itself,
# so a failing run ends instead of hanging.
_HOLD = 30.0
_IN_FLIGHT = (Status.GRANTING, Status.REVOKING)


@dataclass
class Gate:
    """Where one provider call is held: the ``skip``-th next call of ``action``."""

    action: str
    skip: int
    applied: bool  # the change lands before the call is held (the answer is lost)
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    held: tuple[str, str] | None = None  # (request id, resource) of the held call

    def hold(self) -> None:
        self.entered.set()
        self.release.wait(_HOLD)


class GatedProvider(FakeProvider):
    """The fake cloud, able to hold one grant or revoke call until the test lets go."""

    def __init__(self) -> None:
        super().__init__()
        self._gate: Gate | None = None
        self._gates: list[Gate] = []
        self._gate_lock = threading.Lock()

    def arm(self, action: str, *, skip: int, applied: bool) -> Gate:
        with self._gate_lock:
            self._gate = Gate(action, skip, applied)
            self._gates.append(self._gate)
            return self._gate

    def let_go(self) -> None:
        """Disarm, and release every call still held (after a failed step)."""
        with self._gate_lock:
            self._gate = None
            gates, self._gates = self._gates, []
        for gate in gates:
            gate.release.set()

    def disarm(self) -> bool:
        """Take the gate away; whether it was still unused."""
        with self._gate_lock:
            unused, self._gate = self._gate is not None, None
            return unused

    def grant(
        self, principal: Principal, target: TargetSpec, context: GrantContext
    ) -> GrantOutcome:
        gate = self._take("grant", target, context)
        if gate and not gate.applied:
            gate.hold()
        outcome = super().grant(principal, target, context)
        if gate and gate.applied:
            gate.hold()
        return outcome

    def revoke(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        gate = self._take("revoke", target, context)
        if gate and not gate.applied:
            gate.hold()
        super().revoke(principal, target, context)
        if gate and gate.applied:
            gate.hold()

    def _take(self, action: str, target: TargetSpec, context: GrantContext) -> Gate | None:
        assert isinstance(target, FakeTarget)
        with self._gate_lock:
            gate = self._gate
            if gate is None or gate.action != action:
                return None
            if gate.skip > 0:
                gate.skip -= 1
                return None
            self._gate = None
            gate.held = (context.request_id, target.resource)
            return gate


def abandon(bot: Bot) -> None:
    """Crash a bot while a call is in flight: no more HTTP, timers (so no heartbeat
    renews its leases) or Slack posts, and nobody waits for its work to finish."""
    bot.server.close()
    bot.runtime.timers.stop()
    bot.runtime.outbox.stop()


def answer(bot: Bot, user: str, text: str) -> str:
    """What the bot answers to ``/jit <text>``. (Not ``Bot.command``: every bot's SlackSim
    numbers its response URLs from 1, so after a restart that would return the answer a
    previous bot gave to the same-numbered command.)"""
    before = Counter(r["_url_name"] for r in bot.slack.responses)
    reply = bot.sim.command(user, text)
    assert reply.status == 200, reply
    name = reply.response_url_name

    def new() -> list[dict[str, Any]]:
        return [r for r in bot.slack.responses if r["_url_name"] == name][before[name] :]

    return str(bot.slack.wait_for(new)[0]["text"])


def forget_everything(bot: Bot, provider: GatedProvider) -> None:
    """Empty the database and the cloud, so each example starts from nothing and replays
    (when hypothesis shrinks a failure) meet the world they first met."""
    provider.let_go()
    bot.settle()
    with bot.runtime.engine.begin() as connection:
        for table in reversed(SQLModel.metadata.sorted_tables):
            connection.execute(table.delete())
    provider.holdings.clear()
    provider.calls.clear()


def recover(bot: Bot, request_ids: Callable[[], list[str]]) -> None:
    """Sweep until none of the requests is granting or revoking any more."""
    for _ in range(50):
        bot.service.sweep()
        bot.settle()
        if not any(bot.service.get(i).status in _IN_FLIGHT for i in request_ids()):
            return
        time.sleep(0.02)  # the new bot's own start-up sweep is at it; let it finish
    raise AssertionError("the new bot never took the abandoned work over")


def rows(bot: Bot, request_ids: list[str]) -> dict[str, tuple[Any, ...]]:
    """What the database says of each request and its targets, and how long the audit
    trail is."""
    found: dict[str, tuple[Any, ...]] = {"audit trail": (len(bot.service.audit_events()),)}
    for request_id in request_ids:
        r = bot.service.get(request_id)
        targets = [(t.status, t.preexisting) for t in bot.service.targets_of(request_id)]
        found[request_id] = (r.status, r.version, r.expires_at, r.ended_at, r.error, targets)
    return found


def test_the_lifecycle_keeps_its_invariants_under_any_sequence_of_events(
    make_bot: Callable[..., Bot],
) -> None:
    provider = GatedProvider()

    def start() -> Bot:
        return make_bot(providers={"fake": provider})

    current = {"bot": start()}
    # (request id, resource) → grant calls a crash left with an unknown outcome.
    unknown: Counter[tuple[str, str]] = Counter()
    held: Counter[str] = Counter()  # in-flight crashes, by the call they held

    class Lifecycle(RuleBasedStateMachine):
        requests = Bundle("requests")

        def __init__(self) -> None:
            super().__init__()
            self.seen_terminal: dict[str, str] = {}
            forget_everything(self.bot, provider)
            unknown.clear()

        @property
        def bot(self) -> Bot:
            return current["bot"]

        @rule(target=requests, who=PEOPLE, ask=ASKS)
        def request(self, who: str, ask: str):  # type: ignore[no-untyped-def]
            said = answer(self.bot, who, f"request {ask} state machine")
            self.bot.settle()
            ids = [w.rstrip(":.") for w in said.split() if w.startswith("R-")]
            return multiple(*ids[:1])

        @rule(request=requests, who=PEOPLE)
        def approve(self, request: str, who: str) -> None:
            self.bot.sim.block_action(who, "approve", request)
            self.bot.settle()

        @rule(request=requests, who=PEOPLE, reason=st.sampled_from(["", "freeze"]))
        def deny(self, request: str, who: str, reason: str) -> None:
            view = {"id": "VSM", "callback_id": "jit_deny", "private_metadata": request}
            self.bot.sim.submit_view(who, view, {"reason": {"reason": text_value(reason)}})
            self.bot.settle()

        @rule(request=requests, who=PEOPLE)
        def cancel(self, request: str, who: str) -> None:
            answer(self.bot, who, f"cancel {request}")
            self.bot.settle()

        @rule(request=requests, who=PEOPLE)
        def end_early(self, request: str, who: str) -> None:
            self.bot.sim.block_action(who, "end_access", request)
            self.bot.settle()

        @rule(minutes=st.integers(min_value=1, max_value=150))
        def time_passes(self, minutes: int) -> None:
            self.bot.clock.advance(timedelta(minutes=minutes))
            self.bot.service.sweep()
            self.bot.settle()

        @rule()
        def crash_and_restart(self) -> None:
            stop(self.bot)
            current["bot"] = start()

        # ------------------------------------------------------ crashes in flight
        # These draw only what hypothesis can replay: who asks for what, which of the
        # request's calls is held (first or second), whether the change lands before the
        # call is held, and whether the new bot moves on before the abandoned call
        # returns (only where it landed: a call that lands after the new bot is done
        # can only be caught by a drift check, which the fake cloud does not offer).

        @rule(requester=ENGINEERS, ask=ASKS, skip=SKIP, applied=LANDS, moved_on=MOVES_ON)
        def crash_while_granting(
            self, requester: str, ask: str, skip: int, applied: bool, moved_on: bool
        ) -> None:
            self._crash_while_granting(requester, ask, skip, applied, moved_on)

        @rule(
            requester=ENGINEERS,
            ask=ASKS,
            skip=SKIP,
            applied=LANDS,
            moved_on=MOVES_ON,
            by_sweeper=st.booleans(),
        )
        def crash_while_revoking(
            self,
            requester: str,
            ask: str,
            skip: int,
            applied: bool,
            moved_on: bool,
            by_sweeper: bool,
        ) -> None:
            self._crash_while_revoking(requester, ask, skip, applied, by_sweeper, moved_on)

        def _crash_while_granting(
            self, requester: str, ask: str, skip: int, applied: bool, moved_on: bool
        ) -> None:
            """Held in the grant that the last approval (or an auto-approve rule) starts;
            the new bot may end the access before the abandoned call returns."""
            auto = ask.startswith("db-admin dev")  # one target, granted on submission
            gate = provider.arm("grant", skip=0, applied=applied) if auto else None
            request = self._submit(requester, ask, settle=not auto)
            while gate is None and request is not None:
                voter = self._deciding_voter(request)
                if voter is not None:
                    gate = self._arm("grant", request, skip, applied)
                    self.bot.sim.block_action(voter, "approve", request)
                    break
                voter = self._next_voter(request)
                if voter is None:
                    break
                self.bot.sim.block_action(voter, "approve", request)
                self.bot.settle()
            if gate is None or request is None:
                provider.disarm()  # refused, or left pending: nothing was granted
                return

            def end_it() -> None:
                self.bot.sim.block_action(requester, "end_access", request)
                self.bot.settle()

            self._crash_when_held(gate, meanwhile=end_it if moved_on and applied else None)

        def _crash_while_revoking(
            self,
            requester: str,
            ask: str,
            skip: int,
            applied: bool,
            by_sweeper: bool,
            moved_on: bool,
        ) -> None:
            """Held in the revocation of a fresh grant, ended early or by the sweeper; the
            requester may be granted the same again before the abandoned call returns."""
            request = self._approved(self._submit(requester, ask))
            if request is None or self.bot.service.get(request).status != Status.ACTIVE:
                return
            gate = self._arm("revoke", request, skip, applied)
            sweeper = None
            if by_sweeper:
                expires_at = self.bot.service.get(request).expires_at
                assert expires_at is not None
                self.bot.clock.set(max(expires_at, self.bot.clock.now()))
                sweeper = threading.Thread(target=self.bot.service.sweep, name="old-sweeper")
                sweeper.start()
            else:
                self.bot.sim.block_action(requester, "end_access", request)

            def ask_again() -> None:
                self._approved(self._submit(requester, ask))

            self._crash_when_held(
                gate, sweeper, meanwhile=ask_again if moved_on and applied else None
            )

        def _submit(self, requester: str, ask: str, *, settle: bool = True) -> str | None:
            said = answer(self.bot, requester, f"request {ask} in flight")
            if settle:
                self.bot.settle()
            ids = [w.rstrip(":.") for w in said.split() if w.startswith("R-")]
            return ids[0] if ids else None

        def _approved(self, request: str | None) -> str | None:
            """Approve the request by every approver it still needs."""
            while request is not None and (voter := self._next_voter(request)) is not None:
                self.bot.sim.block_action(voter, "approve", request)
                self.bot.settle()
            return request

        def _arm(self, action: str, request_id: str, skip: int, applied: bool) -> Gate:
            # Hold the first or the second of the request's calls (when it has two).
            targets = len(self.bot.service.targets_of(request_id))
            return provider.arm(action, skip=min(skip, targets - 1), applied=applied)

        def _crash_when_held(
            self,
            gate: Gate,
            sweeper: threading.Thread | None = None,
            meanwhile: Callable[[], None] | None = None,
        ) -> None:
            """Crash the bot while the gate holds a call, recover on a new bot, then let
            the abandoned call return and check that its thread changed nothing."""
            old = self.bot
            try:
                if not self._wait_until_held(gate, old, sweeper):
                    old.settle()  # nothing reached the provider: no crash in flight
                    return
                assert gate.held is not None
                abandon(old)
                if gate.action == "grant":
                    unknown[gate.held] += 1
                held[f"{gate.action}, {'landed' if gate.applied else 'not landed'}"] += 1
                current["bot"] = start()
                # The abandoned bot's lease runs out; the new bot's sweeper takes over.
                self.bot.clock.advance(self.bot.service.lease + timedelta(seconds=1))
                recover(self.bot, self._ids)
                if meanwhile is not None:
                    held["and the new bot moved on"] += 1
                    meanwhile()
                    recover(self.bot, self._ids)
                recovered = rows(self.bot, self._ids())
            finally:
                gate.release.set()
            # The abandoned call returns now and its thread carries on where it was.
            if sweeper is not None:
                sweeper.join(_HOLD)
                assert not sweeper.is_alive(), "the abandoned sweep never finished"
            assert old.runtime.work.wait_idle(_HOLD), "the abandoned work never finished"
            stop(old)
            after = rows(self.bot, [i for i in recovered if i.startswith("R-")])
            changed = {i: (was, after[i]) for i, was in recovered.items() if after[i] != was}
            # Before fencing, the abandoned thread marked its target "granted" on a request
            # the new bot had revoked since (test_an_abandoned_grant_does_not_overwrite_…).
            assert not changed, f"the abandoned thread wrote after losing its lease: {changed}"
            self.bot.settle()

        def _wait_until_held(self, gate: Gate, old: Bot, sweeper: threading.Thread | None) -> bool:
            """Whether the gate holds a call; False once the trigger finished without
            reaching the provider (access another grant still needs is not revoked)."""
            deadline = time.monotonic() + _HOLD
            while not gate.entered.wait(0.005):
                finished = (
                    not sweeper.is_alive()
                    if sweeper is not None
                    else old.runtime.listeners.wait_idle(0) and old.runtime.work.wait_idle(0)
                )
                if finished and provider.disarm():
                    return False
                assert time.monotonic() < deadline, "the provider call was never made"
            return True

        def _next_voter(self, request_id: str) -> str | None:
            """An approver of this pending request who has not voted yet."""
            request = self.bot.service.get(request_id)
            if request.status != Status.PENDING:
                return None
            voted = {v.voter_id for v in self.bot.service.votes_of(request_id)}
            voted.add(request.requester_id)
            return next((a for a in sorted(request.approvers) if a not in voted), None)

        def _deciding_voter(self, request_id: str) -> str | None:
            """An approver whose approval would complete this pending request."""
            request = self.bot.service.get(request_id)
            approvals = sum(v.decision == "approve" for v in self.bot.service.votes_of(request_id))
            if approvals + 1 < request.required_approvals:
                return None
            return self._next_voter(request_id)

        # ------------------------------------------------------------- invariants

        @invariant()
        def terminal_states_never_change(self) -> None:
            for request in self._requests():
                before = self.seen_terminal.get(request.id)
                assert before is None or request.status == before, (request.id, before)
                if request.status in TERMINAL:
                    self.seen_terminal[request.id] = request.status

        @invariant()
        def nothing_granted_without_the_required_approvals(self) -> None:
            granted = {c.request_id for c in provider.calls if c.action == "grant"}
            for request in self._requests():
                if request.id not in granted or request.auto_approve:
                    continue
                voters = {
                    v.voter_id
                    for v in self.bot.service.votes_of(request.id)
                    if v.decision == "approve" and v.voter_id != request.requester_id
                }
                assert len(voters) >= request.required_approvals, request.id
                assert not any(
                    v.decision == "deny" for v in self.bot.service.votes_of(request.id)
                ), request.id

        @invariant()
        def each_target_is_granted_at_most_once(self) -> None:
            grants = Counter(
                (c.request_id, c.resource) for c in provider.calls if c.action == "grant"
            )
            # A grant call cut off by a crash may or may not have landed, so the bot
            # taking over makes it again (grants are idempotent). Nothing else is granted
            # twice: before fencing, an abandoned grant thread went on to the request's next
            # targets (test_an_abandoned_grant_grants_nothing_more_once_taken_over).
            twice = {k: n for k, n in grants.items() if n > 1 + unknown[k]}
            assert not twice, f"granted again: {twice}"

        @invariant()
        def the_provider_holds_exactly_what_is_active(self) -> None:
            # Before fencing, an abandoned thread went on with its remaining provider calls
            # after another bot took the request over, granting access revoked since or
            # revoking access a later grant holds (the named regressions below).
            active = {
                (r.requester_email, t.spec["resource"])
                for r in self._requests()
                if r.status == "active"
                for t in self.bot.service.targets_of(r.id)
            }
            assert provider.holdings == active

        def _ids(self) -> list[str]:
            ids = {c.request_id for c in provider.calls}
            ids |= {e.request_id for e in self.bot.service.audit_events() if e.request_id}
            return sorted(ids)

        def _requests(self) -> list[AccessRequest]:
            return [self.bot.service.get(i) for i in self._ids()]

    run_state_machine_as_test(
        Lifecycle,
        settings=settings(
            max_examples=10,
            stateful_step_count=25,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
    print("\nin-flight crashes:", dict(held))  # the figures RELIABILITY.md reports
    # The in-flight crashes did happen, of every kind, about as often as the seeded run
    # makes them. Whether a drawn crash finds its call in flight depends on threads, so
    # the counts vary a little from run to run (and database to database): on SQLite and
    # PostgreSQL the runs give grant 3 landed / 2 not, revoke 15-16 landed / 5-7 not,
    # and 9-11 where the new bot moved on first. The floors leave room for that.
    floors = {
        "grant, landed": 2,
        "grant, not landed": 1,
        "revoke, landed": 10,
        "revoke, not landed": 3,
        "and the new bot moved on": 6,
    }
    below = {kind: held[kind] for kind, floor in floors.items() if held[kind] < floor}
    assert not below, f"in-flight crashes below their floors {floors}: {dict(held)}"
    assert held.total() - held["and the new bot moved on"] >= 20, held


# The bugs the state machine found, one named regression test each. Before fencing, a
# grant or revocation thread whose lease another bot had taken over went on with its
# provider calls, and `_record_target` wrote a target's row whatever became of the
# request meanwhile; bot/service.py now checks the request's version before each call
# and each write.


def _held_and_taken_over(
    make_bot: Callable[..., Bot], gate_action: str, trigger: Callable[[Bot, str], None], ask: str
) -> tuple[Bot, Bot, GatedProvider, Gate, str]:
    """ALICE's ``ask`` (approved by BOB where it needs approval); ``trigger`` starts the
    call that is held, after its change landed; the bot crashes there and a new one takes
    the request over once the lease has run out. Returns old bot, new bot, the cloud, the
    gate (still holding) and the request id."""
    provider = GatedProvider()
    old = make_bot(providers={"fake": provider})
    said = answer(old, ALICE, f"request {ask} incident 7")
    request = said.split()[0].rstrip(":")
    gate = provider.arm(gate_action, skip=0, applied=True)
    trigger(old, request)
    assert gate.entered.wait(_HOLD), "the provider call was never made"
    abandon(old)
    new = make_bot(providers={"fake": provider})
    new.clock.advance(new.service.lease + timedelta(seconds=1))
    recover(new, lambda: [request])
    return old, new, provider, gate, request


def _return_the_held_call(old: Bot, gate: Gate) -> None:
    gate.release.set()
    assert old.runtime.work.wait_idle(_HOLD)
    stop(old)


def _approve(bot: Bot, request: str) -> None:
    bot.sim.block_action(BOB, "approve", request)


def _end(bot: Bot, request: str) -> None:
    bot.sim.block_action(ALICE, "end_access", request)


def test_an_abandoned_grant_grants_nothing_more_once_taken_over(
    make_bot: Callable[..., Bot],
) -> None:
    # prod-support in prod grants prod-db, then prod-logs; the old bot is held in the
    # grant of prod-db. The new bot grants both, and ALICE ends her access.
    old, new, provider, gate, request = _held_and_taken_over(
        make_bot, "grant", _approve, "prod-support prod 1h"
    )
    assert new.service.get(request).status == "active"
    _end(new, request)
    new.settle()
    assert new.service.get(request).status == "revoked"
    assert provider.holdings == set()

    _return_the_held_call(old, gate)

    # Before fencing, the abandoned thread went on to prod-logs, granting it a second
    # time after the request had been revoked: the access was left standing, and the
    # target row said "granted" on a revoked request.
    assert provider.count("grant")[("alice@example.com", "prod-logs")] == 1
    assert provider.holdings == set(), "access left standing after revocation"
    assert [t.status for t in new.service.targets_of(request)] == ["revoked", "revoked"]


def test_an_abandoned_grant_does_not_overwrite_what_the_new_bot_recorded(
    make_bot: Callable[..., Bot],
) -> None:
    # db-admin in dev is approved by rule and grants one target: no second call to make.
    old, new, provider, gate, request = _held_and_taken_over(
        make_bot, "grant", lambda bot, request: None, "db-admin dev 1h"
    )
    _end(new, request)
    new.settle()
    assert [t.status for t in new.service.targets_of(request)] == ["revoked"]

    _return_the_held_call(old, gate)

    # Before fencing (`_record_target` was an UPDATE by target id alone), the abandoned
    # thread marked the target "granted" on a request that had been revoked.
    assert new.service.get(request).status == "revoked"
    assert [t.status for t in new.service.targets_of(request)] == ["revoked"]
    assert provider.holdings == set()


def test_an_abandoned_revocation_takes_nothing_from_a_later_grant(
    make_bot: Callable[..., Bot],
) -> None:
    def approve_then_end(bot: Bot, request: str) -> None:
        _approve(bot, request)
        bot.settle()
        _end(bot, request)

    # Ending prod-support in prod revokes prod-db, then prod-logs; the old bot is held in
    # the revocation of prod-db. The new bot finishes it; ALICE is granted the same again.
    old, new, provider, gate, first = _held_and_taken_over(
        make_bot, "revoke", approve_then_end, "prod-support prod 1h"
    )
    assert new.service.get(first).status == "revoked"
    again = answer(new, ALICE, "request prod-support prod 1h still on it").split()[0]
    _approve(new, again)
    new.settle()
    assert new.service.get(again).status == "active"
    both = {("alice@example.com", "prod-db"), ("alice@example.com", "prod-logs")}
    assert provider.holdings == both

    _return_the_held_call(old, gate)

    # Before fencing (the list of calls was made before the first call and never checked
    # again), the abandoned thread went on to revoke prod-logs, taking it from the later,
    # active grant.
    assert provider.holdings == both, "an active grant lost its access"
