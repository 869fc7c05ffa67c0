"""The audit anchor: the chain is keyed with a secret that is not in the database, its
head is witnessed in the audit channel, and the grants export reads only chained events.

The attacker here can write the database but does not hold the key: they rewrite an
approver, re-chain what follows, delete the newest events, or edit the request and vote
rows the export used to read. Each is caught by ``jit-bot audit verify`` (with or without
``--against-slack``), or changes nothing.
"""

from __future__ import annotations

import csv
import io
import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker

from bot import audit
from bot.audit_key import AuditKey
from bot.cli import main
from bot.slack.notifier import SlackNotifier
from bot.storage.models import AccessRequest, AuditEvent, Vote
from tests.conftest import ALICE, AUDIT_CHANNEL, AUDIT_KEY, BOB, BOT_TOKEN, CAROL, Bot, stop
from tests.e2e.helpers import click, submit
from tests.fakes.processes import run_cli

TABLE = AuditEvent.__table__  # type: ignore[attr-defined]
KEY = AuditKey(AUDIT_KEY.encode(), "JIT_AUDIT_KEY")
WRONG = AuditKey(b"a key the attacker made up, not the bot's", "attacker")
Sign = Callable[[str, dict[str, Any]], str]


def _trail(bot: Bot) -> dict[str, str]:
    """A grant BOB approved and ALICE ended, and an auto-approved one."""
    approved = submit(bot, ALICE, "prod-support prod 1h INC-1")
    click(bot, BOB, "approve", approved)
    click(bot, ALICE, "end_access", approved)
    auto = submit(bot, ALICE, "db-admin dev 30m seed")
    bot.settle()
    return {"approved": approved, "auto": auto}


def _rows(bot: Bot) -> list[dict[str, Any]]:
    with bot.runtime.engine.connect() as connection:
        return [dict(r) for r in connection.execute(select(TABLE).order_by(TABLE.c.id)).mappings()]


def _write(bot: Bot, rows: list[dict[str, Any]]) -> None:
    with bot.runtime.engine.begin() as connection:
        for row in rows:
            values = {k: v for k, v in row.items() if k != "id"}
            connection.execute(update(TABLE).where(TABLE.c.id == row["id"]).values(values))


def _rechain(bot: Bot, edited_id: int, edit: dict[str, Any], sign: Sign, key_id: Any = ...) -> None:
    """Apply ``edit`` to one event and recompute its hash and every later one with
    ``sign``; ``key_id`` (when given) is what the re-chained events claim signed them."""
    rows = _rows(bot)
    previous = ""
    for row in rows:
        if row["id"] >= edited_id:
            if row["id"] == edited_id:
                row.update(edit)
            if key_id is not ...:
                row["key_id"] = key_id
            row["prev_hash"] = previous
            row["hash"] = sign(previous, row)
        previous = row["hash"]
    _write(bot, rows)


def _verify(bot: Bot, *keys: AuditKey) -> audit.Verdict:
    return audit.verify(sessionmaker(bot.runtime.engine), list(keys or [KEY]))


def _jit_bot(
    bot: Bot,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *args: str,
    key: str | None = AUDIT_KEY,
) -> tuple[int, str, str]:
    """``jit-bot ARGS`` with the bot's settings; its exit code, stdout and stderr."""
    monkeypatch.setenv("DATABASE_URL", bot.settings.database_url)
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", bot.slack.api_url)
    monkeypatch.setenv("JIT_AUDIT_CHANNEL", AUDIT_CHANNEL)
    monkeypatch.delenv("JIT_AUDIT_KEY_FILE", raising=False)
    if key is None:
        monkeypatch.delenv("JIT_AUDIT_KEY", raising=False)
    else:
        monkeypatch.setenv("JIT_AUDIT_KEY", key)
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _approval_by(rows: list[dict[str, Any]], voter: str) -> int:
    return next(r["id"] for r in rows if r["action"] == "approval_recorded" and r["actor"] == voter)


# ------------------------------------------------------------ forgery without the key

FORGERIES: dict[str, tuple[Sign, Any]] = {
    "plain SHA-256, key ids kept": (audit.chain_hash, ...),
    "plain SHA-256, key ids stripped": (audit.chain_hash, None),
    "a wrong key, under its own key id": (
        lambda prev, row: audit.keyed_hash(WRONG, prev, row),
        WRONG.key_id,
    ),
    "a wrong key, under the bot's key id": (
        lambda prev, row: audit.keyed_hash(WRONG, prev, row),
        KEY.key_id,
    ),
}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_an_approver_rewritten_and_rechained_without_the_key_fails_verify_at_that_event(
    bot: Bot,
    forgery: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _trail(bot)
    assert _verify(bot).ok
    edited = _approval_by(_rows(bot), BOB)
    sign, key_id = FORGERIES[forgery]
    _rechain(bot, edited, {"actor": CAROL}, sign, key_id)
    assert _approval_by(_rows(bot), CAROL) == edited  # the forgery is in place

    verdict = _verify(bot)
    assert not verdict.ok and verdict.first_bad_id == edited, verdict
    code, out, err = _jit_bot(bot, capsys, monkeypatch, "audit", "verify")
    assert code == 1 and out == ""
    assert f"audit trail BROKEN at event #{edited}:" in err, err


def test_stripping_every_key_and_rechaining_the_whole_trail_is_caught_at_its_head(
    bot: Bot, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unkeyed events are trusted only below a keyed one: a trail rewritten from the
    start as if it predated the key does not pass."""
    _trail(bot)
    rows = _rows(bot)
    _rechain(bot, rows[0]["id"], {}, audit.chain_hash, None)
    verdict = _verify(bot)
    assert not verdict.ok and verdict.first_bad_id == rows[-1]["id"]
    code, _, err = _jit_bot(bot, capsys, monkeypatch, "audit", "verify")
    assert code == 1 and "is the newest event and is not keyed" in err


# --------------------------------------------------------------- the channel witness


def test_deleting_the_newest_events_is_caught_against_the_audit_channel(bot: Bot) -> None:
    _trail(bot)
    rows = _rows(bot)
    deleted = [r["id"] for r in rows[-3:]]
    with bot.runtime.engine.begin() as connection:
        connection.execute(TABLE.delete().where(TABLE.c.id.in_(deleted)))
    assert _verify(bot).ok  # a shorter chain is still a valid chain: only the witness knows

    env = {
        "DATABASE_URL": bot.settings.database_url,
        "JIT_AUDIT_KEY": AUDIT_KEY,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_API_URL": bot.slack.api_url,
        "JIT_AUDIT_CHANNEL": AUDIT_CHANNEL,
    }
    done = run_cli(["audit", "verify", "--against-slack"], env)
    assert done.returncode == 1, done.stderr
    assert "audit trail intact" in done.stdout
    for event_id in deleted:
        assert (
            f"event #{event_id}: posted to the audit channel but missing: newer than the "
            "newest event in the database: the newest events were deleted"
        ) in done.stderr
    assert f"newest posted: #{deleted[-1]}" in done.stderr
    assert "Traceback" not in done.stderr
    assert bot.slack.calls_to("conversations.history")


def test_an_event_rechained_with_the_key_is_caught_by_the_hash_the_channel_shows(
    bot: Bot, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even someone holding the key cannot change what was already posted."""
    _trail(bot)
    rows = _rows(bot)
    edited = _approval_by(rows, BOB)
    _rechain(bot, edited, {"actor": CAROL}, lambda p, r: audit.keyed_hash(KEY, p, r))
    assert _verify(bot).ok
    code, out, err = _jit_bot(bot, capsys, monkeypatch, "audit", "verify", "--against-slack")
    assert code == 1 and "audit trail intact" in out
    later = [r for r in _rows(bot) if r["id"] >= edited]
    for row in later:
        assert f"event #{row['id']}: the channel shows hash " in err
        assert f"the database holds {row['hash']}: changed after it was posted" in err
    assert f"audit channel DISAGREES: {len(later)} findings" in err
    assert all(f"event #{r['id']}:" not in err for r in rows if r["id"] < edited)


def test_an_event_that_was_never_posted_is_reported(
    bot: Bot, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event slipped into the database with the key, behind the bot's back."""
    _trail(bot)
    sessions = sessionmaker(bot.runtime.engine, info=audit.signing_info(KEY))
    silent = SlackNotifier(bot.clock, None, on_enqueue=lambda: None)  # posts nothing
    with sessions.begin() as session:
        audit.record(
            session, bot.clock, silent, actor=CAROL, action="granted", request_id=None, details={}
        )
    slipped = _rows(bot)[-1]["id"]
    code, _, err = _jit_bot(bot, capsys, monkeypatch, "audit", "verify", "--against-slack")
    assert code == 1
    assert f"event #{slipped}: in the database but never posted to the audit channel" in err


def test_an_untouched_trail_agrees_with_every_page_of_the_audit_channel(
    bot: Bot, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _trail(bot)
    sessions = sessionmaker(bot.runtime.engine, info=audit.signing_info(KEY))
    notifier = SlackNotifier(bot.clock, AUDIT_CHANNEL, on_enqueue=lambda: None)
    with sessions.begin() as session:
        audit.record_all(
            session,
            bot.clock,
            notifier,
            [audit.Entry("cli", "sync", None, {"n": n}) for n in range(450)],
        )
    bot.settle()
    total = len(_rows(bot))
    assert len(bot.slack.messages_in(AUDIT_CHANNEL)) == total > 400
    code, out, err = _jit_bot(bot, capsys, monkeypatch, "audit", "verify", "--against-slack")
    assert code == 0, err
    assert f"audit channel agrees: {total} events in the database, {total} in the" in out
    pages = bot.slack.calls_to("conversations.history")
    assert len(pages) >= 3 and "cursor" not in pages[0].params
    assert all(p.params.get("cursor") for p in pages[1:])


def test_an_unreadable_audit_channel_says_how_to_fix_it(
    bot: Bot, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _trail(bot)
    bot.slack.fail_next("conversations.history", error="missing_scope")
    code, _, err = _jit_bot(bot, capsys, monkeypatch, "audit", "verify", "--against-slack")
    assert code == 2
    assert f"cannot read the audit channel {AUDIT_CHANNEL}: Slack answered missing_scope" in err
    assert "channels:history" in err and "Traceback" not in err


# ------------------------------------------------------------------ the grants export


def _grants(bot: Bot, fmt: str) -> str:
    out = io.StringIO()
    audit.export(
        sessionmaker(bot.runtime.engine), out, since=None, until=None, fmt=fmt, kind="grants"
    )
    return out.getvalue()


def test_editing_vote_and_request_rows_changes_nothing_in_the_grants_export(bot: Bot) -> None:
    ids = _trail(bot)
    before = {fmt: _grants(bot, fmt) for fmt in ("jsonl", "csv")}
    approved = next(
        json.loads(line)
        for line in before["jsonl"].splitlines()
        if json.loads(line)["request_id"] == ids["approved"]
    )
    assert approved["approved_by"] == [BOB] and approved["reason"] == "INC-1"
    with bot.runtime.engine.begin() as connection:
        connection.execute(update(Vote).values(voter_id=CAROL, decision="approve"))
        connection.execute(
            update(AccessRequest).values(
                requester_id=CAROL,
                requester_email="carol@example.com",
                role="db-admin",
                environment="dev",
                reason="routine",
                auto_approve=True,
                granted_at=None,
                ended_at=None,
                expires_at=None,
                ended_by=None,
                end_reason=None,
                status="denied",
            )
        )
    assert {fmt: _grants(bot, fmt) for fmt in ("jsonl", "csv")} == before


# ---------------------------------------------------------------------- key changes


def _as_before_the_key(bot: Bot) -> list[dict[str, Any]]:
    """Make the stored trail what the code before the key wrote: unkeyed SHA-256."""
    rows = _rows(bot)
    _rechain(bot, rows[0]["id"], {}, audit.chain_hash, None)
    return _rows(bot)


def test_a_trail_from_before_the_key_keeps_verifying_through_the_recorded_key_change(
    make_bot: Callable[..., Bot],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bot = make_bot()
    _trail(bot)
    stop(bot)
    legacy = _as_before_the_key(bot)
    assert all(r["key_id"] is None for r in legacy)

    bot = make_bot()  # the upgraded bot starts with its key
    change = _rows(bot)[len(legacy)]
    assert (change["action"], change["details"]) == (
        audit.KEY_CHANGED,
        {"from": None, "to": KEY.key_id},
    )
    assert change["prev_hash"] == legacy[-1]["hash"] and change["key_id"] == KEY.key_id
    assert bot.audit_posts()[-1].endswith(f"#{change['id']} `{change['hash']}`")
    submit(bot, ALICE, "db-admin dev 30m after the key")

    verdict = _verify(bot)
    assert verdict.ok and verdict.unkeyed == len(legacy) and verdict.key_ids == (KEY.key_id,)
    code, out, _ = _jit_bot(bot, capsys, monkeypatch, "audit", "verify")
    assert code == 0
    assert f"{len(legacy)} unkeyed from before the key, covered by the first keyed event" in out

    # The first keyed event covers the unkeyed ones: rewriting one of them and re-chaining
    # the rest of the unkeyed part is caught there, as its HMAC cannot be recomputed.
    edited = _approval_by(legacy, BOB)
    rows = _rows(bot)
    previous = ""
    for row in rows:
        if row["key_id"] is None and row["id"] >= edited:
            row.update({"actor": CAROL} if row["id"] == edited else {})
            row["prev_hash"] = previous
            row["hash"] = audit.chain_hash(previous, row)
        elif row["id"] == change["id"]:
            row["prev_hash"] = previous
        previous = row["hash"]
    _write(bot, rows)
    verdict = _verify(bot)
    assert not verdict.ok and verdict.first_bad_id == change["id"]
    assert verdict.problem and "does not match its HMAC" in verdict.problem


def test_a_rotated_key_needs_the_previous_key_to_check_older_events(
    bot: Bot,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _trail(bot)
    first_keyed = _rows(bot)[0]["id"]
    new_key = "the next audit key, from the secret manager"
    rotated = AuditKey(new_key.encode(), "JIT_AUDIT_KEY")
    sessions = sessionmaker(bot.runtime.engine, info=audit.signing_info(rotated))
    notifier = SlackNotifier(bot.clock, AUDIT_CHANNEL, on_enqueue=lambda: None)
    with sessions.begin() as session:
        audit.record(
            session, bot.clock, notifier, actor="cli", action="sync", request_id=None, details={}
        )
    change = _rows(bot)[-2]
    assert (change["action"], change["details"]) == (
        audit.KEY_CHANGED,
        {"from": KEY.key_id, "to": rotated.key_id},
    )

    code, _, err = _jit_bot(bot, capsys, monkeypatch, "audit", "verify", key=new_key)
    assert code == 1
    assert f"audit trail NOT CHECKED from event #{first_keyed}: it cannot be checked" in err
    assert f"signed with key {KEY.key_id}, and the key given is not that key" in err
    assert "--previous-key-file" in err

    previous = tmp_path / "previous.key"
    previous.write_text(AUDIT_KEY + "\n")
    code, out, err = _jit_bot(
        bot,
        capsys,
        monkeypatch,
        "audit",
        "verify",
        "--previous-key-file",
        str(previous),
        key=new_key,
    )
    assert code == 0, err
    assert f"signed by key {KEY.key_id}, {rotated.key_id}" in out


# ------------------------------------------------------------------- a missing key


def test_audit_verify_without_the_key_is_a_clear_error(bot: Bot, tmp_path: Path) -> None:
    _trail(bot)
    done = run_cli(["audit", "verify"], {"DATABASE_URL": bot.settings.database_url}, tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert "jit-bot: no audit key: set JIT_AUDIT_KEY or JIT_AUDIT_KEY_FILE" in done.stderr
    assert "Traceback" not in done.stderr

    missing = tmp_path / "not-mounted"
    done = run_cli(
        ["audit", "verify"],
        {"DATABASE_URL": bot.settings.database_url, "JIT_AUDIT_KEY_FILE": str(missing)},
        tmp_path,
    )
    assert done.returncode == 2
    assert f"JIT_AUDIT_KEY_FILE={missing} cannot be read (No such file or directory)" in (
        done.stderr
    )


def test_a_bot_refuses_to_start_with_an_audit_key_too_short_to_be_a_secret(
    tmp_path: Path,
) -> None:
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": "s",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'jit.db'}",
        "JIT_AUDIT_KEY": "hunter2",
    }
    done = run_cli(["serve"], env, tmp_path)
    assert done.returncode == 2
    assert "JIT_AUDIT_KEY holds 7 bytes; an audit key needs at least 16" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "jit.db").exists()


def test_without_a_configured_key_the_bot_warns_and_keeps_a_private_key_file(
    database_url: str, tmp_path: Path
) -> None:
    """A laptop trial: no JIT_AUDIT_KEY, so a local key file, never the database."""
    env = {"DATABASE_URL": database_url}
    first = run_cli(["sync"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "AUDIT KEY NOT CONFIGURED" in first.stderr and "created now, mode 0600" in first.stderr
    local = (
        tmp_path / "jit.db.audit-key"
        if database_url.startswith("sqlite")
        else tmp_path / "jit-bot-audit.key"
    )
    assert stat.S_IMODE(local.stat().st_mode) == 0o600
    secret = local.read_text().strip()
    assert len(secret) == 64

    assert run_cli(["sync"], env, tmp_path).returncode == 0  # the same key, no key change
    done = run_cli(["audit", "verify"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "audit trail intact: 2 events" in done.stdout
    done = run_cli(["audit", "export"], env, tmp_path)
    assert secret not in done.stdout  # nor anywhere in the database's events


# ------------------------------------------------------------------- CSV injection

FORMULAS = ['=HYPERLINK("http://evil.example/","INC-1")', "+1+1", "-2+3", "@SUM(A1:A9)"]


def test_csv_export_neutralises_cells_a_spreadsheet_would_run_as_formulas(bot: Bot) -> None:
    for reason in FORMULAS:
        submit(bot, ALICE, f"db-admin dev 30m {reason}")
    sessions = sessionmaker(bot.runtime.engine, info=audit.signing_info(KEY))
    notifier = SlackNotifier(bot.clock, AUDIT_CHANNEL, on_enqueue=lambda: None)
    with sessions.begin() as session:  # cells that start with a tab or a carriage return
        for n, reason in enumerate(["\tcmd", "\rcmd"]):
            request_id = f"R-CTRL{n}"
            audit.record_all(
                session,
                bot.clock,
                notifier,
                [
                    audit.Entry(ALICE, "requested", request_id, {"reason": reason}),
                    audit.Entry("jit-bot", "granted", request_id, {}),
                ],
            )
    rows = list(csv.DictReader(io.StringIO(_grants(bot, "csv"))))
    reasons = [row["reason"] for row in rows]
    assert reasons == [f"'{r}" for r in [*FORMULAS, "\tcmd", "\rcmd"]]
    for row in rows:
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row.values())
    # JSON lines are not a spreadsheet: the reason stays as typed.
    jsonl = [json.loads(line)["reason"] for line in _grants(bot, "jsonl").splitlines()]
    assert jsonl == [*FORMULAS, "\tcmd", "\rcmd"]
