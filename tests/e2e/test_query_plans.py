"""Every read the bot makes while people use it stays on an index as history piles up.

A bot is started on a PostgreSQL database that already holds a history (finished
requests, their targets, votes and audit events, from ``bench.history_fill``, analysed as
autovacuum would), and driven as Slack drives it: a request asked, ``/jit list`` by a
newcomer, by someone with a long history and by the approver of half of it, the App Home
opened, a sweep, reminders, escalations and nudges. Every SELECT the bot sent meanwhile is
then explained, with the values it was sent with, and none of them may read a whole
table that history grows (a sequential scan)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text

from bench.harness import APPROVER
from bench.history_fill import fill, person
from tests.conftest import ALICE, Bot
from tests.e2e.helpers import submit

#: Tables that grow with every request for as long as the bot runs.
HISTORY = {"access_request", "request_target", "vote", "audit_event"}
#: Big enough that the planner prefers an index wherever one serves (a few seconds).
REQUESTS, PEOPLE = 20_000, 100


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """Our PostgreSQL database (this module needs its planner), with a history in it."""
    if not os.environ.get("JIT_TEST_DATABASE_URL"):
        pytest.skip("JIT_TEST_DATABASE_URL is not set: plans are PostgreSQL's EXPLAIN")
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


def _selects_while(bot: Bot, work: Callable[[], None]) -> list[tuple[str, Any]]:
    """The SELECT statements (with their parameters) the bot sent while ``work`` ran."""
    sent: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    engine = bot.runtime.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        work()
        bot.settle()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    return sent


def _full_scans(plan: dict[str, Any]) -> list[str]:
    """The history tables a plan reads from end to end."""
    found = []
    if plan.get("Node Type") == "Seq Scan" and plan.get("Relation Name") in HISTORY:
        found.append(plan["Relation Name"])
    for child in plan.get("Plans", ()):
        found += _full_scans(child)
    return found


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

    statements = _selects_while(bot, use)
    touching = [(s, p) for s, p in statements if any(table in s for table in HISTORY)]
    assert len(touching) > 20, statements  # the list, the Home, the sweep all read

    scans = {}
    with bot.runtime.engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        for statement, parameters in touching:
            cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
            [[document]] = cursor.fetchall()
            plan = (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
            if tables := _full_scans(plan):
                scans[" ".join(statement.split())] = tables
    assert scans == {}
