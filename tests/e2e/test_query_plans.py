"""Every read the bot makes while people use it stays on an index as history piles up.

A bot is started on a database that already holds a history (finished requests, their
targets, votes, audit events and the outbox's sent posts, from ``bench.history_fill``; on
PostgreSQL analysed as autovacuum would, on SQLite without statistics, as a bot's own
file always is), and driven as Slack drives it: a request asked, ``/jit list`` by a
newcomer, by someone with a long history and by the approver of half of it, the App Home
opened, a sweep, reminders, escalations and nudges. Every SELECT the bot sent meanwhile
is then explained, with the values it was sent with, and none of them may read a whole
table that history grows (a sequential scan on PostgreSQL; a SCAN on SQLite), nor, on
SQLite, look rows up by a column it asks to be NULL (the extends index, where "extends IS
NULL" is nearly every request: a lookup there walks the whole history). And a batch of
the sweeper's revocations beside thousands of live grants reads and writes only its own
rows."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from psycopg import ClientCursor
from sqlalchemy import create_engine, event, insert, select, text

from bench.harness import APPROVER
from bench.history_fill import fill, person
from bot.slack import audit_posts
from bot.storage.models import (
    AccessRequest,
    OutboxMessage,
    OutboxStatus,
    RequestTarget,
    table_of,
)
from providers.base import Principal, TargetSpec
from providers.fake import FakeProvider
from providers.sessions import Denial, EndsSessions, SessionScope
from tests.conftest import ALICE, Bot
from tests.e2e.helpers import submit

#: Tables that grow with every request for as long as the bot runs.
HISTORY = {"access_request", "request_target", "vote", "audit_event", "outbox_message"}
#: Partial indexes, of the rows still to be worked on only (the outbox's pending
#: messages): reading one from end to end does not walk the history.
LIVE_ROWS_ONLY = {"ix_outbox_message_pending"}
#: Big enough that the planner prefers an index wherever one serves (a few seconds).
REQUESTS, PEOPLE = 20_000, 100


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, sqlite_dir: Path) -> str:
    """A database of each kind with a history in it."""
    if request.param == "sqlite":
        directory = Path(tempfile.mkdtemp(prefix="test-", dir=sqlite_dir))
        url = f"sqlite:///{directory / 'jit.db'}"
        fill(url, requests=REQUESTS, events=2 * REQUESTS, people=PEOPLE)
        return url
    if not os.environ.get("JIT_TEST_DATABASE_URL"):
        pytest.skip("JIT_TEST_DATABASE_URL is not set")
    postgres_url: str = request.getfixturevalue("postgres_url")
    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    fill(postgres_url, requests=REQUESTS, events=2 * REQUESTS, people=PEOPLE)
    return postgres_url


@pytest.fixture
def history_bot(make_bot: Callable[..., Bot]) -> Iterator[Bot]:
    bot = make_bot()
    for user in (person(0), person(PEOPLE - 1), APPROVER):
        bot.slack.add_user(user, f"{user.lower()}@example.com", user.lower())
    yield bot


def _statements_while(
    bot: Bot, work: Callable[[], None], kinds: tuple[str, ...] = ("SELECT",)
) -> list[tuple[str, Any]]:
    """The statements of these ``kinds`` (with their parameters) the bot sent while
    ``work`` ran; statements sent with many rows at once count once, with the first."""
    sent: list[tuple[str, Any]] = []

    def seen(
        _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool
    ) -> None:
        if statement.lstrip().upper().startswith(kinds):
            sent.append((statement, parameters[0] if many else parameters))

    engine = bot.runtime.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        work()
        bot.settle()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    return sent


def _full_scans(plan: dict[str, Any]) -> list[str]:
    """The history tables a PostgreSQL plan reads from end to end."""
    found = []
    if plan.get("Node Type") == "Seq Scan" and plan.get("Relation Name") in HISTORY:
        found.append(plan["Relation Name"])
    for child in plan.get("Plans", ()):
        found += _full_scans(child)
    return found


# A step of SQLite's EXPLAIN QUERY PLAN: "SCAN t [USING …]" reads all of t (or all of an
# index of it); "SEARCH t USING INDEX i (a=? AND b>?)" looks rows up by a, then b.
# Unless the statement reads the table in its id's order up to a LIMIT, with no WHERE
# (the audit chain's last event): that scan stops at once, where the LIMIT says.
_FIRST_ROWS = re.compile(r"^SELECT (?:(?!WHERE).)* ORDER BY \w+\.id(?: DESC)? LIMIT ")
_SQLITE_STEP = re.compile(r"^(SCAN|SEARCH) (\w+)(?: AS \w+)?(?: USING .*?INDEX \w+)?(?: \((.*)\))?")


def _sqlite_walks(statement: str, steps: list[str]) -> list[str]:
    """The steps of a SQLite plan that walk a history table: a scan of it, or a lookup
    whose first column the statement asks to be NULL (SQLite, without statistics, takes
    that for a selective lookup; on a column NULL for nearly every row it is a scan)."""
    found, statement = [], " ".join(statement.split())
    for step in steps:
        matched = _SQLITE_STEP.match(step)
        if matched is None:
            continue
        kind, name, looked_up = matched.groups()
        aliased = re.search(rf"(\w+) AS {name}\b", statement)
        if (aliased[1] if aliased else name) not in HISTORY:
            continue
        first = re.match(r"\w+", looked_up or "")
        if kind == "SCAN" and any(f"USING INDEX {index}" in step for index in LIVE_ROWS_ONLY):
            continue
        if (kind == "SCAN" and not _FIRST_ROWS.match(statement)) or (
            first and re.search(rf"\.{first[0]} IS NULL\b", statement)
        ):
            found.append(step)
    return found


def _plans(
    bot: Bot,
    touching: list[tuple[str, Any]],
    sqlite_walks: Callable[[str, list[str]], list[str]] = _sqlite_walks,
) -> dict[str, list[str]]:
    """Statement → what its plan reads from end to end (statements that read none left
    out), each explained with the values it was sent with. ``sqlite_walks`` names the
    steps of a SQLite plan that count; on PostgreSQL, scans of the history do."""
    walks = {}
    with bot.runtime.engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        sqlite = connection.dialect.name == "sqlite"
        for statement, parameters in touching:
            if sqlite:
                cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
                found = sqlite_walks(statement, [row[3] for row in cursor.fetchall()])
            else:
                cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
                [[document]] = cursor.fetchall()
                parsed = json.loads(document) if isinstance(document, str) else document
                found = _full_scans(parsed[0]["Plan"])
            if found:
                walks[" ".join(statement.split())] = found
    return walks


def test_every_read_of_a_long_history_uses_an_index(history_bot: Bot) -> None:
    bot = history_bot

    def use() -> None:
        submit(bot, ALICE, "prod-support prod 1h INC-1 checkout errors")  # one pending
        for user in (ALICE, person(0), person(PEOPLE - 1), APPROVER):
            bot.command(user, "list")
            bot.sim.open_home(user)
        bot.service.sweep()
        bot.service.remind_approvers()
        bot.service.escalate()
        bot.service.nudge()
        bot.service.upcoming_expiries()

    statements = _statements_while(bot, use)
    touching = [(s, p) for s, p in statements if any(table in s for table in HISTORY)]
    assert len(touching) > 20, statements  # the list, the Home, the sweep all read

    assert _plans(bot, touching) == {}


#: Live grants (active, every one on its own person) beside the history: a bot that was
#: down holds thousands, and works them off in batches.
LIVE = 2_000


def _clone_live_grants(bot: Bot, request_id: str, count: int) -> list[str]:
    """``count`` copies of an active grant and its targets, each for another person."""
    ids = [f"R-LIVE{i:05d}" for i in range(count)]
    requests, targets = table_of(AccessRequest), table_of(RequestTarget)
    with bot.runtime.engine.begin() as connection:
        [request] = connection.execute(select(requests).where(requests.c.id == request_id))
        rows = connection.execute(select(targets).where(targets.c.request_id == request_id))
        [target] = [{k: v for k, v in row._mapping.items() if k != "id"} for row in rows]
        connection.execute(
            insert(requests),
            [
                {
                    **request._mapping,
                    "id": clone,
                    "requester_id": f"ULIVE{i:05d}",
                    "requester_email": f"ulive{i:05d}@example.com",
                    "origin": None,
                }
                for i, clone in enumerate(ids)
            ],
        )
        connection.execute(insert(targets), [{**target, "request_id": clone} for clone in ids])
        if connection.dialect.name == "postgresql":
            connection.execute(text("ANALYZE"))  # as autovacuum would, after so many
    return ids


class _EndsSessions(FakeProvider, EndsSessions):
    """The fake cloud, whose sessions outlive a grant (as AWS's do): revoking a grant
    reads its targets again to end them."""

    def session_scope(
        self, principal: Principal, target: TargetSpec, *, recorded: str | None = None
    ) -> SessionScope | None:
        return SessionScope("scope", principal.email, timedelta(hours=1))

    def denial_name(self, request_id: str) -> str:
        return f"jit-{request_id}"

    def write_denials(
        self, target: TargetSpec, denials: Sequence[Denial], *, enforce: bool = False
    ) -> bool:
        return True


def test_a_backlog_of_live_grants_is_revoked_without_walking_them(
    make_bot: Callable[..., Bot],
) -> None:
    # A batch of the sweeper's revokes as many grants as it holds, whatever the number of
    # live grants beside them: every read and compare-and-set it makes starts from the
    # batch's own requests or people, never from every live grant (a lookup by a live
    # status), which made a batch cost grow with the backlog (quadratic recovery: 0.2 s
    # a batch at 60,000), nor from every target ever revoked (ending the sessions a grant
    # leaves).
    bot = make_bot(providers={"fake": _EndsSessions()})
    first = submit(bot, ALICE, "db-admin dev 30m a live grant")
    assert bot.service.get(first).status == "active"
    live = _clone_live_grants(bot, first, LIVE)
    batch = live[:50]

    def revoke() -> None:
        bot.service.revoke_many(batch, actor="UADMIN", reason="a batch")

    statements = _statements_while(bot, revoke, ("SELECT", "UPDATE", "DELETE"))
    assert {bot.service.get(rid).status for rid in batch} == {"revoked"}
    assert bot.service.get(live[-1]).status == "active"
    touching = [(s, p) for s, p in statements if any(table in s for table in HISTORY)]
    assert len(touching) >= 5, statements

    # On PostgreSQL only scans of the history count: with statistics, a lookup by a status
    # few rows have at the time (the batch's own "revoking") is the planner's right choice.
    assert _plans(bot, touching, _sqlite_live_walks) == {}


#: Tables whose live rows (a status that is not final) a backlog fills by the thousand.
LIVE_TABLES = {"access_request", "request_target"}


def _sqlite_live_walks(statement: str, steps: list[str]) -> list[str]:
    """The steps of a SQLite plan that walk the history, or every live grant: a lookup of
    a live table by its status."""
    found = _sqlite_walks(statement, steps)
    for step in steps:
        matched = _SQLITE_STEP.match(step)
        if matched and matched[2] in LIVE_TABLES and (matched[3] or "").startswith("status"):
            found.append(step)
    return found


#: Messages sent over a long history: the outbox keeps each one it sent.
SENT = 30_000


def test_the_outbox_finds_its_pending_messages_without_walking_the_sent_ones(
    history_bot: Bot,
) -> None:
    # The outbox looks for due messages after every commit that queued one. On
    # PostgreSQL each look is a prepared statement, planned once for any value
    # (psycopg prepares a statement from its fifth run): that generic plan must not walk
    # every message ever sent to find the few pending ones.
    bot = history_bot
    bot.settle()
    outbox = table_of(OutboxMessage)
    now = bot.clock.now()
    with bot.runtime.engine.begin() as connection:
        connection.execute(
            insert(outbox),
            [
                {
                    "created_at": now,
                    # The audit channel's lines, all under its one key, as a year's are.
                    "ordering_key": audit_posts.KEY,
                    "method": audit_posts.METHOD,
                    "payload": {},
                    "status": OutboxStatus.SENT,
                    "attempts": 1,
                    "next_attempt_at": now,
                    "sent_at": now,
                }
                for i in range(SENT)
            ],
        )
        if connection.dialect.name == "postgresql":
            connection.execute(text("ANALYZE outbox_message"))

    statements = _statements_while(
        bot, lambda: submit(bot, ALICE, "prod-support prod 1h INC-1 checkout errors")
    )
    looks = [(s, p) for s, p in statements if "FROM outbox_message" in s]
    assert looks, statements

    if bot.runtime.engine.dialect.name == "sqlite":  # SQLite plans with the values anyway
        assert _plans(bot, looks) == {}
        return
    with bot.runtime.engine.connect() as connection:
        driver = connection.connection.driver_connection
        walks = {s: _generic_plan_walks(driver, s, p) for s, p in looks}
    assert {" ".join(s.split()): w for s, w in walks.items() if w} == {}


def _generic_plan_walks(driver: Any, statement: str, parameters: Any) -> list[str]:
    """Where PostgreSQL's generic plan of the statement (as a prepared statement gets it)
    reads many outbox rows to keep few: a sequential scan, or an index walked through
    rows its filter then throws away."""
    names: list[str] = []

    def numbered(found: re.Match[str]) -> str:
        names.append(found[1])
        return f"${len(names)}"

    prepared = re.sub(r"%\((\w+)\)s", numbered, statement).replace("%%", "%")
    arguments = ClientCursor(driver).mogrify(
        ", ".join(["%s"] * len(names)), [parameters[name] for name in names]
    )
    cursor = driver.cursor()
    cursor.execute("SET plan_cache_mode = force_generic_plan")
    cursor.execute(f"PREPARE outbox_look AS {prepared}")
    try:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE outbox_look({arguments})")
        [[document]] = cursor.fetchall()
    finally:
        cursor.execute("DEALLOCATE outbox_look")
        cursor.execute("RESET plan_cache_mode")
    parsed = json.loads(document) if isinstance(document, str) else document
    return _outbox_walks(parsed[0]["Plan"])


def _outbox_walks(plan: dict[str, Any]) -> list[str]:
    found = []
    if plan.get("Relation Name") == "outbox_message" and (
        plan["Node Type"] == "Seq Scan" or plan.get("Rows Removed by Filter", 0) > SENT // 10
    ):
        found.append(f"{plan['Node Type']} on {plan.get('Index Name', 'the table')}")
    for child in plan.get("Plans", ()):
        found += _outbox_walks(child)
    return found
