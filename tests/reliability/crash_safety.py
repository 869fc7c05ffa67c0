"""Crash safety: run the bot as a real process and SIGKILL it at random points of the
grant and revoke paths, restarting it each time; then count what went wrong.

    python -m tests.reliability.crash_safety            # 8 runs (CI runs 4 a database)
    python -m tests.reliability.crash_safety --full     # 200 runs

Each run asks for short-lived access (auto-approved, a few seconds) through a signed
slash command, against a webhook provider that takes a while to answer, and kills the
process either while the grant is under way (just after the request is stored) or just
after the access expired, before its revocation is recorded. Half the runs take each
path (in an order the seed shuffles), so even the CI size kills in both. At the end a
last process runs until everything has settled, and the figures are:

- kills that landed in each path, judged afterwards from the audit trail: before the
  request was recorded granted, or after it expired and before it was recorded revoked
  (each path at least once);
- stored requests never granted on every target (target 0: the process taking over
  finishes a grant the kill cut off);
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

from tests.conftest import BOT_TOKEN, SIGNING_SECRET, audit_lines
from tests.fakes.processes import BotProcess, Launcher, wait
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_client import SlackSim
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.kit.configs import webhook

SECRET = "crash-webhook-key"
AUDIT = "C0AUDIT"
DURATION = 4  # seconds of access per request
# Where each path's kill lands, in seconds. A grant starts once its request is stored
# and makes its two calls one after the other, each answered after the receiver's 0.3 s
# delay, so a kill within 0.4 s of seeing the request stored (polled every 0.05 s) lands
# before the grant is recorded. A revocation starts at the expiry at the earliest and
# takes at least one 0.3 s call, so a kill within 0.3 s after the expiry lands before
# the revocation is recorded.
GRANT_WINDOW = (0.0, 0.4)  # after the request is stored
REVOKE_WINDOW = (0.0, 0.3)  # after expires_at
ROLES = f"""
roles:
  ops:
    max_duration: 1m
    environments:
      dev:{webhook("ops-a")}{webhook("ops-b")}
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
    landed_in_grant: int
    landed_in_revoke: int
    requests: int
    not_granted: int
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
                "kills aimed at the grant / revoke path",
                f"{self.kills_in_grant} / {self.kills_in_revoke}",
                "",
            ),
            (
                "kills that landed: before granted / after expiry, before revoked",
                f"{self.landed_in_grant} / {self.landed_in_revoke}",
                "≥ 1 / ≥ 1",
            ),
            ("requests stored", self.requests, ""),
            ("stored requests not granted on every target", self.not_granted, "0"),
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
            self.landed_in_grant < 1
            or self.landed_in_revoke < 1
            or self.not_granted
            or self.late_revocations
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
        # Half the runs in each path, so that even 2 runs kill in both.
        paths = (["grant", "revoke"] * runs)[:runs]
        rng.shuffle(paths)
        kills: list[Kill] = []
        try:
            process = _start(launcher, env)
            for number, path in enumerate(paths):
                user = f"UCRASH{number:04d}"
                slack.add_user(user, f"{user.lower()}@example.com")
                sim = SlackSim(process.url, SIGNING_SECRET, slack)
                assert sim.command(user, f"request ops dev {DURATION}s run {number}").status == 200
                request_id = wait(lambda u=user: _request_of(engine, u), 20, "the request")
                if path == "grant":
                    time.sleep(rng.uniform(*GRANT_WINDOW))
                else:
                    expires = wait(lambda r=request_id: _expiry(engine, r), 30, "the grant")
                    time.sleep(max(0.0, expires - time.time() + rng.uniform(*REVOKE_WINDOW)))
                process.crash()
                # Read once the process is gone, so a grant or revocation recorded just
                # before the kill is never taken for one the kill prevented.
                kills.append(Kill(path, user, datetime.now(UTC)))
                process = _start(launcher, env)
            try:
                wait(lambda: _settled(engine), 180, "every request settled")
            except AssertionError:
                raise AssertionError(f"not settled: {_statuses(engine)}") from None
            wait(lambda: _outbox_empty(engine), 60, "every Slack post sent")
            slack.assert_clean()  # nothing the bot sent was refused as malformed
            return _figures(engine, receiver, slack, runs, kills)
        finally:
            launcher.stop_all()
            receiver.stop()
            slack.stop()
            engine.dispose()


@dataclass
class Kill:
    path: str  # "grant" or "revoke": where the schedule aimed it
    user: str  # whose request was under way
    at: datetime  # once the SIGKILLed process was gone (the bot's clock is this machine's)


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
    kills: list[Kill],
) -> Figures:
    with engine.connect() as connection:
        requests = connection.execute(
            sa.text("SELECT id, status, expires_at FROM access_request")
        ).all()
        owners = dict(
            connection.execute(sa.text("SELECT requester_id, id FROM access_request")).all()
        )
        audit = connection.execute(
            sa.text("SELECT id, request_id, action, at FROM audit_event")
        ).all()
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
    granted_on = Counter(
        request_id for request_id, _, kind in applied if kind == "grant"
    )  # targets granted, by request
    not_granted = sum(1 for request_id, _, _ in requests if granted_on[request_id] < 2)
    actions: dict[str, set[str]] = {}
    recorded: dict[tuple[str, str], datetime] = {}  # (request, action) → when
    for _, request_id, action, at in audit:
        actions.setdefault(request_id, set()).add(action)
        recorded.setdefault((request_id, action), _aware(at))
    expiries = {request_id: expires_at for request_id, _, expires_at in requests}
    landed = Counter[str]()
    for kill in kills:
        request_id = owners[kill.user]  # each kill waited for the request to be stored
        if kill.path == "grant":
            granted = recorded.get((request_id, "granted"))
            landed["grant"] += granted is None or granted > kill.at
            continue
        expires_at = expiries.get(request_id)
        revoked = recorded.get((request_id, "revoked"))
        landed["revoke"] += (
            expires_at is not None
            and _aware(expires_at) <= kill.at
            and (revoked is None or revoked > kill.at)
        )
    unaudited = sum(
        1
        for request_id, status, _ in requests
        if (status == "revoked" and not actions.get(request_id, set()) >= LIFECYCLE)
        or (status == "failed" and "grant_failed" not in actions.get(request_id, set()))
    )
    posted = Counter(
        int(m.group(1)) for line in audit_lines(slack, AUDIT) if (m := re.search(r"#(\d+) `", line))
    )
    undelivered = sum(1 for event_id, *_ in audit if event_id not in posted)
    repeated = sum(n - 1 for n in posted.values() if n > 1)
    return Figures(
        runs=runs,
        kills_in_grant=sum(k.path == "grant" for k in kills),
        kills_in_revoke=sum(k.path == "revoke" for k in kills),
        landed_in_grant=landed["grant"],
        landed_in_revoke=landed["revoke"],
        requests=len(requests),
        not_granted=not_granted,
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
