"""History: the everyday costs on a database that holds a year of use (issue 23, point 2).

``bench.history_fill`` writes the history (finished requests, their targets and votes,
and an intact audit chain, over a year and 2,000 people); then ``python -m bot serve`` is
started on it and driven through Slack:

- **request → approver DM**: requests that need the approver are sent one at a time, by
  people of the history; the time from sending ``/jit request`` to the fake Slack's
  receipt of the approver's DM. The same on an empty database first: the figure is
  judged against it.
- **/jit list**: sent by people of the history (the one who asked most, the approver of
  half of it, and others drawn at random), one at a time, while those requests are
  pending (so each list also shows what awaits the approver); from sending the command
  to the fake Slack's receipt of the answer.
- **sweeper tick with nothing due**: a second bot on the same database (built by the
  composition root in this process, its timers not started, as a replica's would run)
  sweeps over and over; nothing is due (the pending requests are minutes old). Time of
  one sweep; and, apart, of its other periodic jobs' reads (reminders to approvers and
  reviewers, escalations, nudges) run together.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from bench.harness import (
    APPROVAL_ENV,
    APPROVER,
    AUDIT_CHANNEL,
    AUDIT_KEY,
    BOT_TOKEN,
    REQUEST_ID,
    ROLE,
    SIGNING_SECRET,
    KeepAliveSim,
    Row,
    Stack,
    ms,
    percentile,
    stack,
)
from bench.history_fill import Filled, email, fill, person
from bot.app import build_runtime
from bot.settings import Settings
from providers.webhook import WebhookProvider

# (requests, audit events, people); tiny: enough to produce every figure, for tests/bench.
SIZES = {
    "tiny": (2_000, 10_000, 50),
    "small": (100_000, 500_000, 2_000),
    "full": (1_000_000, 5_000_000, 2_000),
}
# Requests asked, lists shown and ticks timed at each size.
SAMPLES = {"tiny": (3, 10, 5), "small": (20, 100, 50), "full": (40, 300, 100)}
NAME = "history"
APPROVER_DM = "D" + APPROVER[1:]


def run(size: str, db: str) -> list[Row]:
    requests, events, people = SIZES[size]
    asks, lists, ticks = SAMPLES[size]
    note = "" if db == "sqlite" else f" ({db})"
    with stack(db) as empty:
        empty_dm = _request_to_dm(empty, asks, [f"UEMPTY{i:04d}" for i in range(asks)])
    with stack(db, start=False) as bench:
        filled = _history(bench, db, requests, events, people)
        _on_disk(bench, db)
        started = time.monotonic()
        bench.start_bot().wait_healthy(timeout=600)
        start_up = time.monotonic() - started
        rng = random.Random(7)
        askers = [person(i) for i in rng.sample(range(people), min(asks, people))]
        dm = _request_to_dm(bench, asks, askers)
        listers = [person(0), APPROVER, *(person(i) for i in rng.sample(range(people), 20))]
        listed = _lists(bench, lists, listers)
        tick, others = _ticks(bench, ticks)
    dm50, empty50 = percentile(dm, 50), percentile(empty_dm, 50)
    list99, tick50 = percentile(listed, 99), percentile(tick, 50)
    same = dm50 <= max(1.25 * empty50, empty50 + 0.005)
    return [
        Row(
            NAME,
            f"history{note}",
            f"{requests} requests, {events} events",
            f"{filled.requests} requests, {filled.events} audit events, {filled.votes} votes, "
            f"{filled.people} people; written in {filled.seconds:.0f} s; bot up in "
            f"{start_up:.1f} s",
            filled.requests == requests and filled.events == events,
        ),
        Row(NAME, "/jit list p50", "", ms(percentile(listed, 50)), None),
        Row(NAME, "/jit list p99", "< 50 ms", ms(list99), list99 < 0.050),
        Row(
            NAME,
            "sweeper tick, nothing due: p50 / p95 / max",
            "p50 < 20 ms",
            f"{ms(tick50)} / {ms(percentile(tick, 95))} / {ms(max(tick))}",
            tick50 < 0.020,
        ),
        Row(
            NAME,
            "reminders, reviews, escalations and nudges, nothing due: p50 / max",
            "",
            f"{ms(percentile(others, 50))} / {ms(max(others))}",
            None,
        ),
        Row(
            NAME,
            "request → approver DM p50 / p99, empty database",
            f"{len(empty_dm)} requests",
            f"{ms(empty50)} / {ms(percentile(empty_dm, 99))}",
            None,
        ),
        Row(
            NAME,
            "request → approver DM p50 / p99, on the history",
            "p50 ≤ 1.25 × empty (or +5 ms)",
            f"{ms(dm50)} / {ms(percentile(dm, 99))}",
            same,
        ),
    ]


def _history(bench: Stack, db: str, requests: int, events: int, people: int) -> Filled:
    """Fill the history; or, on SQLite with JIT_BENCH_HISTORY_SQLITE naming a file that
    ``python -m bench.history_fill`` wrote at this size, copy it (seconds, not minutes)."""
    ready = os.environ.get("JIT_BENCH_HISTORY_SQLITE")
    if db != "sqlite" or not ready:
        return fill(bench.database_url, requests=requests, events=events, people=people)
    started = time.perf_counter()
    target = sa.make_url(bench.database_url).database or ""
    for suffix in ("", "-wal"):
        if Path(ready + suffix).exists():
            shutil.copyfile(ready + suffix, target + suffix)
    with bench.db().connect() as connection:
        count = connection.execute(sa.text("SELECT count(*) FROM access_request")).scalar_one()
        votes = connection.execute(sa.text("SELECT count(*) FROM vote")).scalar_one()
        newest = connection.execute(sa.text("SELECT max(id) FROM audit_event")).scalar_one()
    return Filled(count, newest, votes, people, time.perf_counter() - started)


def _on_disk(bench: Stack, db: str) -> None:
    """Put the history on disk before measuring, as a year-old database is: just written
    (or copied), gigabytes of it are still dirty in the page cache, and the first fsync
    that touches the file (SQLite's first WAL checkpoint, PostgreSQL's next checkpoint)
    would write them all while a measured request waits (0.8 s at the full size)."""
    if db != "sqlite":
        with bench.db().connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                sa.text("CHECKPOINT")
            )
    os.sync()


def _request_to_dm(bench: Stack, count: int, users: list[str]) -> list[float]:
    """Send requests that need the approver, one at a time; seconds from each command
    to its approver DM."""
    for user in users:
        bench.slack.add_user(user, email(user), user.lower())
    sim = bench.sim()
    took = []
    for n, user in enumerate(users[:count]):
        sent = time.time()
        reply = sim.command(user, f"request {ROLE} {APPROVAL_ENV} 1h history {n}")
        assert reply.status == 200 and reply.response_url_name, reply
        answer = bench.slack.wait_reply(reply.response_url_name)
        [request_id, *_] = REQUEST_ID.findall(answer.text) or [answer.text]
        dm = bench.slack.wait_news(
            request_id, lambda m: m.method == "chat.postMessage" and m.channel == APPROVER_DM
        )
        took.append(dm.at - sent)
    return took


def _lists(bench: Stack, count: int, users: list[str]) -> list[float]:
    """``/jit list`` by these people in turn; seconds from each command to its answer."""
    for user in users:
        bench.slack.add_user(user, email(user), user.lower())
    sim: KeepAliveSim = bench.sim()
    took = []
    for n in range(count):
        sent = time.time()
        reply = sim.command(users[n % len(users)], "list")
        assert reply.status == 200 and reply.response_url_name, reply
        took.append(bench.slack.wait_reply(reply.response_url_name).at - sent)
    return took


def _ticks(bench: Stack, count: int) -> tuple[list[float], list[float]]:
    """Time ``count`` ticks of a second bot's periodic work, with nothing due: its sweeps,
    and its reminders, reviews' reminders, escalations and nudges together."""
    settings = Settings(
        bot_token=BOT_TOKEN,
        signing_secret=SIGNING_SECRET,
        api_url=bench.slack.api_url,
        audit_channel=AUDIT_CHANNEL,
        database_url=bench.database_url,
        roles_file=str(bench.roles_file),
        approvers_file=str(bench.approvers_file),
        port=0,
        audit_key=AUDIT_KEY,
    )
    providers = {"webhook": WebhookProvider({"JIT_WEBHOOK_SECRET": "unused"})}
    runtime = build_runtime(settings, providers=providers, environ={})
    service = runtime.service
    others: list[Callable[[], object]] = [
        service.remind_approvers,
        service.remind_reviews,
        service.escalate,
        service.nudge,
    ]
    sweeps, rest = [], []
    try:
        for _ in range(count + 1):  # the first warms the caches (config, statements)
            started = time.perf_counter()
            service.sweep()
            swept = time.perf_counter()
            for job in others:
                job()
            sweeps.append(swept - started)
            rest.append(time.perf_counter() - swept)
    finally:
        runtime.stop()
    return sweeps[1:], rest[1:]
