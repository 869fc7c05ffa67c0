"""Faults: a provider that throttles, fails and conflicts on 30% of its calls, and a
Slack that answers storms of 429s and 5xxs. Everything converges; nothing is duplicated,
left standing or lost."""

from __future__ import annotations

import json
import random
import re
import threading
from collections import Counter
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from bot.slack import audit_posts
from bot.slack.mrkdwn import inline
from bot.storage.models import AccessRequest, OutboxMessage, SlackMessage
from providers.base import GrantContext, GrantOutcome, Principal, ProviderError, TargetSpec
from providers.fake import FakeProvider, FakeTarget
from tests.conftest import ALICE, BOB, CAROL, Bot, audit_lines
from tests.e2e.helpers import requests_of
from tests.fakes.slack_api import SlackCall
from tests.kit.configs import AUTO_APPROVE_ALL

ROLES = """
roles:
  ops:
    max_duration: 2h
    environments:
      dev:
        - provider: fake
          resource: logs
        - provider: fake
          resource: db
"""
APPROVERS = AUTO_APPROVE_ALL
TEMPORARY = ["ThrottlingException: rate exceeded", "HTTP 503 from upstream", "ConflictException"]


class FlakyProvider(FakeProvider):
    """Fails 30% of calls with a temporary error (half of them after the change landed,
    as when the answer is lost), and a few with a permanent one."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.injected = Counter[str]()
        self.operations = 0
        #: (request id, action, resource) → calls that returned success: a grant or
        #: revocation made twice shows up here as 2.
        self.succeeded = Counter[tuple[str, str, str]]()
        self.refused_revokes: set[str] = set()  # requests a revocation was refused for
        self._dice = threading.Lock()

    def _roll(self) -> float:
        with self._dice:
            self.operations += 1
            return self.rng.random()

    def grant(
        self, principal: Principal, target: TargetSpec, context: GrantContext
    ) -> GrantOutcome:
        outcome = self._flaky(
            "grant", lambda: super(FlakyProvider, self).grant(principal, target, context)
        )
        self._count_success("grant", target, context)
        return outcome

    def revoke(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        try:
            self._flaky(
                "revoke", lambda: super(FlakyProvider, self).revoke(principal, target, context)
            )
        except ProviderError as exc:
            if not exc.retryable:
                with self._dice:
                    self.refused_revokes.add(context.request_id)
            raise
        self._count_success("revoke", target, context)

    def _count_success(self, action: str, target: TargetSpec, context: GrantContext) -> None:
        assert isinstance(target, FakeTarget)
        with self._dice:
            self.succeeded[(context.request_id, action, target.resource)] += 1

    def _flaky(self, action: str, call):  # type: ignore[no-untyped-def]
        dice = self._roll()
        if dice < 0.15:
            self.injected[f"{action}: temporary, not applied"] += 1
            raise ProviderError(self.rng.choice(TEMPORARY), retryable=True)
        if dice < 0.30:
            call()
            self.injected[f"{action}: temporary, applied but answer lost"] += 1
            raise ProviderError(self.rng.choice(TEMPORARY), retryable=True)
        if dice < 0.31:
            self.injected[f"{action}: permanent"] += 1
            raise ProviderError("AccessDenied: not allowed", retryable=False)
        return call()


def test_thirty_percent_provider_faults_over_500_operations_all_converge(make_bot) -> None:  # type: ignore[no-untyped-def]
    provider = FlakyProvider(seed=42)
    bot: Bot = make_bot(roles=ROLES, approvers=APPROVERS, providers={"fake": provider})
    users = [f"UFLAKY{i:03d}" for i in range(130)]
    for user in users:
        bot.slack.add_user(user, f"{user.lower()}@example.com")
        assert bot.sim.command(user, "request ops dev 1h work").status == 200
    bot.settle()
    bot.clock.advance(timedelta(hours=1))
    for _ in range(10):  # the sweeper retries whatever did not revoke at first
        bot.service.sweep()
        bot.settle()
        bot.clock.advance(timedelta(seconds=30))

    requests = [r for u in users for r in requests_of(bot, u)]
    assert len(requests) == len(users)
    statuses = Counter(r.status for r in requests)
    assert set(statuses) <= {"revoked", "failed"}, statuses
    assert provider.holdings == set(), "access left standing"
    assert provider.operations >= 500
    assert sum(provider.injected.values()) >= 0.25 * provider.operations
    for request in requests:
        applied = Counter(
            c.resource for c in provider.calls if c.request_id == request.id and c.action == "grant"
        )
        if request.status == "failed":
            assert request.error
            told = bot.slack.messages_in(request.requester_id)[-1]
            # The cloud's words reach Slack defused (bot/slack/mrkdwn.py), still readable.
            shown = inline(request.error.split(":")[0], 3000)
            assert "failed" in told["text"] and shown in str(told["blocks"])
            assert any(f"`{request.id}` *grant_failed*" in p for p in _audit_posts(bot)), (
                "a failed grant not reported to the audit channel"
            )
        else:
            assert set(applied) == {"logs", "db"}
            # Granted once and revoked once per target: retries after a lost answer land
            # on what is already there, and nothing is granted or revoked a second time.
            assert {
                (action, resource): provider.succeeded[(request.id, action, resource)]
                for action in ("grant", "revoke")
                for resource in ("logs", "db")
            } == {(a, r): 1 for a in ("grant", "revoke") for r in ("logs", "db")}
    assert statuses["revoked"] > statuses["failed"]
    # A refused revocation is said out loud, to the requester and the audit channel, and
    # the sweeper keeps at it until the access is gone (asserted above).
    assert provider.refused_revokes, "no revocation was refused: the test shows nothing"
    for request_id in provider.refused_revokes:
        request = bot.service.get(request_id)
        assert "revoke_failed" in [e.action for e in bot.service.audit_events(request_id)]
        assert any(f"`{request_id}` *revoke_failed*" in p for p in _audit_posts(bot))
        assert any(
            "AccessDenied" in str(m) and request_id in str(m)
            for m in bot.slack.messages_in(request.requester_id)
        ), "the requester was not told why the revocation failed"


def _audit_posts(bot: Bot) -> list[str]:
    return audit_lines(bot.slack)


def test_slack_storms_of_429_and_5xx_deliver_everything_once_in_order(bot: Bot) -> None:
    rng = random.Random(7)
    request_ids = []
    for round_ in range(12):
        method = rng.choice(["chat.postMessage", "chat.update", "*"])
        if rng.random() < 0.5:
            bot.slack.fail_next(method, times=rng.randint(3, 12), retry_after=rng.randint(1, 30))
        else:
            bot.slack.fail_next(
                method, times=rng.randint(3, 12), status=rng.choice([500, 502, 503])
            )
        who = rng.choice([ALICE, CAROL])
        answer = bot.command(who, f"request db-admin dev 30m storm {round_}")
        request_ids.append(answer["text"].split(":")[0])
        if round_ % 3 == 0:
            prod = bot.command(ALICE, f"request prod-support prod 1h storm {round_}")
            request_ids.append(prod["text"].split()[0])
            bot.sim.block_action(BOB, "approve", request_ids[-1])
        bot.settle()
        bot.clock.advance(timedelta(seconds=rng.randint(1, 20)))
    bot.slack.clear_faults()  # the storm is over
    for _ in range(8):  # recovery: time passes, backoffs run out, the worker drains
        bot.clock.advance(timedelta(minutes=1))
        # The sweeper's round grants what waited for Slack to confirm who the requester is.
        bot.service.sweep()
        bot.runtime.outbox.wake()
        bot.settle()
    assert bot.runtime.outbox.pending() == 0
    assert any(c.status in (429, 500, 502, 503) for c in bot.slack.calls), "no storm happened"

    events = bot.service.audit_events()
    posted = [int(m.group(1)) for text in _audit_posts(bot) if (m := re.search(r"#(\d+) `", text))]
    assert sorted(posted) == [e.id for e in events], "an audit post lost or sent twice"
    by_request: dict[str | None, list[int]] = {}
    for event_id in posted:
        request_id = next(e.request_id for e in events if e.id == event_id)
        by_request.setdefault(request_id, []).append(event_id)
    for request_id, ids in by_request.items():
        assert ids == sorted(ids), f"audit posts of {request_id} out of order"
    posts = Counter(
        (c.params["channel"], c.params["text"], str(c.params.get("blocks")))
        for c in bot.slack.calls_to("chat.postMessage")
    )
    assert max(posts.values()) == 1, "a DM or post sent twice"

    # Every queued Slack call ended sent: none given up on (dead) for a transient error.
    outbox = _outbox(bot)
    assert [(m.id, m.method, m.status, m.last_error) for m in outbox if m.status != "sent"] == []
    assert any(m.attempts > 1 for m in outbox), "no message had to be retried"
    storm = {(c.method, c.status) for c in bot.slack.calls if not c.ok}
    assert {"chat.postMessage", "chat.update"} <= {method for method, _ in storm}, storm
    assert 429 in {s for _, s in storm} and {s for _, s in storm} & {500, 502, 503}, storm

    # What Slack accepted is exactly what the outbox queued: each row once, no call that
    # no row asked for (a post or update repeated after a 429 or 5xx shows up here).
    where = _posted_where(bot)
    calls = [m for m in outbox if m.method != audit_posts.METHOD]
    queued = {_queued_call(m, where): m for m in calls}
    assert len(queued) == len(calls), "the same post or update queued twice"
    accepted = [c for c in bot.slack.calls if c.ok and c.method in _CHAT]
    delivered = [_delivered_call(c) for c in accepted if not _lines(c)]
    assert Counter(delivered) == Counter(list(queued)), "a Slack call lost, repeated or invented"
    # The audit channel's lines, several to a post: each queued line posted once, in order.
    lines = [line for c in accepted for line in _lines(c)]
    queued_lines = [m.payload["text"] for m in outbox if m.method == audit_posts.METHOD]
    assert lines == queued_lines, "an audit line lost, repeated, invented or out of order"

    # One request's messages arrive in the order they were queued, across every channel.
    order: dict[str, list[int]] = {}
    for call in delivered:
        message = queued[call]
        assert message.id is not None
        order.setdefault(message.ordering_key, []).append(message.id)
    for key, ids in order.items():
        assert ids == sorted(ids), f"messages of {key} delivered out of order: {ids}"

    # Each person got each DM once: every approver one ask per request, every requester
    # one "submitted" and one "granted" (all these requests are active), in that order.
    # (A request whose directory lookup met the storm was refused with a warning and
    # stored nothing, so the requests are read from the database.)
    with Session(bot.runtime.engine) as session:
        requests = list(session.scalars(select(AccessRequest)))
    assert len(requests) >= 6 and any(r.approvers for r in requests), "too few requests"
    assert {r.status for r in requests} == {"active"}
    for request in requests:
        for approver in request.approvers:
            dms = bot.slack.messages_in(approver)
            asks = [m for m in dms if m["text"].startswith(f"{request.id}:")]
            assert len(asks) == 1, (request.id, approver, len(asks))
        told = [
            m["text"]
            for m in bot.slack.messages_in(request.requester_id)
            if f"{request.id} " in m["text"] or f"({request.id})" in m["text"]
        ]
        assert len(told) == 2 and "was sent to" in told[0], (request.id, told)
        assert told[1].startswith("Access granted"), (request.id, told)
    # The approval asks were updated in place (approved, then granted), each content once.
    updated = [c for c in delivered if c[0] == "chat.update"]
    assert updated and len(set(updated)) == len(updated), "a chat.update repeated"


_CHAT = ("chat.postMessage", "chat.update")
# A Slack call as (method, channel, ts or "", text, blocks as canonical JSON).
Call = tuple[str, str, str, str, str]


def _outbox(bot: Bot) -> list[OutboxMessage]:
    with Session(bot.runtime.engine) as session:
        return list(session.scalars(select(OutboxMessage).order_by(col(OutboxMessage.id))))


def _posted_where(bot: Bot) -> dict[str, tuple[str, str]]:
    """message ref → (channel, ts) of the post it names, as the bot recorded it."""
    with Session(bot.runtime.engine) as session:
        return {m.ref: (m.channel, m.ts) for m in session.scalars(select(SlackMessage))}


def _queued_call(message: OutboxMessage, where: dict[str, tuple[str, str]]) -> Call:
    payload = message.payload
    if message.method == "chat.update":
        assert message.message_ref is not None
        channel, ts = where[message.message_ref]
    else:
        channel, ts = payload["channel"], ""
    return (message.method, channel, ts, payload["text"], _canonical(payload.get("blocks")))


def _delivered_call(call: SlackCall) -> Call:
    ts = call.params["ts"] if call.method == "chat.update" else ""
    return (
        call.method,
        call.params["channel"],
        ts,
        call.params["text"],
        _canonical(call.params.get("blocks")),
    )


def _lines(call: SlackCall) -> list[str]:
    """The audit lines a post carries, each in its own block; none for any other call."""
    blocks = call.params.get("blocks") or []
    return [block["text"]["text"] for block in blocks if audit_posts.carries_a_line(block)]


def _canonical(value: object) -> str:
    return json.dumps(value, sort_keys=True)
