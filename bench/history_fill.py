"""A year of history, fast: finished requests, their targets and votes, and an intact
keyed audit chain, written straight into a migrated database (SQLite ``executemany`` on
the driver's own connection, PostgreSQL ``COPY``), never through the ORM.

    .venv/bin/python -m bench.history_fill sqlite:////tmp/history.db \\
        [--requests 1000000] [--events 5000000] [--people 2000] [--days 365]

Requests are spread evenly over ``days`` ending now, and over ``people`` unevenly (a few
people ask for much more than most, as in a real workspace). Each finished request
carries the story the bot would have written for it: asked, auto-approved or approved by
the approver, granted and revoked; or denied, expired undecided, cancelled, failed. Each
audit event's post to the audit channel is in the outbox, sent, as the bot keeps it (the
outbox's look for due messages runs beside them all). The audit chain is signed with the
benchmarks' audit key (``bench.harness.AUDIT_KEY``), so ``jit-bot audit verify`` passes on
it and a bot started on it carries on the same chain;
request-less events (``jit-bot sync`` by someone) make up the count to ``events``.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bench.harness import APPROVAL_ENV, APPROVER, AUDIT_CHANNEL, AUDIT_KEY, AUTO_ENV, ROLE, TARGET
from bot.audit.stored import canonical_json
from bot.audit.trail import keyed_hash
from bot.audit_key import AuditKey
from bot.names import BOT_ACTOR, AuditAction
from bot.slack import audit_posts
from bot.storage.db import make_engine, upgrade
from bot.storage.models import OutboxStatus, Status, TargetStatus

#: Rows handed to the database at a time.
CHUNK = 20_000
#: Request ids: R- and eight base-36 digits, spread over the id space like random ones.
_ID_SPACE = 36**8
_ID_STRIDE = 1_000_003  # a prime: i → i × stride mod 36⁸ never repeats
_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: How finished requests ended, and how often (the rest were revoked at their end).
_ENDINGS = (
    (Status.DENIED, 0.06),
    (Status.EXPIRED, 0.05),
    (Status.CANCELLED, 0.06),
    (Status.FAILED, 0.03),
)


@dataclass(frozen=True)
class Filled:
    requests: int
    events: int
    votes: int
    people: int
    seconds: float


def person(index: int) -> str:
    """The Slack user id of the ``index``-th person of the history."""
    return f"UHIST{index:05d}"


def email(user_id: str) -> str:
    return f"{user_id.lower()}@example.com"


def request_id(index: int) -> str:
    number = index * _ID_STRIDE % _ID_SPACE
    digits = []
    for _ in range(8):
        number, digit = divmod(number, 36)
        digits.append(_DIGITS[digit])
    return "R-" + "".join(reversed(digits))


def fill(
    url: str,
    *,
    requests: int,
    events: int,
    people: int = 2_000,
    days: int = 365,
    seed: int = 23,
    now: datetime | None = None,
) -> Filled:
    """Migrate the database at ``url`` and write the history into it (empty tables
    expected: ids start at 1)."""
    started = time.perf_counter()
    engine = make_engine(url)
    try:
        upgrade(engine)
        story = _Story(requests, events, people, days, seed, now or datetime.now(UTC))
        sink = _SqliteSink(engine) if engine.dialect.name == "sqlite" else _PostgresSink(engine)
        with sink:
            for batch in story.batches():
                sink.write(batch)
    finally:
        engine.dispose()
    return Filled(
        requests, story.event_count, story.vote_count, people, time.perf_counter() - started
    )


@dataclass
class _Batch:
    requests: list[tuple[Any, ...]]
    targets: list[tuple[Any, ...]]
    votes: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]
    posts: list[tuple[Any, ...]]


REQUEST_COLUMNS = (
    "id",
    "requester_id",
    "requester_email",
    "role",
    "environment",
    "reason",
    "duration_seconds",
    "status",
    "rule_index",
    "required_approvals",
    "auto_approve",
    "allow_self_approval",
    "approvers",
    "created_at",
    "updated_at",
    "decided_at",
    "granted_at",
    "expires_at",
    "ended_at",
    "ended_by",
    "end_reason",
    "version",
    "break_glass",
    "quiet_approvers",
    "watchers",
)
TARGET_COLUMNS = (
    "request_id",
    "position",
    "provider",
    "spec",
    "target_key",
    "description",
    "status",
    "preexisting",
    "granted_at",
    "revoked_at",
)
VOTE_COLUMNS = ("request_id", "voter_id", "decision", "created_at", "voter_email")
EVENT_COLUMNS = (
    "id",
    "at",
    "actor",
    "action",
    "request_id",
    "details",
    "prev_hash",
    "hash",
    "key_id",
)
POST_COLUMNS = (
    "created_at",
    "ordering_key",
    "method",
    "payload",
    "status",
    "attempts",
    "next_attempt_at",
    "sent_at",
)
# (column, value) pairs are kept as tuples in these orders; a datetime or a JSON value
# is converted by the sink.
_DATES = {
    "access_request": {
        "created_at",
        "updated_at",
        "decided_at",
        "granted_at",
        "expires_at",
        "ended_at",
    },
    "request_target": {"granted_at", "revoked_at"},
    "vote": {"created_at"},
    "audit_event": {"at"},
    "outbox_message": {"created_at", "next_attempt_at", "sent_at"},
}
_JSON = {
    "access_request": {"approvers", "quiet_approvers", "watchers"},
    "request_target": {"spec"},
    "vote": set(),
    "audit_event": {"details"},
    "outbox_message": {"payload"},
}
_TABLES = (
    ("access_request", REQUEST_COLUMNS, "requests"),
    ("request_target", TARGET_COLUMNS, "targets"),
    ("vote", VOTE_COLUMNS, "votes"),
    ("audit_event", EVENT_COLUMNS, "events"),
    ("outbox_message", POST_COLUMNS, "posts"),
)


class _Story:
    """The rows of the history, in batches, in the order they happened."""

    def __init__(
        self, requests: int, events: int, people: int, days: int, seed: int, now: datetime
    ) -> None:
        self.requests, self.events, self.people = requests, events, people
        self.rng = random.Random(seed)
        self.start = now - timedelta(days=days)
        self.step = timedelta(days=days) / max(requests, 1)
        self.key = AuditKey(AUDIT_KEY.encode(), "bench")
        self.key_id = self.key.key_id  # a property that signs: asked once
        self.previous = ""
        self.event_count = self.vote_count = 0
        self.spec = {"provider": "webhook", "name": TARGET, "url": "http://127.0.0.1:9"}
        self.description = f"webhook {TARGET}"
        # Mean story length ≈ 4.8 events: the rest of ``events`` are syncs, spread evenly.
        self.spare = max(events - round(requests * 4.83), 0)

    def batches(self) -> Iterator[_Batch]:
        batch = _Batch([], [], [], [], [])
        for index in range(self.requests):
            self._request(index, batch)
            if len(batch.events) >= CHUNK:
                yield batch
                batch = _Batch([], [], [], [], [])
        while self.event_count < self.events:  # a short history: syncs make up the count
            self._event(
                batch,
                self.start + self.step * self.requests,
                "UHIST00000",
                AuditAction.SYNC,
                None,
                {},
            )
            if len(batch.events) >= CHUNK:
                yield batch
                batch = _Batch([], [], [], [], [])
        yield batch

    def _request(self, index: int, batch: _Batch) -> None:
        rng = self.rng
        rid = request_id(index)
        user = person(min(int(self.people * rng.random() ** 2), self.people - 1))
        asked = self.start + self.step * index + timedelta(seconds=rng.random() * 60)
        auto = rng.random() < 0.5
        environment = AUTO_ENV if auto else APPROVAL_ENV
        duration = 3600 * rng.choice((1, 1, 2, 4))
        roll, status = rng.random(), Status.REVOKED
        for ending, share in _ENDINGS:
            if roll < share:
                status = ending
                break
            roll -= share
        if auto and status in (Status.DENIED, Status.EXPIRED):
            status = Status.REVOKED  # nobody decides an auto-approved request
        decided = asked + timedelta(seconds=2 if auto else 30 + rng.random() * 600)
        granted = expires = ended = None
        ended_by = end_reason = None
        reason = f"INC-{index % 100_000:05d} history"
        self._event(
            batch,
            asked,
            user,
            AuditAction.REQUESTED,
            rid,
            {
                "role": ROLE,
                "environment": environment,
                "requester": user,
                "requester_email": email(user),
                "reason": reason,
                "duration": f"{duration // 3600}h",
                "targets": [self.description],
            },
        )
        if status in (Status.REVOKED, Status.FAILED):
            if auto:
                self._event(batch, decided, BOT_ACTOR, AuditAction.AUTO_APPROVED, rid, {})
            else:
                self._vote(batch, rid, "approve", decided)
                self._event(batch, decided, APPROVER, AuditAction.APPROVAL_RECORDED, rid, {})
                self._event(batch, decided, BOT_ACTOR, AuditAction.APPROVED, rid, {})
            if status == Status.FAILED:
                ended = decided + timedelta(seconds=3)
                self._event(
                    batch, ended, BOT_ACTOR, AuditAction.GRANT_FAILED, rid, {"error": "HTTP 500"}
                )
            else:
                granted = decided + timedelta(seconds=1 + rng.random())
                expires = granted + timedelta(seconds=duration)
                early = rng.random() < 0.3
                ended = granted + timedelta(seconds=rng.random() * duration) if early else expires
                ended_by, end_reason = (user, "done") if early else (BOT_ACTOR, "expired")
                self._event(
                    batch,
                    granted,
                    BOT_ACTOR,
                    AuditAction.GRANTED,
                    rid,
                    {"expires_at": expires.isoformat()},
                )
                self._event(
                    batch, ended, ended_by, AuditAction.REVOKE_STARTED, rid, {"reason": end_reason}
                )
                self._event(
                    batch,
                    ended + timedelta(seconds=1),
                    BOT_ACTOR,
                    AuditAction.REVOKED,
                    rid,
                    {"reason": end_reason},
                )
        elif status == Status.DENIED:
            self._vote(batch, rid, "deny", decided)
            self._event(batch, decided, APPROVER, AuditAction.DENIED, rid, {})
            ended = decided
        elif status == Status.EXPIRED:
            ended = decided = asked + timedelta(hours=1)
            self._event(
                batch, decided, BOT_ACTOR, AuditAction.EXPIRED_UNDECIDED, rid, {"pending_ttl": "1h"}
            )
        else:
            ended = decided = asked + timedelta(seconds=rng.random() * 300)
            self._event(batch, decided, user, AuditAction.CANCELLED, rid, {})
        spare = (index + 1) * self.spare // self.requests - index * self.spare // self.requests
        for _ in range(spare):
            self._event(batch, asked, user, AuditAction.SYNC, None, {})
        updated = ended + timedelta(seconds=1) if ended else decided
        batch.requests.append(
            (
                rid,
                user,
                email(user),
                ROLE,
                environment,
                reason,
                duration,
                status.value,
                0 if auto else 1,
                0 if auto else 1,
                auto,
                False,
                [] if auto else [APPROVER],
                asked,
                updated,
                decided,
                granted,
                expires,
                ended if granted else None,
                ended_by,
                end_reason,
                6,
                False,
                [],
                [],
            )
        )
        target_status = {
            Status.REVOKED: TargetStatus.REVOKED,
            Status.FAILED: TargetStatus.FAILED,
        }.get(status, TargetStatus.PENDING)
        batch.targets.append(
            (
                rid,
                0,
                "webhook",
                self.spec,
                f"webhook:{TARGET}",
                self.description,
                target_status.value,
                False,
                granted,
                ended + timedelta(seconds=1) if granted and ended else None,
            )
        )

    def _vote(self, batch: _Batch, rid: str, decision: str, at: datetime) -> None:
        self.vote_count += 1
        batch.votes.append((rid, APPROVER, decision, at, "approver@example.com"))

    def _event(
        self,
        batch: _Batch,
        at: datetime,
        actor: str,
        action: AuditAction,
        rid: str | None,
        details: dict[str, Any],
    ) -> None:
        if self.event_count >= self.events:
            return
        self.event_count += 1
        event = {
            "id": self.event_count,
            "at": at,
            "actor": actor,
            "action": action.value,
            "request_id": rid,
            "details": details,
            "key_id": self.key_id,
        }
        digest = keyed_hash(self.key, self.previous, event)
        batch.events.append(
            (
                self.event_count,
                at,
                actor,
                action.value,
                rid,
                details,
                self.previous,
                digest,
                self.key_id,
            )
        )
        self.previous = digest
        line = audit_posts.marker(AUDIT_CHANNEL, f"{action.value} {rid or ''} by {actor}")
        sent = OutboxStatus.SENT
        batch.posts.append((at, audit_posts.KEY, audit_posts.METHOD, line, sent, 1, at, at))


class _SqliteSink:
    """Rows into SQLite on the driver's own connection, in one transaction."""

    def __init__(self, engine: sa.Engine) -> None:
        self.connection = sqlite3.connect(engine.url.database or "", isolation_level=None)

    def __enter__(self) -> _SqliteSink:
        self.connection.execute("PRAGMA synchronous=OFF")
        self.connection.execute("BEGIN")
        return self

    def __exit__(self, *exc: object) -> None:
        # No ANALYZE: a bot's own SQLite file never has statistics, so neither does this.
        self.connection.execute("COMMIT" if exc[0] is None else "ROLLBACK")
        self.connection.close()

    def write(self, batch: _Batch) -> None:
        for table, columns, attribute in _TABLES:
            rows = getattr(batch, attribute)
            if not rows:
                continue
            convert = _converter(table, columns, _sqlite_date)
            marks = ", ".join("?" * len(columns))
            self.connection.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                (convert(row) for row in rows),
            )


class _PostgresSink:
    """Rows into PostgreSQL by COPY, in one transaction; sequences moved past them."""

    def __init__(self, engine: sa.Engine) -> None:
        self.raw = engine.raw_connection()

    def __enter__(self) -> _PostgresSink:
        return self

    def __exit__(self, *exc: object) -> None:
        cursor = self.raw.cursor()
        if exc[0] is None:
            for table in ("request_target", "vote", "audit_event"):
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)"
                )
            self.raw.commit()
            self.raw.driver_connection.autocommit = True  # type: ignore[union-attr]
            cursor.execute("VACUUM ANALYZE")
        else:
            self.raw.rollback()
        self.raw.close()

    def write(self, batch: _Batch) -> None:
        cursor = self.raw.cursor()
        for table, columns, attribute in _TABLES:
            rows = getattr(batch, attribute)
            if not rows:
                continue
            convert = _converter(table, columns, lambda moment: moment)
            statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
            with cursor.copy(statement) as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row(convert(row))


def _sqlite_date(moment: datetime) -> str:
    # As SQLAlchemy stores a DateTime in SQLite: naive UTC, always with microseconds.
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _converter(table: str, columns: Sequence[str], date: Any) -> Any:
    dates = {i for i, c in enumerate(columns) if c in _DATES[table]}
    documents = {i for i, c in enumerate(columns) if c in _JSON[table]}

    def convert(row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        for i in dates:
            if values[i] is not None:
                values[i] = date(values[i])
        for i in documents:
            values[i] = canonical_json(values[i])  # as the bot stores them
        return tuple(values)

    return convert


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.history_fill", description=__doc__)
    parser.add_argument("url", help="database URL (SQLAlchemy form), empty or new")
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--people", type=int, default=2_000)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args(argv)
    done = fill(
        args.url, requests=args.requests, events=args.events, people=args.people, days=args.days
    )
    print(
        f"{done.requests} requests, {done.events} audit events, {done.votes} votes, "
        f"{done.people} people in {done.seconds:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
