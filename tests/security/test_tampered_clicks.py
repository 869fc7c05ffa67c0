"""Tampered clicks: signed button clicks and modal submissions with altered values (other
requests' ids, unknown ids, ids with smuggled roles or durations), from non-approvers,
from the requester, after the request was decided. Nothing is ever granted beyond what
the stored request and a valid approval allow, and decided requests never change.

Each example submits two fresh requests and clicks four times, drawn toward what makes
something happen: the ids of those requests (sometimes of an older, decided one), their
real approvers, and now and then an altered id, the requester or someone else. After each
click the test reads back what happened to the request clicked, so the run counts how
often a request was denied, granted, ended, refused to its own requester and clicked
after it was decided, and fails if any of those happened too rarely to prove anything.
Each example ends by letting its grants expire.

CI runs 250 fixed examples per database; ``pytest --full`` explores 2,500 from a printed
seed (``pytest --full --hypothesis-seed=N tests/security/test_tampered_clicks.py``
replays one run): see tests/explore.py.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from bot.policy import REFUSAL_TEXT, Refusal
from bot.storage.models import TERMINAL, AccessRequest, RequestTarget, Vote
from tests.conftest import ALICE, BOB, CAROL, MALLORY, SEC1, SEC2, Bot
from tests.explore import Exploration
from tests.fakes.slack_client import text_value

UNKNOWN = "UNOBODY1"  # no such Slack user
PEOPLE = [ALICE, BOB, CAROL, SEC1, SEC2, MALLORY]
APPROVERS = {  # who may approve what, from the test approvers.yaml
    ("prod-support", "prod"): {BOB, CAROL},
    ("db-admin", "prod"): {BOB, CAROL, SEC1, SEC2},
    ("prod-support", "staging"): {SEC1, SEC2},
}
ASKS = [
    (ALICE, "prod-support prod 1h INC-1"),  # one approval of BOB or CAROL
    (ALICE, "db-admin prod 1h fix"),  # two approvals of four
    (BOB, "prod-support prod 1h INC-2"),  # BOB may not approve his own: only CAROL
    (CAROL, "prod-support staging 2h INC-3"),  # one of security
]
# Longer than pending_ttl and than any grant asked for: every example's requests end.
AFTER_EVERYTHING = timedelta(hours=3)
CI_EXAMPLES = 250
# States a request passes through on its way to the next one.
MOVING = {"approved", "granting", "revoking"}
OUTCOMES = ["denied", "granted", "ended", "refused self-approval", "decided then clicked"]


def _weighted(weights: dict[Any, int]) -> st.SearchStrategy[Any]:
    return st.sampled_from([choice for choice, weight in weights.items() for _ in range(weight)])


@dataclass(frozen=True)
class Step:
    """One click, drawn before the requests it names exist."""

    action: str
    target: str  # "fitting", "first" or "second" of this example's requests, or "older"
    older: int  # which older one (modulo how many there are)
    who: str  # "approver", "requester", "outsider" or "unknown"
    pick: int  # which approver or outsider (modulo how many there are)
    value: str  # how the value sent is made from the target's id
    random_id: str
    noise: str


def _steps(actions: list[str], who: list[str], values: list[str]) -> st.SearchStrategy[Step]:
    return st.builds(
        Step,
        action=st.sampled_from(actions),
        target=_weighted({"fitting": 5, "first": 2, "second": 2, "older": 1}),
        older=st.integers(min_value=0, max_value=10**6),
        who=st.sampled_from(who),
        pick=st.integers(min_value=0, max_value=3),
        value=st.sampled_from(values),
        random_id=st.text("ABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=8, max_size=8),
        noise=st.text(max_size=300),
    )


ACTIONS = ["approve", "deny", "deny_submit", "end_access"]
TAMPERED = ["unknown", "random", "smuggled", "json", "spaced", "nul", "text"]
# Each kind of click drawn as often as it takes for every outcome to happen many times.
STEPS = _weighted(
    {
        _steps(["approve", "approve", "deny_submit"], ["approver"], ["exact"]): 3,
        _steps(["end_access"], ["approver", "requester"], ["exact"]): 2,
        _steps(["approve", "deny", "deny_submit"], ["requester"], ["exact"]): 1,
        _steps(ACTIONS, ["outsider", "unknown"], ["exact"]): 1,
        _steps(["deny"], ["approver"], ["exact"]): 1,  # opens the reason modal only
        _steps(ACTIONS, ["approver", "requester", "outsider"], TAMPERED): 2,
    }
).flatmap(lambda steps: steps)
EXAMPLES = st.tuples(
    st.lists(
        st.integers(min_value=0, max_value=len(ASKS) - 1), min_size=2, max_size=2, unique=True
    ),
    st.lists(STEPS, min_size=4, max_size=4),
)


def _sent_value(step: Step, request_id: str) -> str:
    return {
        "exact": request_id,
        "unknown": "R-ZZZZZZZZ",
        "random": "R-" + step.random_id,
        "smuggled": f"{request_id}|role=db-admin|duration=24h",
        "json": json.dumps({"id": request_id, "role": "db-admin", "duration": "24h"}),
        "spaced": f" {request_id.lower()} ",
        "nul": request_id + "\x00",
        "text": step.noise,
    }[step.value]


def _target(bot: Bot, step: Step, mine: list[str], older: list[str]) -> str:
    """The request a click names: "fitting" is one of this example's requests in the
    state the click acts on (active for end_access, pending otherwise), if there is one."""
    if step.target == "older" and older:
        return older[step.older % len(older)]
    if step.target == "second":
        return mine[1]
    if step.target == "fitting":
        wanted = "active" if step.action == "end_access" else "pending"
        stored = _read(bot, mine)
        fitting = [r for r in mine if stored[r].request.status == wanted]
        return fitting[0] if fitting else mine[0]
    return mine[0]


def _clicker(step: Step, asked: dict[str, Any]) -> str:
    requester = asked["requester"][0]
    allowed = APPROVERS[(asked["role"], asked["environment"])]
    approvers = sorted(allowed - {requester})
    outsiders = sorted(set(PEOPLE) - allowed - {requester})
    return {
        "approver": approvers[step.pick % len(approvers)],
        "requester": requester,
        "outsider": outsiders[step.pick % len(outsiders)],
        "unknown": UNKNOWN,
    }[step.who]


@dataclass
class Stored:
    """A request as the database holds it, with its targets and votes."""

    request: AccessRequest
    targets: list[RequestTarget]
    votes: list[Vote]

    @property
    def state(self) -> tuple[str, frozenset[str]]:
        """Its status and who has voted on it."""
        return self.request.status, frozenset(v.voter_id for v in self.votes)


def _read(bot: Bot, request_ids: list[str]) -> dict[str, Stored]:
    """The requests, read straight from the database in one go (the service's readers
    take a transaction each, and these reads run after every click)."""
    with Session(bot.runtime.engine) as session:
        found = {
            r.id: Stored(r, [], [])
            for r in session.scalars(
                select(AccessRequest).where(col(AccessRequest.id).in_(request_ids))
            )
        }
        for target in session.scalars(
            select(RequestTarget)
            .where(col(RequestTarget.request_id).in_(request_ids))
            .order_by(col(RequestTarget.position))
        ):
            found[target.request_id].targets.append(target)
        for vote in session.scalars(
            select(Vote).where(col(Vote.request_id).in_(request_ids)).order_by(col(Vote.id))
        ):
            found[vote.request_id].votes.append(vote)
    assert set(found) == set(request_ids)
    return found


def _as_submitted(stored: Stored) -> dict[str, Any]:
    """What a request asks for and who decides it, as stored: no click may change it."""
    request = stored.request
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
            (t.position, t.provider, t.spec, t.target_key, t.description) for t in stored.targets
        ],
    }


def _submit_all(bot: Bot, asks: list[int]) -> list[str]:
    """Send each ask as ``/jit request ...`` at once; return the new requests' ids, in the
    order asked (read from the database: the fake clock stands still within an example,
    so they are the requests made now)."""
    for ask in asks:
        requester, text = ASKS[ask]
        assert bot.sim.command(requester, f"request {text}").status == 200
    _quiet(bot)
    with Session(bot.runtime.engine) as session:
        made = list(
            session.scalars(
                select(AccessRequest).where(col(AccessRequest.created_at) >= bot.clock.now())
            )
        )
    ids = []
    for ask in asks:
        requester, text = ASKS[ask]
        role, environment = text.split()[:2]
        [request_id] = [
            r.id
            for r in made
            if (r.requester_id, r.role, r.environment) == (requester, role, environment)
        ]
        ids.append(request_id)
    return ids


def _quiet(bot: Bot, request_ids: list[str] | None = None) -> None:
    """Wait until the clicks' work is done: listeners, grants, revocations, and none of
    ``request_ids`` on its way between two states (the sweeper, on a thread of its own,
    may have taken a grant or revocation over). Slack's posts may still be on their way;
    nothing here reads them."""
    runtime = bot.runtime

    def idle() -> bool:
        for executor in (runtime.listeners, runtime.work, runtime.revoker):
            assert executor.wait_idle(10.0), "the bot did not become idle"
        return runtime.listeners.wait_idle(0) and runtime.work.wait_idle(0)

    def settled() -> bool:
        stored = _read(bot, request_ids or [])
        return idle() and not any(s.request.status in MOVING for s in stored.values())

    bot.slack.wait_for(settled)


def _answer(bot: Bot, url_name: str | None) -> str | None:
    """What the bot answered a click through its response_url, if anything."""
    found = [r for r in bot.slack.responses if url_name and r["_url_name"] == url_name]
    return str(found[-1].get("text")) if found else None


def test_tampered_clicks_never_grant_beyond_what_valid_approvals_allow(
    bot: Bot, exploration: Exploration
) -> None:
    submitted: dict[str, dict[str, Any]] = {}  # every request so far, as it was asked
    decided: dict[str, str] = {}  # every request that reached a terminal state, and which
    outcomes = Counter[str]()
    clicks = 0

    @exploration.settings(CI_EXAMPLES)
    @given(EXAMPLES)
    def attack(example: tuple[list[int], list[Step]]) -> None:
        nonlocal clicks
        asks, steps = example
        older = [r for r in submitted if r in decided]
        mine = _submit_all(bot, asks)
        # Right after they were created, before any click.
        for request_id, stored in _read(bot, mine).items():
            submitted[request_id] = _as_submitted(stored)
        try:
            for step in steps:
                target = _target(bot, step, mine, older)
                watched = [*mine, target] if target not in mine else mine
                asked = submitted[target]
                user = _clicker(step, asked)
                value = _sent_value(step, target)
                before = {r: stored.state for r, stored in _read(bot, watched).items()}
                if step.action == "deny_submit":
                    view = {"id": "VFORGED", "callback_id": "jit_deny", "private_metadata": value}
                    reply = bot.sim.submit_view(user, view, {"reason": {"reason": text_value("x")}})
                else:
                    reply = bot.sim.block_action(user, step.action, value)
                assert reply.status == 200
                clicks += 1
                _quiet(bot, watched)
                after = {r: stored.state for r, stored in _read(bot, watched).items()}
                named = target if value == target else None
                # A click changes nothing but the request it names, if it names one.
                assert {r: s for r, s in after.items() if r != named} == {
                    r: s for r, s in before.items() if r != named
                }, (step, user, value)
                if named is not None:
                    outcome = _outcome(step, user, asked, before[named], after[named])
                    if outcome:
                        outcomes[outcome] += 1
                    if outcome == "refused self-approval" and step.action != "deny_submit":
                        text = f":warning: {REFUSAL_TEXT[Refusal.SELF_APPROVAL]}"
                        assert _answer(bot, reply.response_url_name) == text
                _check_invariants(bot, {r: submitted[r] for r in watched}, decided)
        finally:
            # The example ends, passed or not: its grants run out and what is still pending
            # expires, so the next example starts from nothing held.
            bot.clock.advance(AFTER_EVERYTHING)
            bot.service.sweep()
            _quiet(bot, mine)
        _check_invariants(bot, {r: submitted[r] for r in mine}, decided)
        for stored in _read(bot, mine).values():
            assert stored.request.status in TERMINAL
            if stored.request.status == "expired":
                outcomes["expired unanswered"] += 1
        assert bot.provider.holdings == set(), "access left after every request ended"

    attack()
    # Slack's posts were left to the outbox worker; a long run leaves it more batches
    # than settle() waits for.
    while bot.runtime.outbox.deliver_due():
        pass
    bot.settle()
    examples = exploration.examples(CI_EXAMPLES)
    print(f"tampered clicks: {clicks} clicks, {len(submitted)} requests, {dict(outcomes)}")
    assert clicks >= 4 * examples
    # Each outcome happened often enough for its invariants to have been tested.
    for outcome in OUTCOMES:
        assert outcomes[outcome] >= examples // 20, (outcome, outcomes)
    # Rarer, and how rare depends on which state each click finds its request in (the
    # grant runs on the bot's threads): 4 to 12 in 250 examples so far.
    assert outcomes["approved after a deny"] >= 1, outcomes
    assert outcomes["one of two approvals"] >= examples // 25, outcomes
    # No click made up a request, or got a grant for one it named but that does not exist.
    assert {c.request_id for c in bot.provider.calls} <= set(submitted)
    with bot.runtime.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(AccessRequest)) == len(submitted)


def _outcome(
    step: Step,
    user: str,
    asked: dict[str, Any],
    before: tuple[str, frozenset[str]],
    after: tuple[str, frozenset[str]],
) -> str | None:
    """What a click on a real request did, checked against what it may do."""
    (was, votes_before), (now, votes_after) = before, after
    requester = asked["requester"][0]
    approvers = APPROVERS[(asked["role"], asked["environment"])] - {requester}
    deciding = step.action != "end_access"
    if (was != "pending" and deciding) or was in TERMINAL:
        assert (now, votes_after) == (was, votes_before), "a decided request changed"
        if was == "denied" and step.action == "approve" and user in approvers:
            return "approved after a deny"  # also a click after the decision
        return "decided then clicked"
    if was == "active":  # an end_access click
        assert now == ("revoked" if user in approvers | {requester} else "active")
        return "ended" if now == "revoked" else None
    # Pending.
    if not deciding:
        assert (now, votes_after) == (was, votes_before), "ended before it was granted"
        return None
    if user == requester:
        assert (now, votes_after) == (was, votes_before), "the requester decided"
        return "refused self-approval"
    if user not in approvers:
        assert (now, votes_after) == (was, votes_before), "someone else decided"
        return "refused non-approver"
    if user in votes_before:
        assert (now, votes_after) == (was, votes_before), "one approver voted twice"
        return "refused second vote"
    if step.action == "deny":  # only opens the reason modal
        assert (now, votes_after) == (was, votes_before)
        return None
    if step.action == "deny_submit":
        assert now == "denied"
        return "denied"
    if now == "active":
        return "granted"
    assert now == "pending"
    assert votes_after == votes_before | {user}
    return "one of two approvals"


def _check_invariants(
    bot: Bot, submitted: dict[str, dict[str, Any]], decided: dict[str, str]
) -> None:
    granted_to: set[tuple[str, str]] = set()
    calls = bot.provider.calls
    for request_id, stored in _read(bot, list(submitted)).items():
        asked, request = submitted[request_id], stored.request
        assert _as_submitted(stored) == asked, "a click changed what was asked for"
        if request_id in decided:
            assert request.status == decided[request_id], "a decided request changed"
        if request.status in TERMINAL:
            decided[request_id] = request.status
        votes = stored.votes
        allowed = APPROVERS[(asked["role"], asked["environment"])] - {asked["requester"][0]}
        assert {v.voter_id for v in votes} <= allowed, "a vote from someone not allowed"
        approvals = {v.voter_id for v in votes if v.decision == "approve"} & allowed
        grants = [c for c in calls if c.request_id == request_id]
        if any(c.action == "grant" for c in grants):
            assert len(approvals) >= asked["rule"][1] >= 1, "granted without valid approvals"
            assert "deny" not in {v.decision for v in votes}, "granted although denied"
            assert request.status not in ("pending", "denied"), "granted yet undecided"
            resources = [c.resource for c in grants if c.action == "grant"]
            assert len(resources) == len(set(resources)), "granted twice"
            # Exactly what was asked for, to whom it was asked for.
            assert set(resources) == {t[2]["resource"] for t in asked["targets"]}
            assert {c.email for c in grants} == {asked["requester"][1]}
        if request.granted_at is not None:
            # A grant lasts what was asked for, whatever a click said.
            assert request.expires_at == request.granted_at + timedelta(
                seconds=asked["duration_seconds"]
            ), "a grant outlasts what was asked for"
        if request.status == "active":
            granted_to |= {(asked["requester"][1], t[2]["resource"]) for t in asked["targets"]}
    # Earlier examples' requests all ended, so whatever is held is explained by these.
    assert bot.provider.holdings <= granted_to, "access held that no active request explains"
