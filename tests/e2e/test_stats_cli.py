"""`jit-bot stats` run as a process against the trail a running bot wrote (SQLite and
PostgreSQL): requests asked, approved, denied, auto-approved, extended and left to expire
over the Slack wire with the fake clock, then counted from the audit trail alone."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta
from typing import Any

from tests.conftest import ALICE, BOB, SEC1, Bot
from tests.e2e.helpers import click, open_deny, submit
from tests.fakes.processes import run_cli
from tests.fakes.slack_client import text_value

SECTIONS = ("Requests", "Time to decision", "Approvers", "Break-glass", "Extensions")


def _stats(bot: Bot, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(["stats", *args], {"DATABASE_URL": bot.settings.database_url})


def _json(bot: Bot, since: datetime, until: datetime) -> dict[str, Any]:
    done = _stats(
        bot, "--format", "json", "--since", since.isoformat(), "--until", until.isoformat()
    )
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def _decide_a_few(bot: Bot) -> dict[str, datetime]:
    """Six requests, asked at these moments: prod-support in prod approved by Bob after
    30 s; db-admin in prod approved by Bob after 60 s and Sec1 after 120 s (two of N);
    prod-support in staging denied by Sec1 after 5 s; db-admin in dev approved by rule and
    extended by rule; prod-support in staging left to expire."""
    asked = {"start": bot.clock.now()}
    one = submit(bot, ALICE, "prod-support prod 1h INC-1")
    bot.clock.advance(timedelta(seconds=30))
    assert "granting access now" in click(bot, BOB, "approve", one)
    two = submit(bot, ALICE, "db-admin prod 1h migration")
    bot.clock.advance(timedelta(seconds=60))
    assert "(1 of 2)" in click(bot, BOB, "approve", two)
    bot.clock.advance(timedelta(seconds=60))
    assert "granting access now" in click(bot, SEC1, "approve", two)
    three = submit(bot, ALICE, "prod-support staging 1h a look")
    bot.clock.advance(timedelta(seconds=5))
    view = open_deny(bot, SEC1, three)
    bot.sim.submit_view(SEC1, view, {"reason": {"reason": text_value("use staging-ro")}})
    bot.settle()
    asked["fourth"] = bot.clock.now()
    four = submit(bot, ALICE, "db-admin dev 30m fix a row")
    extended = bot.command(ALICE, f"extend {four} 30m another row")["text"]
    assert "approved by rule" in extended, extended
    submit(bot, ALICE, "prod-support staging 1h nobody looks")
    bot.clock.advance(timedelta(hours=1, seconds=1))
    bot.service.sweep()
    bot.settle()
    return asked


def test_stats_count_what_the_bot_recorded_and_the_window_selects_by_asking(bot: Bot) -> None:
    asked = _decide_a_few(bot)
    day = asked["start"] + timedelta(days=1)
    doc = _json(bot, asked["start"], day)

    assert doc["requests"] == {
        "asked": 6,
        "auto_approved": 2,
        "auto_approved_share": 0.3333,
        "expired_undecided": 1,
    }
    assert [
        (t["role"], t["environment"], t["decided"], t["p50_seconds"], t["p90_seconds"])
        for t in doc["time_to_decision"]
    ] == [
        ("db-admin", "prod", 1, 120.0, 120.0),
        ("prod-support", "prod", 1, 30.0, 30.0),
        ("prod-support", "staging", 1, 5.0, 5.0),
    ]
    by = {a["approver"]: a for a in doc["approvers"]}
    assert set(by) == {BOB, SEC1}
    # Bob: approved after 30 s and 60 s. Sec1: approved after 120 s, denied after 5 s.
    assert (by[BOB]["approvals"], by[BOB]["denials"], by[BOB]["approvals_per_day"]) == (2, 0, 2.0)
    assert (by[BOB]["median_seconds_to_click"], by[BOB]["approval_rate"]) == (45.0, 1.0)
    assert (by[SEC1]["approvals"], by[SEC1]["denials"], by[SEC1]["approval_rate"]) == (1, 1, 0.5)
    assert by[SEC1]["median_seconds_to_click"] == 62.5
    assert [by[p]["share_of_decisions"] for p in (BOB, SEC1)] == [0.5, 0.5]
    assert not any(a["possible_rubber_stamping"] for a in doc["approvers"])
    assert doc["break_glass"] == {"uses": 0, "reviewed": 0, "review_completion": None}
    # db-admin was granted twice (prod and dev) and extended once.
    assert doc["extensions"] == [
        {"role": "db-admin", "granted": 2, "extensions": 1, "extensions_per_grant": 0.5},
        {"role": "prod-support", "granted": 1, "extensions": 0, "extensions_per_grant": 0.0},
    ]
    assert doc["window"]["days"] == 1.0

    later = _json(bot, asked["fourth"], day)  # the dev request, its extension, the expired one
    assert (later["requests"]["asked"], later["requests"]["auto_approved"]) == (3, 2)
    assert (later["approvers"], later["time_to_decision"]) == ([], [])


def test_the_table_names_every_section_and_prints_plain_figures_to_a_pipe(bot: Bot) -> None:
    _decide_a_few(bot)
    done = _stats(bot)
    assert done.returncode == 0, done.stderr
    assert [s for s in SECTIONS if s not in done.stdout] == []
    assert BOB in done.stdout and SEC1 in done.stdout and "db-admin" in done.stdout
    assert "\x1b[" not in done.stdout and done.stderr == ""


def test_a_bad_window_is_a_clear_error_with_status_2_never_a_traceback(bot: Bot) -> None:
    bad = _stats(bot, "--since", "last tuesday")
    assert bad.returncode == 2
    assert "'last tuesday' is not an ISO date or time" in bad.stderr
    backwards = _stats(bot, "--since", "2026-03-02", "--until", "2026-03-01")
    assert backwards.returncode == 2
    assert "is not before --until" in backwards.stderr
    assert "Traceback" not in bad.stderr + backwards.stderr
    empty = _stats(bot, "--format", "json")  # nothing asked yet: zeroes, no division by zero
    assert empty.returncode == 0, empty.stderr
    assert json.loads(empty.stdout)["requests"]["auto_approved_share"] is None
