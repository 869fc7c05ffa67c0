"""Tampered clicks: signed button clicks and modal submissions with altered values (other
requests' ids, unknown ids, ids with smuggled fields), from non-approvers, from the
requester, after the request was decided. Nothing is ever granted beyond what the stored
request and a valid approval allow, and decided requests never change."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.storage.models import TERMINAL
from tests.conftest import ALICE, BOB, CAROL, MALLORY, SEC1, SEC2, Bot
from tests.e2e.helpers import submit
from tests.fakes.slack_client import text_value

PEOPLE = [ALICE, BOB, CAROL, SEC1, SEC2, MALLORY, "UNOBODY1"]
APPROVERS = {  # who may approve what, from the test approvers.yaml
    ("prod-support", "prod"): {BOB, CAROL},
    ("db-admin", "prod"): {BOB, CAROL, SEC1, SEC2},
    ("prod-support", "staging"): {SEC1, SEC2},
}
ASKS = [
    (ALICE, "prod-support prod 1h INC-1"),
    (ALICE, "db-admin prod 1h fix"),
    (BOB, "prod-support prod 1h INC-2"),  # BOB may not approve his own
    (CAROL, "prod-support staging 2h INC-3"),
]


def _value(request_ids: list[str]) -> st.SearchStrategy[str]:
    known = st.sampled_from(request_ids)
    return st.one_of(
        known,
        st.just("R-ZZZZZZZZ"),
        st.text("ABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=8, max_size=8).map("R-".__add__),
        known.map(lambda r: f"{r}|role=db-admin|duration=24h"),
        known.map(lambda r: json.dumps({"id": r, "role": "db-admin", "duration": "24h"})),
        known.map(lambda r: f" {r.lower()} "),
        known.map(lambda r: r + "\x00"),
        st.text(max_size=300),
    )


def test_tampered_clicks_never_grant_beyond_what_valid_approvals_allow(bot: Bot) -> None:
    request_ids = [submit(bot, who, text) for who, text in ASKS]
    decided: dict[str, str] = {}
    clicks = 0

    @settings(
        max_examples=250,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(PEOPLE),
                st.sampled_from(["approve", "deny", "end_access", "deny_submit"]),
                _value(request_ids),
            ),
            min_size=4,
            max_size=4,
        )
    )
    def attack(steps: list[tuple[str, str, str]]) -> None:
        nonlocal clicks
        for user, action, value in steps:
            if action == "deny_submit":
                view = {"id": "VFORGED", "callback_id": "jit_deny", "private_metadata": value}
                reply = bot.sim.submit_view(user, view, {"reason": {"reason": text_value("x")}})
            else:
                reply = bot.sim.block_action(user, action, value)
            assert reply.status == 200
            clicks += 1
        bot.settle()
        _check_invariants(bot, request_ids, decided)

    attack()
    assert clicks >= 1000


def _check_invariants(bot: Bot, request_ids: list[str], decided: dict[str, str]) -> None:
    granted_to: set[tuple[str, str]] = set()
    for request_id in request_ids:
        request = bot.service.get(request_id)
        if request_id in decided and decided[request_id] in TERMINAL:
            assert request.status == decided[request_id], "a decided request changed"
        decided[request_id] = request.status
        votes = bot.service.votes_of(request_id)
        allowed = APPROVERS[(request.role, request.environment)] - {request.requester_id}
        assert {v.voter_id for v in votes} <= allowed, "a vote from someone not allowed"
        approvals = {v.voter_id for v in votes if v.decision == "approve"}
        grants = [c for c in bot.provider.calls if c.request_id == request_id]
        if grants:
            assert len(approvals) >= request.required_approvals, "granted without approvals"
            resources = [c.resource for c in grants if c.action == "grant"]
            assert len(resources) == len(set(resources)), "granted twice"
        if request.status == "active":
            granted_to |= {
                (request.requester_email, t.spec["resource"])
                for t in bot.service.targets_of(request_id)
            }
        assert request.duration_seconds <= 4 * 3600
    assert bot.provider.holdings <= granted_to, "access held that no active request explains"
