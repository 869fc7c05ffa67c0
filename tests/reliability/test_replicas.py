"""Two bot processes on one PostgreSQL database behind one address: every request is
handled once, every expiry revoked once, every Slack post sent once."""

from __future__ import annotations

import os
import re
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import BOB, BOT_TOKEN, CAROL, SIGNING_SECRET
from tests.fakes.balancer import Balancer
from tests.fakes.processes import Launcher, wait
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_client import SlackSim
from tests.fakes.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.skipif(
    not os.environ.get("JIT_TEST_DATABASE_URL"), reason="replicas share a PostgreSQL database"
)

SECRET = "replica-webhook-key"
# One requester per request: grants of one person to one target overlap, and only the
# last to end revokes, which is right but not what this test counts.
REQUESTERS = [f"UREQ{i:02d}" for i in range(12)]
AUDIT = "C0AUDIT"
ROLES = """
roles:
  ops:
    max_duration: 1m
    environments:
      dev:
        - provider: webhook
          name: ops-dev
          url: {url}
          secret_env: JIT_WEBHOOK_SECRET
      prod:
        - provider: webhook
          name: ops-prod
          url: {url}
          secret_env: JIT_WEBHOOK_SECRET
"""
APPROVERS = """
groups:
  leads: ["@sre-leads"]
rules:
  - environments: [dev]
    auto_approve: true
  - environments: [prod]
    approvers: [leads]
settings:
  sweep_interval: 5s
"""


@pytest.fixture
def pg_url(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database")
    return database_url


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[FakeSlack, WebhookReceiver, Launcher]]:
    slack = FakeSlack(token=BOT_TOKEN).start()
    slack.add_user(BOB, "bob@example.com")
    slack.add_user(CAROL, "carol@example.com")
    slack.add_usergroup("SSRE", "sre-leads", [BOB, CAROL])
    for user in REQUESTERS:
        slack.add_user(user, f"{user.lower()}@example.com")
    receiver = WebhookReceiver(SECRET).start()
    launcher = Launcher(tmp_path)
    try:
        yield slack, receiver, launcher
    finally:
        launcher.stop_all()
        receiver.stop()
        slack.stop()


def test_two_replicas_handle_each_request_once_revoke_once_and_post_once(
    pg_url: str, world: tuple[FakeSlack, WebhookReceiver, Launcher]
) -> None:
    slack, receiver, launcher = world
    roles = launcher.tmp_path / "roles.yaml"
    approvers = launcher.tmp_path / "approvers.yaml"
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
    sim = SlackSim(balancer.url, SIGNING_SECRET, slack)
    try:
        for i, user in enumerate(REQUESTERS):
            env_name = "dev" if i < 8 else "prod"
            assert sim.command(user, f"request ops {env_name} 4s number {i}").status == 200
        engine = sa.create_engine(pg_url)
        ids = wait(lambda: _ids(engine, 12), 20, "12 stored requests")
        prod = [rid for rid, env in ids if env == "prod"]
        wait(lambda: len(slack.messages_in(BOB)) == 4, 20, "approval DMs")
        for request_id in prod:  # both approvers click at once, through the balancer
            assert sim.block_action(BOB, "approve", request_id).status == 200
            assert sim.block_action(CAROL, "approve", request_id).status == 200
        wait(lambda: _all_revoked(engine), 40, "every grant revoked")
        time.sleep(1)  # let both outbox workers pass over what is left, if anything
        wait(lambda: _outbox_empty(engine), 20, "every Slack post sent")
    finally:
        balancer.stop()

    events = Counter((e["request_id"], e["event"]) for e in receiver.events)
    for request_id, _ in ids:
        assert events[(request_id, "grant")] == 1, request_id
        assert events[(request_id, "revoke")] == 1, request_id
    assert len(receiver.events) == 24  # no replays either

    with engine.connect() as connection:
        audit_ids = [row[0] for row in connection.execute(sa.text("SELECT id FROM audit_event"))]
    posted = Counter(
        int(m.group(1))
        for message in slack.messages_in(AUDIT)
        if (m := re.search(r"#(\d+) `", message["text"]))
    )
    assert sorted(posted) == sorted(audit_ids) and set(posted.values()) == {1}
    for approver in (BOB, CAROL):
        assert len(slack.messages_in(approver)) == 4  # one DM per prod request
    posts = Counter(
        (c.params["channel"], c.params["text"]) for c in slack.calls_to("chat.postMessage")
    )
    assert max(posts.values()) == 1, posts.most_common(3)  # no message posted twice
    updates = Counter(
        (c.params["channel"], c.params["ts"], str(c.params.get("blocks")))
        for c in slack.calls_to("chat.update")
    )
    assert max(updates.values()) == 1, updates.most_common(3)
    engine.dispose()


def _ids(engine: sa.Engine, count: int) -> list[tuple[str, str]] | None:
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT id, environment FROM access_request")).all()
    return [(r[0], r[1]) for r in rows] if len(rows) >= count else None


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
