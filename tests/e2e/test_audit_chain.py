"""The audit trail is tamper-evident: the verifier catches every edited, deleted or
reordered event, and the trail exports for auditors."""

from __future__ import annotations

import csv
import io
import json
import random
import subprocess
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import sessionmaker

from bot import audit
from bot.storage.models import AuditEvent
from tests.conftest import ALICE, BOB, SEC1, Bot
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


def _verify(bot: Bot) -> audit.Verdict:
    return audit.verify(sessionmaker(bot.runtime.engine))


def test_an_untouched_trail_verifies(bot: Bot) -> None:
    rows = _trail(bot)
    verdict = _verify(bot)
    assert verdict.ok and verdict.checked == len(rows) >= 15
    assert all(row["hash"] and row["prev_hash"] == prev["hash"] for prev, row in pairwise(rows))


def test_the_verifier_catches_every_edited_deleted_or_reordered_event(bot: Bot) -> None:
    rows = _trail(bot)
    ids = [row["id"] for row in rows]
    rng = random.Random(20261124)
    caught = 0
    for trial in range(60):
        kind = ("edit", "delete", "reorder")[trial % 3]
        with bot.runtime.engine.begin() as connection:
            if kind == "edit":
                victim = rng.choice(ids)
                field, value = rng.choice(
                    [("actor", "UMALLORY"), ("action", "tampered"), ("details", {"tampered": True})]
                )
                connection.execute(update(TABLE).where(TABLE.c.id == victim).values({field: value}))
                expected = victim
            elif kind == "delete":
                index = rng.randrange(len(ids) - 1)  # the last one is witnessed by Slack
                connection.execute(delete(TABLE).where(TABLE.c.id == ids[index]))
                expected = ids[index + 1]
            else:
                i, j = sorted(rng.sample(range(len(ids)), 2))
                first, second = rows[i], rows[j]
                swap = [c for c in first if c != "id"]
                connection.execute(
                    update(TABLE)
                    .where(TABLE.c.id == first["id"])
                    .values({c: second[c] for c in swap})
                )
                connection.execute(
                    update(TABLE)
                    .where(TABLE.c.id == second["id"])
                    .values({c: first[c] for c in swap})
                )
                expected = first["id"]
        verdict = _verify(bot)
        assert not verdict.ok, f"{kind} went unnoticed"
        assert verdict.first_bad_id == expected, (kind, verdict)
        caught += 1
        _restore(bot, rows)
        assert _verify(bot).ok
    assert caught == 60


def _cli(bot: Bot, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(["audit", *args], {"DATABASE_URL": bot.settings.database_url})


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

    now = bot.clock.now()  # every event of the trail happened at this instant
    after = (now + timedelta(seconds=1)).isoformat()
    assert _cli(bot, "export", "--since", after).stdout == ""
    assert _cli(bot, "export", "--until", now.isoformat()).stdout == ""
    window = _cli(bot, "export", "--since", now.isoformat(), "--until", after).stdout
    assert len(window.splitlines()) == len(rows)

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
        assert post.endswith(f"#{row['id']} `{row['hash'][:12]}`")
