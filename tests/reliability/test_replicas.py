"""Two bot processes on one PostgreSQL database behind one address: every request is
handled once, every expiry revoked once, every Slack post sent once.

The clicks that decide a request are sent straight to the replicas, several at the same
instant, so both processes work on one request at once: the two approvers of a request
on different replicas, an approver's double click landing on both, a proxy re-delivering
one signed click to the other replica, and "end access" clicked on both replicas at the
moment the expiry job fires."""

from __future__ import annotations

import json
import os
import re
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from tests.conftest import BOB, BOT_TOKEN, CAROL, SIGNING_SECRET, audit_lines
from tests.fakes.balancer import Balancer
from tests.fakes.processes import BotProcess, Launcher, wait
from tests.fakes.slack_api import APP_ID, TEAM_DOMAIN, TEAM_ID, FakeSlack
from tests.fakes.slack_client import Reply, SlackSim
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.kit.configs import webhook

pytestmark = pytest.mark.skipif(
    not os.environ.get("JIT_TEST_DATABASE_URL"), reason="replicas share a PostgreSQL database"
)

SECRET = "replica-webhook-key"
# The environment of each request: dev is approved by rule, stage needs one approval
# and prod two.
PLAN = ["dev"] * 8 + ["stage"] * 4 + ["prod"] * 8
REQUIRED = {"dev": 0, "stage": 1, "prod": 2}
# One requester per request: grants of one person to one target overlap, and only the
# last to end revokes, which is right but not what this test counts.
REQUESTERS = [f"UREQ{i:02d}" for i in range(len(PLAN))]
# Dev requests whose requester clicks "end access" on both replicas at once, this long
# before the grant expires: at the very moment the expiry job of a 4 s grant fires (either
# may win), or on a grant of a minute as soon as it is active (the click must win; a
# margin of seconds would be lost to a loaded machine).
MINUTE = timedelta(minutes=1)
END_EARLY = {0: timedelta(0), 1: MINUTE, 2: timedelta(0), 3: MINUTE}
DURATION = {i: "1m" if END_EARLY.get(i) == MINUTE else "4s" for i in range(len(PLAN))}
AUDIT = "C0AUDIT"
ROLES = f"""
roles:
  ops:
    max_duration: 1m
    environments:
      dev:{webhook("ops-dev")}
      stage:{webhook("ops-stage")}
      prod:{webhook("ops-prod")}
"""
APPROVERS = """
groups:
  leads: ["@sre-leads"]
rules:
  - environments: [dev]
    auto_approve: true
  - environments: [stage]
    approvers: [leads]
  - environments: [prod]
    approvers: [leads]
    required_approvals: 2
settings:
  sweep_interval: 5s
  allowed_email_domains: [example.com]
"""
# How the approval clicks on the k-th stage or prod request arrive, as (approver, replica,
# kind); all clicks on all requests leave at one instant. A "double" is a second click by
# the same approver, a "retry" the same signed bytes as their click, re-delivered by a
# proxy to the other replica with Slack's retry headers.
APPROVALS: list[list[tuple[str, int, str]]] = [
    [(BOB, 0, "click"), (CAROL, 1, "click")],
    [(BOB, 0, "click"), (BOB, 1, "double"), (CAROL, 0, "click")],
    [(BOB, 0, "click"), (BOB, 1, "retry"), (CAROL, 1, "click")],
    [(BOB, 0, "click"), (BOB, 1, "double"), (CAROL, 0, "click"), (CAROL, 1, "double")],
]
RETRY = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
# The audit events of a request granted and revoked once, after it was decided.
GRANTED_ONCE = Counter(["requested", "grant_started", "granted", "revoke_started", "revoked"])


@dataclass(frozen=True)
class Click:
    """One signed Slack request (a click or a command), built before it is sent so that
    copies of it can leave together or be delivered again byte for byte."""

    body: bytes
    headers: dict[str, str]


@pytest.fixture
def pg_url(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database")
    return database_url


@dataclass(frozen=True)
class Cluster:
    """Two replicas on one database: ``sim`` reaches them through the balancer, each of
    ``direct`` one replica by its port."""

    slack: FakeSlack
    receiver: WebhookReceiver
    replicas: list[BotProcess]
    sim: SlackSim
    direct: list[SlackSim]
    engine: sa.Engine


@pytest.fixture
def cluster(pg_url: str, tmp_path: Path) -> Iterator[Cluster]:
    slack = FakeSlack(token=BOT_TOKEN).start()
    slack.add_channel(AUDIT)
    slack.add_user(BOB, "bob@example.com")
    slack.add_user(CAROL, "carol@example.com")
    slack.add_usergroup("SSRE", "sre-leads", [BOB, CAROL])
    for user in REQUESTERS:
        slack.add_user(user, f"{user.lower()}@example.com")
    receiver = WebhookReceiver(SECRET).start()
    launcher = Launcher(tmp_path)
    engine = sa.create_engine(pg_url)
    balancer: Balancer | None = None
    try:
        roles = tmp_path / "roles.yaml"
        approvers = tmp_path / "approvers.yaml"
        roles.write_text(textwrap.dedent(ROLES.format(url=receiver.url)))
        approvers.write_text(textwrap.dedent(APPROVERS))
        env = launcher.env(
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=slack.api_url,
            DATABASE_URL=pg_url,
            JIT_ROLES_FILE=str(roles),
            JIT_APPROVERS_FILE=str(approvers),
            JIT_WEBHOOK_SECRET=SECRET,
            JIT_AUDIT_CHANNEL=AUDIT,
        )
        replicas = [launcher.serve(env), launcher.serve(env)]
        for replica in replicas:
            replica.wait_healthy()
        balancer = Balancer([r.port for r in replicas if r.port]).start()
        yield Cluster(
            slack=slack,
            receiver=receiver,
            replicas=replicas,
            sim=SlackSim(balancer.url, SIGNING_SECRET, slack),
            direct=[SlackSim(replica.url, SIGNING_SECRET, slack) for replica in replicas],
            engine=engine,
        )
        slack.assert_clean()
    finally:
        if balancer is not None:
            balancer.stop()
        launcher.stop_all()
        engine.dispose()
        receiver.stop()
        slack.stop()


def test_two_replicas_handle_each_request_once_revoke_once_and_post_once(
    cluster: Cluster,
) -> None:
    slack, receiver, engine = cluster.slack, cluster.receiver, cluster.engine
    # Clicks go to one replica each, by port, so both work on one request at once.
    direct = cluster.direct
    for i, (user, env_name) in enumerate(zip(REQUESTERS, PLAN, strict=True)):
        text = f"request ops {env_name} {DURATION[i]} number {i}"
        assert cluster.sim.command(user, text).status == 200
    stored = wait(lambda: _requesters(engine, len(PLAN)), 60, "every request stored")
    ids = [stored[user] for user in REQUESTERS]
    required = {rid: REQUIRED[env_name] for rid, env_name in zip(ids, PLAN, strict=True)}
    voted = [rid for rid in ids if required[rid]]
    with ThreadPoolExecutor(len(END_EARLY)) as pool:
        endings = [
            pool.submit(_end_on_both_replicas, engine, direct, REQUESTERS[i], ids[i], early)
            for i, early in END_EARLY.items()
        ]
        wait(lambda: len(slack.messages_in(BOB)) == len(voted), 60, "approval DMs")
        clicks, redelivered = _approval_clicks(direct, voted)
        replies = _together([partial(target.raw, c.body, c.headers) for target, c in clicks])
        # Nothing at the edge tells a re-delivery to the other replica from a click:
        # Bolt ignores X-Slack-Retry-Num on interactivity, and each process remembers
        # only the signatures it saw itself. Only the database can make it count once.
        assert [r.status for r in replies] == [200] * len(clicks)
        # A copy to the replica that had the click already is refused as a replay.
        for target, click in redelivered:
            again = {**click.headers, **RETRY, "X-Slack-Retry-Num": "2"}
            assert target.raw(click.body, again).status == 401
        ended = [future.result() for future in endings]
    answered = len(clicks) + sum(ended)
    wait(lambda: len(slack.responses) >= answered, 60, "an answer to every click")
    wait(lambda: _all_revoked(engine), 60, "every grant revoked")
    time.sleep(1)  # let both outbox workers pass over what is left, if anything
    wait(lambda: _outbox_empty(engine), 60, "every Slack post sent")

    for replica in cluster.replicas:  # a race lost with an exception is not a race handled once
        assert "Traceback" not in replica.output(), replica.output()

    events = Counter((e["request_id"], e["event"]) for e in receiver.events)
    for request_id in ids:
        assert events[(request_id, "grant")] == 1, request_id
        assert events[(request_id, "revoke")] == 1, request_id
    assert len(receiver.events) == 2 * len(ids)
    assert not [e for e in receiver.events if e["replay"]]

    with engine.connect() as connection:
        votes = Counter(connection.execute(sa.text("SELECT request_id, voter_id FROM vote")))
        trail = connection.execute(sa.text("SELECT id, request_id, action FROM audit_event")).all()
        endings_of = {
            row[0]: (row[1], row[2])
            for row in connection.execute(
                sa.text("SELECT id, ended_by, end_reason FROM access_request")
            )
        }
    assert set(votes.values()) == {1}, votes.most_common(3)  # no approver counted twice
    actions = Counter((request_id, action) for _, request_id, action in trail)
    for request_id in ids:
        needed = required[request_id]
        assert sum(1 for rid, _ in votes if rid == request_id) == needed, request_id
        decided = {"approval_recorded": needed, "approved": 1} if needed else {"auto_approved": 1}
        life = Counter({a: n for (rid, a), n in actions.items() if rid == request_id})
        assert life == GRANTED_ONCE + Counter(decided), (request_id, life)

    for request_id in voted:  # exactly one click completed the request
        said = Counter(
            _verdict(r["text"]) for r in slack.responses if r["_url_name"].startswith(request_id)
        )
        assert said["approved"] == 1, (request_id, said)
        assert said["recorded"] == required[request_id] - 1, (request_id, said)
        assert set(said) <= {"approved", "recorded", "refused"}, (request_id, said)

    for i, early in END_EARLY.items():
        ended_by, reason = endings_of[ids[i]]
        if early:  # long before the expiry: the requester's click ended it
            assert (ended_by, reason) == (REQUESTERS[i], "ended early"), ids[i]
        else:  # at the expiry: whichever came first, and only that one
            assert (ended_by, reason) in {(REQUESTERS[i], "ended early"), ("jit-bot", "expired")}
    for i in set(range(len(PLAN))) - set(END_EARLY):
        assert endings_of[ids[i]] == ("jit-bot", "expired"), ids[i]

    posted = Counter(
        int(m.group(1)) for line in audit_lines(slack, AUDIT) if (m := re.search(r"#(\d+) `", line))
    )
    assert sorted(posted) == sorted(event_id for event_id, _, _ in trail)
    assert set(posted.values()) == {1}
    for approver in (BOB, CAROL):
        assert len(slack.messages_in(approver)) == len(voted)  # one DM per request to decide
    posts = Counter(
        (c.params["channel"], c.params["text"]) for c in slack.calls_to("chat.postMessage")
    )
    assert max(posts.values()) == 1, posts.most_common(3)  # no message posted twice
    updates = Counter(
        (c.params["channel"], c.params["ts"], str(c.params.get("blocks")))
        for c in slack.calls_to("chat.update")
    )
    assert max(updates.values()) == 1, updates.most_common(3)


def test_a_slash_command_redelivered_to_the_other_replica_requests_access_once(
    cluster: Cluster,
) -> None:
    """Replay protection is per process, so the same bytes reach the second replica; the
    command's trigger_id, stored with the request, makes it one request anyway: one
    re-delivery after the first was handled, and two copies that arrive at once."""
    first, other = cluster.direct
    command = _command(first, REQUESTERS[0], "request ops dev 4s redelivered", "command")
    assert first.raw(command.body, command.headers).status == 200
    wait(lambda: _requesters(cluster.engine, 1), 60, "the request stored")
    # What a proxy that timed out on the first replica sends to the second.
    redelivery = other.raw(command.body, {**command.headers, **RETRY})
    assert redelivery.status == 200
    twice = _command(first, REQUESTERS[1], "request ops dev 4s twice at once", "twice")
    answers = _together(
        [
            lambda: first.raw(twice.body, twice.headers),
            lambda: other.raw(twice.body, {**twice.headers, **RETRY}),
        ]
    )
    assert [a.status for a in answers] == [200, 200]
    wait(lambda: _requesters(cluster.engine, 2), 60, "both requests stored")
    wait(lambda: len(cluster.receiver.events) >= 2, 60, "the grants")
    time.sleep(2)  # time for a second grant to arrive, if there were going to be one
    with cluster.engine.connect() as connection:
        stored = (
            connection.execute(
                sa.text("SELECT requester_id FROM access_request ORDER BY requester_id")
            )
            .scalars()
            .all()
        )
    grants = Counter(e["request_id"] for e in cluster.receiver.events if e["event"] == "grant")
    assert stored == sorted(REQUESTERS[:2]), stored
    assert len(grants) == 2 and set(grants.values()) == {1}, grants


def _approval_clicks(
    direct: list[SlackSim], request_ids: list[str]
) -> tuple[list[tuple[SlackSim, Click]], list[tuple[SlackSim, Click]]]:
    """Every approval click on these requests, each with the replica it goes to, following
    APPROVALS (the second time round with the replicas swapped); and the re-delivered
    clicks, each with the replica that had the original."""
    clicks: list[tuple[SlackSim, Click]] = []
    redelivered: list[tuple[SlackSim, Click]] = []
    for k, request_id in enumerate(request_ids):
        swap = k // len(APPROVALS) % 2
        first: dict[str, tuple[SlackSim, Click]] = {}
        for n, (approver, replica, kind) in enumerate(APPROVALS[k % len(APPROVALS)]):
            target = direct[replica ^ swap]
            if kind == "retry":
                original, click = first[approver]
                clicks.append((target, replace(click, headers={**click.headers, **RETRY})))
                redelivered.append((original, click))
            else:
                click = _click(target, approver, "approve", request_id, f"{request_id}.{n}")
                clicks.append((target, click))
                first.setdefault(approver, (target, click))
    return clicks, redelivered


def _end_on_both_replicas(
    engine: sa.Engine, direct: list[SlackSim], user: str, request_id: str, early: timedelta
) -> int:
    """Click "end access" on every replica at once, ``early`` before the grant expires;
    returns how many clicks were sent."""
    expires_at = wait(lambda: _active_until(engine, request_id), 60, f"{request_id} active")
    delay = (expires_at - early - datetime.now(UTC)).total_seconds()
    time.sleep(max(delay, 0))
    clicks = [
        (target, _click(target, user, "end_access", request_id, f"{request_id}.end{n}"))
        for n, target in enumerate(direct)
    ]
    replies = _together([partial(target.raw, c.body, c.headers) for target, c in clicks])
    assert [r.status for r in replies] == [200] * len(clicks)
    return len(clicks)


def _click(sim: SlackSim, user: str, action_id: str, request_id: str, name: str) -> Click:
    """A signed button click as Slack sends it, answered at response URL ``name``."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "token": sim.verification_token,
        "api_app_id": APP_ID,
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM_ID},
        "trigger_id": sim.new_trigger_id(),
        "response_url": sim.slack.response_url(name),
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "b",
                "value": request_id,
                "action_ts": f"{time.time():.6f}",
            }
        ],
        "state": {"values": {}},
    }
    return _signed(sim, {"payload": json.dumps(payload)})


def _command(sim: SlackSim, user: str, text: str, name: str) -> Click:
    """A signed ``/jit`` slash command as Slack sends it, answered at ``name``."""
    fields = {
        "token": sim.verification_token,
        "team_id": TEAM_ID,
        "team_domain": TEAM_DOMAIN,
        "channel_id": "C0GENERAL",
        "channel_name": "c0general",
        "user_id": user,
        "user_name": user.lower(),
        "command": "/jit",
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": sim.slack.response_url(name),
        "trigger_id": sim.new_trigger_id(),
    }
    return _signed(sim, fields)


def _signed(sim: SlackSim, fields: dict[str, str]) -> Click:
    body = urlencode(fields).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sim.sign(body)}
    return Click(body, headers)


def _together(sends: list[Callable[[], Reply]]) -> list[Reply]:
    """Make each call from a thread of its own, all released at the same instant."""
    start = threading.Barrier(len(sends))

    def send(call: Callable[[], Reply]) -> Reply:
        start.wait(timeout=10)
        return call()

    with ThreadPoolExecutor(len(sends)) as pool:
        return list(pool.map(send, sends))


def _verdict(text: str) -> str:
    if text.startswith("Approved "):
        return "approved"
    if "is recorded" in text:
        return "recorded"
    return "refused" if "nothing changed" in text else text


def _requesters(engine: sa.Engine, count: int) -> dict[str, str] | None:
    """Request id by requester, once ``count`` requests are stored."""
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT requester_id, id FROM access_request")).all()
    return {r[0]: r[1] for r in rows} if len(rows) >= count else None


def _active_until(engine: sa.Engine, request_id: str) -> datetime | None:
    with engine.connect() as connection:
        row = connection.execute(
            sa.text("SELECT status, expires_at FROM access_request WHERE id = :id"),
            {"id": request_id},
        ).one()
    return row[1] if row[0] == "active" else None


def _all_revoked(engine: sa.Engine) -> bool:
    with engine.connect() as connection:
        statuses = {r[0] for r in connection.execute(sa.text("SELECT status FROM access_request"))}
    return statuses == {"revoked"}


def _outbox_empty(engine: sa.Engine) -> bool:
    with engine.connect() as connection:
        pending = connection.execute(
            sa.text("SELECT count(*) FROM outbox_message WHERE status = 'pending'")
        ).scalar()
    return pending == 0
