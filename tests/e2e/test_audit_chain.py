"""The audit trail is tamper-evident: the verifier catches every edited, deleted or
reordered event, and the trail exports for auditors."""

from __future__ import annotations

import csv
import io
import json
import random
import subprocess
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.orm import sessionmaker

from bot import audit
from bot.audit_key import AuditKey
from bot.cli import main
from bot.storage.models import AuditEvent
from tests.conftest import ALICE, AUDIT_KEY, BOB, SEC1, Bot
from tests.e2e.helpers import click, submit
from tests.fakes.processes import run_cli

TABLE = AuditEvent.__table__  # type: ignore[attr-defined]


def _trail(bot: Bot) -> list[dict[str, Any]]:
    granted = submit(bot, ALICE, "prod-support prod 1h INC-1")
    click(bot, BOB, "approve", granted)
    click(bot, ALICE, "end_access", granted)
    denied = submit(bot, ALICE, "prod-support staging 1h INC-2")
    click(bot, SEC1, "approve", denied)
    bot.command(ALICE, "request db-admin dev 30m seed")
    bot.settle()
    with bot.runtime.engine.connect() as connection:
        return [dict(r) for r in connection.execute(select(TABLE).order_by(TABLE.c.id)).mappings()]


def _restore(bot: Bot, rows: list[dict[str, Any]]) -> None:
    with bot.runtime.engine.begin() as connection:
        connection.execute(delete(TABLE))
        connection.execute(insert(TABLE), rows)


KEY = AuditKey(AUDIT_KEY.encode(), "JIT_AUDIT_KEY")


def _verify(bot: Bot) -> audit.Verdict:
    return audit.verify(sessionmaker(bot.runtime.engine), [KEY])


def test_an_untouched_trail_verifies(bot: Bot) -> None:
    rows = _trail(bot)
    verdict = _verify(bot)
    assert verdict.ok and verdict.checked == len(rows) >= 15
    assert all(row["hash"] and row["prev_hash"] == prev["hash"] for prev, row in pairwise(rows))


# How a tamperer may change each stored column of one event, given all the rows and the
# victim's index; every value differs from the stored one. The hash must cover them all.
Edit = Callable[[random.Random, list[dict[str, Any]], int], Any]
EDITS: dict[str, Edit] = {
    "at": lambda rng, rows, i: (
        rows[i]["at"]
        + rng.choice(
            [
                timedelta(microseconds=1),
                timedelta(seconds=-1),
                timedelta(hours=-1),
                timedelta(days=1),
            ]
        )
    ),
    "actor": lambda rng, rows, i: rng.choice(
        ["UMALLORY", *sorted({r["actor"] for r in rows} - {rows[i]["actor"]})]
    ),
    "action": lambda rng, rows, i: rng.choice(
        ["tampered", *sorted({r["action"] for r in rows} - {rows[i]["action"]})]
    ),
    "request_id": lambda rng, rows, i: rng.choice(
        [
            v
            for v in [None, "R-FORGED01", *sorted({r["request_id"] or "" for r in rows} - {""})]
            if v != rows[i]["request_id"]
        ]
    ),
    "details": lambda rng, rows, i: rng.choice(
        [
            {"tampered": True},
            {**rows[i]["details"], "tampered": True},
            *([{}] if rows[i]["details"] else []),
            *[{**rows[i]["details"], k: "changed"} for k in rows[i]["details"]],
        ]
    ),
    "prev_hash": lambda rng, rows, i: rng.choice(
        ["0" * 64, *[r["hash"] for r in rows if r["hash"] != rows[i]["prev_hash"]]]
    ),
    "hash": lambda rng, rows, i: rng.choice(
        ["f" * 64, *[r["hash"] for r in rows if r["hash"] != rows[i]["hash"]]]
    ),
    # Stripped (as if written before the key), or claimed by another key.
    "key_id": lambda rng, rows, i: rng.choice(
        [None, "0" * 16, AuditKey(b"another key, not the bot's", "").key_id]
    ),
}
# Beyond editing one column: re-hash the edited event so only the chain gives it away;
# delete, swap or renumber events.
KINDS = [*EDITS, "edit_and_rehash", "delete", "reorder", "renumber"]
TRIALS_PER_KIND = 8


def test_the_verifier_catches_every_edited_deleted_or_reordered_event(bot: Bot) -> None:
    assert set(EDITS) | {"id"} == set(TABLE.c.keys()), "a new column needs an edit here"
    rows = _trail(bot)
    rng = random.Random(20261124)
    caught: Counter[str] = Counter()
    for trial in range(TRIALS_PER_KIND * len(KINDS)):
        kind = KINDS[trial % len(KINDS)]
        with bot.runtime.engine.begin() as connection:
            expected = _tamper(connection, kind, rows, rng)
        verdict = _verify(bot)
        assert not verdict.ok, f"{kind} went unnoticed"
        assert verdict.first_bad_id == expected, (kind, verdict)
        caught[kind] += 1
        _restore(bot, rows)
        assert _verify(bot).ok
    assert caught == dict.fromkeys(KINDS, TRIALS_PER_KIND)


def _tamper(
    connection: Connection, kind: str, rows: list[dict[str, Any]], rng: random.Random
) -> int:
    """Tamper with the stored trail in one way; return the id of the first event the
    verifier must name."""
    ids = [row["id"] for row in rows]

    def set_row(event_id: int, values: dict[str, Any]) -> None:
        connection.execute(update(TABLE).where(TABLE.c.id == event_id).values(values))

    if kind in EDITS:
        i = rng.randrange(len(rows))
        set_row(ids[i], {kind: EDITS[kind](rng, rows, i)})
        return ids[i]
    if kind == "edit_and_rehash":
        # The last event's own hash would then be consistent: the audit channel, where
        # every post carries the hash, is the witness for the end of the trail.
        i = rng.randrange(len(rows) - 1)
        column = rng.choice(["at", "actor", "action", "request_id", "details"])
        forged = {**rows[i], column: EDITS[column](rng, rows, i)}
        forged["hash"] = audit.keyed_hash(KEY, forged["prev_hash"], forged)
        set_row(ids[i], {column: forged[column], "hash": forged["hash"]})
        return ids[i + 1]
    if kind == "delete":
        i = rng.randrange(len(rows) - 1)  # the last one is witnessed by Slack
        connection.execute(delete(TABLE).where(TABLE.c.id == ids[i]))
        return ids[i + 1]
    if kind == "reorder":
        i, j = sorted(rng.sample(range(len(rows)), 2))
        swap = [c for c in rows[i] if c != "id"]
        set_row(ids[i], {c: rows[j][c] for c in swap})
        set_row(ids[j], {c: rows[i][c] for c in swap})
        return ids[i]
    assert kind == "renumber"
    i = rng.randrange(len(rows))
    moved = ids[-1] + rng.randint(1, 1000)
    set_row(ids[i], {"id": moved})
    # Moved to the end: the event after it no longer follows; or, if it was the last, its
    # own hash (which covers the id) no longer fits.
    return ids[i + 1] if i + 1 < len(ids) else moved


def _cli(bot: Bot, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        ["audit", *args], {"DATABASE_URL": bot.settings.database_url, "JIT_AUDIT_KEY": AUDIT_KEY}
    )


def test_audit_verify_command_reports_the_first_bad_event(bot: Bot) -> None:
    rows = _trail(bot)
    done = _cli(bot, "verify")
    assert done.returncode == 0 and f"{len(rows)} events" in done.stdout
    with bot.runtime.engine.begin() as connection:
        connection.execute(update(TABLE).where(TABLE.c.id == rows[4]["id"]).values(actor="UX"))
    done = _cli(bot, "verify")
    assert done.returncode == 1
    assert f"event #{rows[4]['id']}" in done.stderr and "changed" in done.stderr


def test_audit_export_writes_events_and_grants_for_auditors(bot: Bot, tmp_path: Path) -> None:
    rows = _trail(bot)
    done = _cli(bot, "export", "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["id"] for e in events] == [r["id"] for r in rows]
    assert events[0]["action"] == "requested" and events[0]["hash"] == rows[0]["hash"]
    # Windows (--since/--until) are covered, in process, by the tests of export windows.

    out = tmp_path / "grants.csv"
    done = _cli(bot, "export", "--kind", "grants", "--format", "csv", "--output", str(out))
    assert done.returncode == 0, done.stderr
    grants = list(csv.DictReader(io.StringIO(out.read_text())))
    by_role = {(g["role"], g["environment"]): g for g in grants}
    prod = by_role[("prod-support", "prod")]
    assert prod["requester_email"] == "alice@example.com"
    assert json.loads(prod["approved_by"]) == [BOB]
    assert prod["granted_at"] and prod["ended_at"] and prod["end_reason"] == "ended early"
    assert "fake resource `prod-db`" in prod["targets"]
    assert by_role[("db-admin", "dev")]["approved_by"] == "auto-approve rule"


def test_every_audit_post_carries_the_event_id_and_hash(bot: Bot) -> None:
    rows = _trail(bot)
    posts = bot.audit_posts()
    assert len(posts) == len(rows)
    for row, post in zip(rows, posts, strict=True):
        assert post.endswith(f"#{row['id']} `{row['hash']}`") and len(row["hash"]) == 64


# ------------------------------------------------------------------ export windows


def _timeline(bot: Bot) -> dict[str, Any]:
    """Three grants at distinct moments (ended early, still active, auto-approved) and a
    request still pending, which never granted; returns their ids and the moments."""
    start = bot.clock.now()
    ended = submit(bot, ALICE, "prod-support prod 1h INC-1")
    bot.clock.advance(timedelta(minutes=10))
    click(bot, BOB, "approve", ended)  # granted at +10m
    bot.clock.advance(timedelta(minutes=30))
    click(bot, ALICE, "end_access", ended)  # ended at +40m
    bot.clock.advance(timedelta(minutes=20))
    active = submit(bot, ALICE, "prod-support staging 1h INC-2")
    bot.clock.advance(timedelta(minutes=10))
    click(bot, SEC1, "approve", active)  # granted at +70m, expires at +130m
    bot.clock.advance(timedelta(minutes=10))
    auto = submit(bot, ALICE, "db-admin dev 30m seed")  # granted at +80m, expires at +110m
    bot.clock.advance(timedelta(minutes=5))
    pending = submit(bot, ALICE, "prod-support prod 1h INC-3")
    return {"start": start, "ended": ended, "active": active, "auto": auto, "pending": pending}


def _export(
    bot: Bot, kind: str, fmt: str, since: datetime | None, until: datetime | None
) -> list[dict[str, Any]]:
    out = io.StringIO()
    audit.export(
        sessionmaker(bot.runtime.engine), out, since=since, until=until, fmt=fmt, kind=kind
    )
    if fmt == "jsonl":
        return [json.loads(line) for line in out.getvalue().splitlines()]
    return list(csv.DictReader(io.StringIO(out.getvalue())))


def _keys(rows: list[dict[str, Any]], kind: str) -> list[Any]:
    """Event ids or granted request ids, as both formats spell them."""
    return [int(r["id"]) if kind == "events" else r["request_id"] for r in rows]


def test_export_windows_include_since_and_exclude_until_for_events(bot: Bot) -> None:
    t = _timeline(bot)
    with bot.runtime.engine.connect() as connection:
        events = list(connection.execute(select(TABLE.c.id, TABLE.c.at).order_by(TABLE.c.id)))
    moments = sorted({at for _, at in events})
    assert len(moments) >= 6  # the trail really is spread over time
    tick = timedelta(microseconds=1)
    bounds: list[datetime | None] = [
        None,
        t["start"] - tick,
        *moments,
        moments[-1] + tick,
        moments[2] + tick,
    ]
    for since in bounds:
        for until in bounds:
            expected = [
                i
                for i, at in events
                if (since is None or at >= since) and (until is None or at < until)
            ]
            for fmt in ("jsonl", "csv"):
                got = _keys(_export(bot, "events", fmt, since, until), "events")
                assert got == expected, (fmt, since, until)
    # The same instant written with another offset bounds the same events.
    plus_two = moments[3].astimezone(timezone(timedelta(hours=2)))
    at_utc = _keys(_export(bot, "events", "jsonl", moments[3], None), "events")
    assert _keys(_export(bot, "events", "jsonl", plus_two, None), "events") == at_utc


def test_export_windows_list_each_grant_whose_access_overlapped_them(bot: Bot) -> None:
    t = _timeline(bot)
    start, tick = t["start"], timedelta(microseconds=1)

    def at(minutes: int) -> datetime:
        return start + timedelta(minutes=minutes)

    ended, active, auto = t["ended"], t["active"], t["auto"]
    cases: list[tuple[datetime | None, datetime | None, list[str]]] = [
        (None, None, [ended, active, auto]),  # never the pending request: it never granted
        (None, at(10), []),  # --until is exclusive: granted exactly then is after it
        (None, at(10) + tick, [ended]),
        (at(40), None, [ended, active, auto]),  # ended exactly at --since: still listed
        (at(40) + tick, None, [active, auto]),
        (at(110), None, [active, auto]),  # an unended grant counts until it expires
        (at(110) + tick, None, [active]),
        (at(130) + tick, None, []),
        (at(40) + tick, at(70), []),  # between two grants: nobody had access
        (at(40) + tick, at(70) + tick, [active]),
        (at(20), at(30), [ended]),  # inside a grant
    ]
    for since, until, expected in cases:
        for fmt in ("jsonl", "csv"):
            got = _keys(_export(bot, "grants", fmt, since, until), "grants")
            assert got == expected, (fmt, since, until)
    [row] = _export(bot, "grants", "jsonl", at(20), at(30))
    assert (row["requester_email"], row["role"], row["environment"]) == (
        "alice@example.com",
        "prod-support",
        "prod",
    )
    assert row["approved_by"] == [BOB]
    assert (row["granted_at"], row["ended_at"]) == (at(10).isoformat(), at(40).isoformat())
    assert row["targets"] == ["fake resource `prod-db`", "fake resource `prod-logs`"]


def _main(
    bot: Bot, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str, str]:
    """``jit-bot audit ARGS`` in this process (fast enough to call often); its exit code,
    standard output and standard error."""
    monkeypatch.setenv("DATABASE_URL", bot.settings.database_url)
    monkeypatch.setenv("JIT_AUDIT_KEY", AUDIT_KEY)
    capsys.readouterr()
    try:
        code = main(["audit", *args])
    except SystemExit as refused:  # argparse refusing an argument
        code = int(refused.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_audit_export_command_bounds_both_kinds_in_both_formats(
    bot: Bot, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    t = _timeline(bot)
    since = t["start"] + timedelta(minutes=40)  # the early end
    until = t["start"] + timedelta(minutes=80)  # the auto-approved grant
    window = ["--since", since.isoformat(), "--until", until.isoformat()]
    events = bot.service.audit_events()
    expected = {
        "events": [e.id for e in events if since <= e.at < until],
        "grants": [t["ended"], t["active"]],  # not the auto-approved one, granted at --until
    }
    # Events fall on both bounds: those at --since are in, those at --until are out.
    assert {e.id for e in events if e.at == since} <= set(expected["events"])
    assert {e.id for e in events if e.at == until}.isdisjoint(expected["events"])
    assert all(any(e.at == bound for e in events) for bound in (since, until))
    for kind in ("events", "grants"):
        for fmt in ("jsonl", "csv"):
            code, out, err = _main(
                bot, capsys, monkeypatch, "export", *window, "--kind", kind, "--format", fmt
            )
            assert code == 0, err
            rows = (
                [json.loads(line) for line in out.splitlines()]
                if fmt == "jsonl"
                else list(csv.DictReader(io.StringIO(out)))
            )
            assert _keys(rows, kind) == expected[kind], (kind, fmt)
            assert f"exported {len(expected[kind])} {kind}" in err


def test_audit_export_with_a_bad_time_says_which_and_how_and_exits_non_zero(
    bot: Bot, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for option, value in [("--since", "yesterday"), ("--since", "2026-13-01"), ("--until", "soon")]:
        code, out, err = _main(bot, capsys, monkeypatch, "export", option, value)
        assert code == 2 and out == ""
        assert f"argument {option}: '{value}' is not an ISO date or time" in err
        assert "e.g. 2026-11-01" in err
        assert "Traceback" not in err
