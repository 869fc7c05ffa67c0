"""A rule-based state machine drives the real app (signed Slack requests over HTTP, the
database, the fake provider) through requests, approvals, denials, cancellations, early
ends, clock jumps and crash-and-restart, and checks after every step that:

- a request in a terminal state never changes again;
- nothing is granted without the required distinct approvals (or an auto-approve rule);
- each target of a request is granted at most once;
- once work has settled, the provider holds exactly what the database says is active.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta

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

from bot.storage.models import TERMINAL
from tests.conftest import ALICE, BOB, CAROL, MALLORY, SEC1, SEC2, Bot, stop
from tests.fakes.slack_client import text_value

PEOPLE = st.sampled_from([ALICE, BOB, CAROL, SEC1, SEC2, MALLORY])
ASKS = st.sampled_from(
    ["prod-support prod 1h", "prod-support staging 2h", "db-admin prod 30m", "db-admin dev 1h"]
)


def test_the_lifecycle_keeps_its_invariants_under_any_sequence_of_events(
    make_bot: Callable[..., Bot],
) -> None:
    current = {"bot": make_bot()}

    class Lifecycle(RuleBasedStateMachine):
        requests = Bundle("requests")

        def __init__(self) -> None:
            super().__init__()
            self.seen_terminal: dict[str, str] = {}

        @property
        def bot(self) -> Bot:
            return current["bot"]

        @rule(target=requests, who=PEOPLE, ask=ASKS)
        def request(self, who: str, ask: str):  # type: ignore[no-untyped-def]
            answer = self.bot.command(who, f"request {ask} state machine")["text"]
            self.bot.settle()
            ids = [w.rstrip(":.") for w in answer.split() if w.startswith("R-")]
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
            self.bot.command(who, f"cancel {request}")
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
            current["bot"] = make_bot()

        @invariant()
        def terminal_states_never_change(self) -> None:
            for request in self._requests():
                before = self.seen_terminal.get(request.id)
                assert before is None or request.status == before, (request.id, before)
                if request.status in TERMINAL:
                    self.seen_terminal[request.id] = request.status

        @invariant()
        def nothing_granted_without_the_required_approvals(self) -> None:
            granted = {c.request_id for c in self.bot.provider.calls if c.action == "grant"}
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
                (c.request_id, c.resource) for c in self.bot.provider.calls if c.action == "grant"
            )
            assert not grants or max(grants.values()) == 1, grants.most_common(2)

        @invariant()
        def the_provider_holds_exactly_what_is_active(self) -> None:
            active = {
                (r.requester_email, t.spec["resource"])
                for r in self._requests()
                if r.status == "active"
                for t in self.bot.service.targets_of(r.id)
            }
            assert self.bot.provider.holdings == active

        def _requests(self):  # type: ignore[no-untyped-def]
            ids = {c.request_id for c in self.bot.provider.calls}
            ids |= {e.request_id for e in self.bot.service.audit_events() if e.request_id}
            return [self.bot.service.get(i) for i in sorted(ids)]

    run_state_machine_as_test(
        Lifecycle,
        settings=settings(
            max_examples=15,
            stateful_step_count=25,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
