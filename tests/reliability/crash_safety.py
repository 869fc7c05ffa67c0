"""Crash safety: run the bot as a real process and SIGKILL it at random points of the
grant and revoke paths, restarting it each time; then count what went wrong.

    python -m tests.reliability.crash_safety            # 8 runs (what CI runs)
    python -m tests.reliability.crash_safety --full     # 200 runs

Each run asks for short-lived access (auto-approved, a few seconds) through a signed
slash command, against a webhook provider that takes a while to answer, and kills the
process either while the grant is under way or around the moment the access expires.
At the end a last process runs until everything has settled, and the figures are:

- grants left in the provider more than 60 s past ``expires_at`` (target 0);
- duplicate grants: a grant applied twice for one request (target 0);
- requests whose transitions are not all in the audit trail (target 0);
- audit events never posted to the audit channel (target 0), and posts sent twice (a
  crash between Slack's answer and the bot recording it; at-least-once, reported).

Uses SQLite by default, PostgreSQL with ``--database-url`` (or JIT_TEST_DATABASE_URL).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import textwrap
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from tests.conftest import BOT_TOKEN, SIGNING_SECRET
from tests.fakes.processes import BotProcess, Launcher, wait
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_client import SlackSim
from tests.fakes.webhook_receiver import WebhookReceiver

SECRET = "crash-webhook-key"
AUDIT = "C0AUDIT"
DURATION = 4  # seconds of access per request
ROLES = """
roles:
  ops:
    max_duration: 1m
    environments:
      dev:
        - provider: webhook
          name: ops-a
          url: {url}
          allow_insecure: true  # the receiver is plain http on 127.0.0.1
          secret_env: JIT_WEBHOOK_SECRET
        - provider: webhook
          name: ops-b
          url: {url}
          allow_insecure: true  # the receiver is plain http on 127.0.0.1
          secret_env: JIT_WEBHOOK_SECRET
"""
APPROVERS = """
rules:
  - auto_approve: true
settings:
  sweep_interval: 2s
  allowed_email_domains: [example.com]
"""
# What a request that ended normally went through, in the audit trail.
LIFECYCLE = {"requested", "auto_approved", "granted", "revoke_started", "revoked"}


@dataclass
class Figures:
    runs: int
    kills_in_grant: int
    kills_in_revoke: int
    requests: int
    lost_before_stored: int
    late_revocations: int
    duplicate_grants: int
    unaudited: int
    undelivered_posts: int
    repeated_posts: int
    worst_revoke_delay: float

    def table(self) -> str:
        rows = [
            ("runs (SIGKILL + restart)", self.runs, ""),
            (
                "kills during grant / during revoke",
                f"{self.kills_in_grant} / {self.kills_in_revoke}",
                "",
            ),
            ("requests stored", self.requests, ""),
            (
                "asks killed between ack and storing (nothing granted)",
                self.lost_before_stored,
                "reported",
            ),
            ("grants left > expires_at + 60 s", self.late_revocations, "0"),
            ("duplicate grants", self.duplicate_grants, "0"),
            ("requests with unaudited transitions", self.unaudited, "0"),
            ("audit events never posted", self.undelivered_posts, "0"),
            ("audit posts sent twice (at-least-once)", self.repeated_posts, "reported"),
            ("worst revoke − expires_at (s)", f"{self.worst_revoke_delay:.1f}", "≤ 60"),
        ]
        lines = ["| figure | measured | target |", "| --- | --- | --- |"]
        lines += [f"| {name} | {value} | {target} |" for name, value, target in rows]
        return "\n".join(lines)

    @property
    def ok(self) -> bool:
        return not (
            self.late_revocations
            or self.duplicate_grants
            or self.unaudited
            or self.undelivered_posts
            or self.worst_revoke_delay > 60
        )


def run(runs: int, database_url: str | None, seed: int = 1) -> Figures:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="jit-crash-") as tmp:
        workdir = Path(tmp)
        url = database_url or f"sqlite:///{workdir / 'jit.db'}"
        slack = FakeSlack(token=BOT_TOKEN).start()
        slack.add_channel(AUDIT)
        receiver = WebhookReceiver(SECRET).start()
        receiver.delay = 0.3  # each grant/revoke call takes a while: room to die in
        launcher = Launcher(workdir)
        (workdir / "roles.yaml").write_text(textwrap.dedent(ROLES.format(url=receiver.url)))
        (workdir / "approvers.yaml").write_text(textwrap.dedent(APPROVERS))
        env = launcher.env(
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=slack.api_url,
            DATABASE_URL=url,
            JIT_ROLES_FILE=str(workdir / "roles.yaml"),
            JIT_APPROVERS_FILE=str(workdir / "approvers.yaml"),
            JIT_WEBHOOK_SECRET=SECRET,
            JIT_AUDIT_CHANNEL=AUDIT,
            JIT_LOG_LEVEL="WARNING",
        )
        engine = sa.create_engine(url)
        kills = Counter[str]()
        try:
            process = _start(launcher, env)
            for number in range(runs):
                user = f"UCRASH{number:04d}"
                slack.add_user(user, f"{user.lower()}@example.com")
                sim = SlackSim(process.url, SIGNING_SECRET, slack)
                assert sim.command(user, f"request ops dev {DURATION}s run {number}").status == 200
                if rng.random() < 0.5:
                    time.sleep(rng.uniform(0.0, 1.2))  # somewhere in the grant path
                    kills["grant"] += 1
                else:
                    request_id = wait(lambda u=user: _request_of(engine, u), 20, "the request")
                    expires = wait(lambda r=request_id: _expiry(engine, r), 30, "the grant")
                    time.sleep(max(0.0, expires - time.time() + rng.uniform(-0.2, 1.0)))
                    kills["revoke"] += 1
                process.crash()
                process = _start(launcher, env)
            try:
                wait(lambda: _settled(engine), 180, "every request settled")
            except AssertionError:
                raise AssertionError(f"not settled: {_statuses(engine)}") from None
            wait(lambda: _outbox_empty(engine), 60, "every Slack post sent")
            return _figures(engine, receiver, slack, runs, kills)
        finally:
            launcher.stop_all()
            receiver.stop()
            slack.stop()
            engine.dispose()


def _start(launcher: Launcher, env: dict[str, str]) -> BotProcess:
    process = launcher.serve(env)
    process.wait_healthy(timeout=30)
    return process


def _request_of(engine: sa.Engine, user: str) -> str | None:
    with engine.connect() as connection:
        return connection.execute(
            sa.text("SELECT id FROM access_request WHERE requester_id = :u"), {"u": user}
        ).scalar()


def _expiry(engine: sa.Engine, request_id: str) -> float | None:
    with engine.connect() as connection:
        value = connection.execute(
            sa.text("SELECT expires_at FROM access_request WHERE id = :i"), {"i": request_id}
        ).scalar()
    return _aware(value).timestamp() if value else None


def _statuses(engine: sa.Engine) -> Counter[str]:
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT status FROM access_request")).all()
    return Counter(r[0] for r in rows)


def _settled(engine: sa.Engine) -> bool:
    return set(_statuses(engine)) <= {"revoked", "failed"}


def _outbox_empty(engine: sa.Engine) -> bool:
    with engine.connect() as connection:
        return not connection.execute(
            sa.text("SELECT count(*) FROM outbox_message WHERE status = 'pending'")
        ).scalar()


def _figures(
    engine: sa.Engine,
    receiver: WebhookReceiver,
    slack: FakeSlack,
    runs: int,
    kills: Counter[str],
) -> Figures:
    with engine.connect() as connection:
        requests = connection.execute(
            sa.text("SELECT id, status, expires_at FROM access_request")
        ).all()
        audit = connection.execute(sa.text("SELECT id, request_id, action FROM audit_event")).all()
    events = receiver.events
    applied = Counter(
        (e["request_id"], e["target"]["name"], e["event"]) for e in events if not e["replay"]
    )
    duplicate_grants = sum(1 for (_, _, kind), n in applied.items() if kind == "grant" and n > 1)
    late = 0
    worst = 0.0
    for request_id, _status, expires_at in requests:
        if expires_at is None:
            continue
        deadline = _aware(expires_at).timestamp()
        for target in ("ops-a", "ops-b"):
            revokes = [
                e["received_at"]
                for e in events
                if e["request_id"] == request_id
                and e["target"]["name"] == target
                and e["event"] == "revoke"
            ]
            granted = any(
                e["request_id"] == request_id
                and e["target"]["name"] == target
                and e["event"] == "grant"
                for e in events
            )
            if not granted:
                continue
            if not revokes:
                late += 1
                continue
            delay = min(revokes) - deadline
            worst = max(worst, delay)
            late += delay > 60
    late += len(receiver.holdings)  # still held now, long after every expiry
    actions: dict[str, set[str]] = {}
    for _, request_id, action in audit:
        actions.setdefault(request_id, set()).add(action)
    unaudited = sum(
        1
        for request_id, status, _ in requests
        if (status == "revoked" and not actions.get(request_id, set()) >= LIFECYCLE)
        or (status == "failed" and "grant_failed" not in actions.get(request_id, set()))
    )
    posted = Counter(
        int(m.group(1))
        for message in slack.messages_in(AUDIT)
        if (m := re.search(r"#(\d+) `", message["text"]))
    )
    undelivered = sum(1 for event_id, _, _ in audit if event_id not in posted)
    repeated = sum(n - 1 for n in posted.values() if n > 1)
    return Figures(
        runs=runs,
        kills_in_grant=kills["grant"],
        kills_in_revoke=kills["revoke"],
        requests=len(requests),
        lost_before_stored=runs - len(requests),
        late_revocations=late,
        duplicate_grants=duplicate_grants,
        unaudited=unaudited,
        undelivered_posts=undelivered,
        repeated_posts=repeated,
        worst_revoke_delay=worst,
    )


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):  # SQLite through a plain engine
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="200 runs instead of 8")
    parser.add_argument("--runs", type=int, help="an exact number of runs")
    parser.add_argument("--database-url", help="default: a SQLite file in a temp dir")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    runs = args.runs or (200 if args.full else 8)
    started = time.monotonic()
    figures = run(runs, args.database_url, args.seed)
    print(figures.table())
    print(
        f"\n{runs} runs in {time.monotonic() - started:.0f} s; {'PASS' if figures.ok else 'FAIL'}"
    )
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())
