"""``audit verify`` and ``audit export`` stream the trail: each event is read as the
database stores it and checked against the very text the trail signed when it was
written; a long trail is verified in parts, one process each, to the verdict a single
walk gives; both draw a progress bar on a terminal and nothing when piped."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy import text as sa_text
from sqlalchemy.orm import sessionmaker

from bot import audit
from bot.audit import stored
from bot.audit.trail import _canonical
from bot.audit_key import AuditKey
from bot.storage.models import AuditEvent
from tests.conftest import ALICE, AUDIT_KEY, BOB, Bot
from tests.e2e.helpers import click, submit
from tests.fakes.processes import run_cli

# What the bot never writes itself but a trail may hold: text beyond ASCII, quotes and
# control characters, nested details, a time on the whole second, no request.
ODD = [
    {
        "at": datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC),
        "actor": 'U"quoted"\\',
        "action": "sync",
        "request_id": None,
        "details": {},
        "key_id": None,
    },
    {
        "at": datetime(2026, 3, 1, 12, 0, 0, 7, tzinfo=UTC),
        "actor": "Ünïcødé 名前",
        "action": "requested",
        "request_id": "R-ODD00001",
        "details": {"z": [1, 2.5, None, True], "a": {"nested": "tab\there\nline"}, "é": "ß"},
        "key_id": "k1",
    },
]


def test_each_stored_event_reads_as_the_text_its_hash_was_made_over(bot: Bot) -> None:
    granted = submit(bot, ALICE, "prod-support prod 1h INC-1 ünïcødé “quotes”")
    click(bot, BOB, "approve", granted)
    with bot.runtime.engine.begin() as connection:
        connection.execute(insert(AuditEvent.__table__), ODD)  # type: ignore[attr-defined]
    sessions = sessionmaker(bot.runtime.engine)
    with sessions() as session:
        written = {e.id: e.model_dump() for e in session.query(AuditEvent)}
        read = [event for batch in stored.batches(session, size=3) for event in batch]

    assert [e.id for e in read] == sorted(written) and len(read) > len(ODD) + 3
    for event in read:
        for keyed in (False, True):
            assert stored.canonical(event, keyed=keyed) == _canonical(
                written[event.id], keyed=keyed
            )


def _verify(bot: Bot, stderr: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": bot.settings.database_url, "JIT_AUDIT_KEY": AUDIT_KEY}
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "audit", "verify"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )


def test_verify_draws_a_bar_on_a_terminal_and_nothing_in_a_pipe(bot: Bot) -> None:
    submit(bot, ALICE, "prod-support prod 1h INC-1")
    terminal, screen = pty.openpty()
    try:
        process = _verify(bot, screen)
        os.close(screen)
        drawn = b""
        while True:
            try:
                chunk = os.read(terminal, 4096)
            except OSError:  # the process closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
        out, _ = process.communicate(timeout=60)
    finally:
        os.close(terminal)
    assert process.returncode == 0 and b"audit trail intact" in out
    assert b"verifying the audit trail" in drawn and b"100%" in drawn

    piped = run_cli(["audit", "verify"], {"DATABASE_URL": bot.settings.database_url})
    assert piped.returncode == 0 and "audit trail intact" in piped.stdout
    assert piped.stderr == ""
    exported = run_cli(["audit", "export"], {"DATABASE_URL": bot.settings.database_url})
    assert exported.returncode == 0 and exported.stdout.count("\n") >= 1
    assert exported.stderr.splitlines() == [f"exported {exported.stdout.count(chr(10))} events"]


def _tampered() -> list[tuple[str, dict[str, Any]]]:
    """Ways to break the trail at each event: (what, the change to its row)."""
    return [
        ("edited", {"actor": "UFORGED"}),
        ("unkeyed", {"key_id": None}),
        ("re-keyed", {"key_id": "0123456789abcdef"}),
        ("relinked", {"prev_hash": "0" * 64}),
    ]


def test_a_trail_walked_in_parts_gets_the_verdict_of_one_walk(bot: Bot) -> None:
    for n in range(3):
        granted = submit(bot, ALICE, f"prod-support prod 1h INC-{n}")
        click(bot, BOB, "approve", granted)
        click(bot, ALICE, "end_access", granted)
    bot.settle()
    sessions = sessionmaker(bot.runtime.engine)
    keys = [AuditKey(AUDIT_KEY.encode(), "test")]
    table = AuditEvent.__table__  # type: ignore[attr-defined]
    with bot.runtime.engine.connect() as connection:
        rows = [dict(r) for r in connection.execute(select(table).order_by(table.c.id)).mappings()]
    assert len(rows) > 12

    whole = audit.verify(sessions, keys, workers=1)
    assert whole.ok and audit.verify(sessions, keys, workers=3) == whole
    for what, change in _tampered():
        for row in (rows[0], rows[4], rows[5], rows[len(rows) // 2], rows[-1]):
            with bot.runtime.engine.begin() as connection:
                connection.execute(update(table).where(table.c.id == row["id"]).values(change))
            one = audit.verify(sessions, keys, workers=1)
            assert not one.ok and one.first_bad_id is not None, (what, row["id"])
            assert audit.verify(sessions, keys, workers=3) == one, (what, row["id"])
            with bot.runtime.engine.begin() as connection:
                connection.execute(update(table).where(table.c.id == row["id"]).values(row))
        # And with the event gone altogether.
        with bot.runtime.engine.begin() as connection:
            connection.execute(delete(table).where(table.c.id == rows[5]["id"]))
        one = audit.verify(sessions, keys, workers=1)
        assert one.first_bad_id == rows[6]["id"]
        assert audit.verify(sessions, keys, workers=4) == one
        with bot.runtime.engine.begin() as connection:
            connection.execute(insert(table), [rows[5]])


def _details_as_stored(bot: Bot) -> dict[int, str]:
    with sessionmaker(bot.runtime.engine)() as session:
        return {e.id: e.details for batch in stored.batches(session) for e in batch}


def test_the_bot_stores_each_events_details_as_its_hash_covers_them(bot: Bot) -> None:
    granted = submit(bot, ALICE, "prod-support prod 1h INC-7 ünïcødé “quotes”")
    click(bot, BOB, "approve", granted)
    details = _details_as_stored(bot)
    assert len(details) > 3
    for text in details.values():
        assert text == stored.canonical_details(text)


def test_details_stored_in_another_form_still_verify_and_a_change_is_still_found(
    bot: Bot,
) -> None:
    """A trail written before details were stored in canonical form (``json.dumps`` with
    spaces and in the order written) verifies as before; a change in its content is found
    whether the events around it are stored one way or the other."""
    for n in range(2):
        granted = submit(bot, ALICE, f"prod-support prod 1h INC-{n} stored")
        click(bot, BOB, "approve", granted)
    sessions = sessionmaker(bot.runtime.engine)
    keys = [AuditKey(AUDIT_KEY.encode(), "test")]
    details = _details_as_stored(bot)
    ids = sorted(details)
    older = ids[: len(ids) // 2]  # the first half as an earlier version stored them

    def store(event_id: int, text: str) -> None:
        with bot.runtime.engine.begin() as connection:
            connection.execute(
                sa_text("UPDATE audit_event SET details = :d WHERE id = :id"),
                {"d": text, "id": event_id},
            )

    def reordered(text: str) -> str:
        value = json.loads(text)
        return json.dumps(dict(reversed(value.items())) if isinstance(value, dict) else value)

    for event_id in older:
        store(event_id, reordered(details[event_id]))
    assert any(_details_as_stored(bot)[i] != details[i] for i in older)
    assert audit.verify(sessions, keys, workers=1).ok
    assert audit.verify(sessions, keys, workers=2).ok

    # A changed reason, in an event stored the old way and in one stored canonically.
    for event_id, text in [(older[0], reordered(details[older[0]])), (ids[-2], details[ids[-2]])]:
        changed = json.loads(text) | {"tampered": True}
        store(event_id, json.dumps(changed))
        verdict = audit.verify(sessions, keys, workers=1)
        assert verdict.first_bad_id == event_id, verdict
        store(event_id, text)
    assert audit.verify(sessions, keys, workers=1).ok
