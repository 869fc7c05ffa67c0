"""Tampered clicks: signed button clicks and modal submissions with altered values (other
requests' ids, unknown ids, ids with smuggled fields), from non-approvers, from the
requester, after the request was decided. Nothing is ever granted beyond what the stored
request and a valid approval allow, and decided requests never change."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.storage.models import TERMINAL, AccessRequest
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


def _as_submitted(bot: Bot, request: AccessRequest) -> dict[str, Any]:
    """What a request asks for and who decides it, as stored: no click may change it."""
    return {
        "requester": (request.requester_id, request.requester_email),
        "role": request.role,
        "environment": request.environment,
        "duration_seconds": request.duration_seconds,
        "reason": request.reason,
        "rule": (request.rule_index, request.required_approvals, request.auto_approve),
        "allow_self_approval": request.allow_self_approval,
        "approvers": list(request.approvers),
        "created_at": request.created_at,
        "targets": [
            (t.position, t.provider, t.spec, t.target_key, t.description)
            for t in bot.service.targets_of(request.id)
        ],
    }


def test_tampered_clicks_never_grant_beyond_what_valid_approvals_allow(bot: Bot) -> None:
    request_ids = []
    submitted: dict[str, dict[str, Any]] = {}
    for who, text in ASKS:
        request_id = submit(bot, who, text)
        request_ids.append(request_id)
        # Right after it was created, before any click.
        submitted[request_id] = _as_submitted(bot, bot.service.get(request_id))
    assert [(a["role"], a["environment"], a["duration_seconds"]) for a in submitted.values()] == [
        ("prod-support", "prod", 3600),
        ("db-admin", "prod", 3600),
        ("prod-support", "prod", 3600),
        ("prod-support", "staging", 7200),
    ]
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
        _check_invariants(bot, submitted, decided)

    attack()
    assert clicks >= 1000
    # Some requests were granted along the way, so the grant invariants were exercised.
    outcomes = {bot.service.get(r).status for r in request_ids}
    assert {c.request_id for c in bot.provider.calls if c.action == "grant"}, outcomes


def _check_invariants(
    bot: Bot, submitted: dict[str, dict[str, Any]], decided: dict[str, str]
) -> None:
    granted_to: set[tuple[str, str]] = set()
    for request_id, asked in submitted.items():
        request = bot.service.get(request_id)
        assert _as_submitted(bot, request) == asked, "a click changed what was asked for"
        if request_id in decided and decided[request_id] in TERMINAL:
            assert request.status == decided[request_id], "a decided request changed"
        decided[request_id] = request.status
        votes = bot.service.votes_of(request_id)
        allowed = APPROVERS[(asked["role"], asked["environment"])] - {asked["requester"][0]}
        assert {v.voter_id for v in votes} <= allowed, "a vote from someone not allowed"
        approvals = {v.voter_id for v in votes if v.decision == "approve"} & allowed
        grants = [c for c in bot.provider.calls if c.request_id == request_id]
        if any(c.action == "grant" for c in grants):
            assert len(approvals) >= asked["rule"][1] >= 1, "granted without valid approvals"
            assert "deny" not in {v.decision for v in votes}, "granted although denied"
            assert request.status not in ("pending", "denied"), "granted yet undecided"
            resources = [c.resource for c in grants if c.action == "grant"]
            assert len(resources) == len(set(resources)), "granted twice"
            # Exactly what was asked for, to whom it was asked for.
            assert set(resources) <= {t[2]["resource"] for t in asked["targets"]}
            assert {c.email for c in grants} == {asked["requester"][1]}
        if request.granted_at is not None:
            # A grant lasts what was asked for, whatever a click said.
            assert request.expires_at == request.granted_at + timedelta(
                seconds=asked["duration_seconds"]
            ), "a grant outlasts what was asked for"
        if request.status == "active":
            granted_to |= {(asked["requester"][1], t[2]["resource"]) for t in asked["targets"]}
    # No click made up a request, or got a grant for one it named but that does not exist.
    assert {c.request_id for c in bot.provider.calls} <= set(submitted)
    with bot.runtime.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(AccessRequest)) == len(submitted)
    assert bot.provider.holdings <= granted_to, "access held that no active request explains"
