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
import logging
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker

from bot import audit
from bot.audit_key import AuditKey
from bot.audit_witness import Seal, compare
from bot.cli import main
from bot.clock import FakeClock
from bot.slack import audit_channel
from bot.slack.notifier import SlackNotifier
from bot.storage.models import AccessRequest, AuditEvent, Vote
from tests.conftest import (
    ALICE,
    AUDIT_CHANNEL,
    AUDIT_KEY,
    BOB,
    BOT_TOKEN,
    CAROL,
    Bot,
    audit_lines,
    stop,
)
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
    """An event slipped into the database with the key, behind the bot's back, longer
    ago than the outbox could still be holding it."""
    _trail(bot)
    old = FakeClock(datetime.now(UTC) - timedelta(minutes=11))
    _slip_in(bot, old)
    slipped = _rows(bot)[-1]["id"]
    code, _, err = _jit_bot(bot, capsys, monkeypatch, "audit", "verify", "--against-slack")
    assert code == 1
    assert f"event #{slipped}: in the database but never posted to the audit channel" in err


def _slip_in(bot: Bot, clock: FakeClock) -> None:
    """Append an event with the key, at ``clock``'s time, that is never posted."""
    sessions = sessionmaker(bot.runtime.engine, info=audit.signing_info(KEY))
    silent = SlackNotifier(clock, None, on_enqueue=lambda: None)  # posts nothing
    with sessions.begin() as session:
        audit.record(
            session, clock, silent, actor=CAROL, action="granted", request_id=None, details={}
        )


def test_events_still_in_the_outbox_are_a_warning_until_the_grace_period_passes(
    bot: Bot, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy bot posts behind its writes: a cron running verify --against-slack must not
    flap on the newest events, and must still catch them once they are overdue."""
    _trail(bot)
    _slip_in(bot, FakeClock(datetime.now(UTC) - timedelta(minutes=2)))
    _slip_in(bot, FakeClock(datetime.now(UTC)))
    young = [r["id"] for r in _rows(bot)[-2:]]
    code, out, err = _jit_bot(bot, capsys, monkeypatch, "audit", "verify", "--against-slack")
    assert code == 0, err
    assert "audit channel agrees" in out
    for event_id in young:
        assert f"warning: event #{event_id}: not posted yet (" in err
        assert "never posted" not in err

    # Once an event after them is posted, they are no longer "not yet": they were skipped.
    sessions = sessionmaker(bot.runtime.engine, info=audit.signing_info(KEY))
    notifier = SlackNotifier(bot.clock, AUDIT_CHANNEL, on_enqueue=lambda: None)
    with sessions.begin() as session:
        audit.record(
            session, bot.clock, notifier, actor="cli", action="sync", request_id=None, details={}
        )
    bot.settle()
    code, _, err = _jit_bot(bot, capsys, monkeypatch, "audit", "verify", "--against-slack")
    assert code == 1
    for event_id in young:
        assert f"event #{event_id}: in the database but never posted" in err

    # And an unposted newest event older than the grace period is a finding on its own.
    events = [Seal(r["id"], r["hash"], r["at"]) for r in _rows(bot)]
    posted = [Seal(e.event_id, e.hash) for e in events[:-1]]
    now = _as_utc(events[-1].at) + timedelta(minutes=9)
    assert compare(events, posted, now=now).ok
    late = compare(events, posted, now=now + timedelta(minutes=2))
    assert [f.event_id for f in late.findings] == [events[-1].event_id] and not late.waiting


def _as_utc(moment: datetime | None) -> datetime:
    assert moment is not None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


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
    posts = bot.slack.messages_in(AUDIT_CHANNEL)
    # Queued in one transaction, the lines went out several to a post, each in its block.
    assert len(audit_lines(bot.slack)) == total > 400 and 10 < len(posts) < total
    monkeypatch.setattr(audit_channel, "_PAGE_SIZE", 4)  # pages of 4 posts: several pages
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
    assert (
        f"keyed from event #{change['id']} at {_as_utc(change['at']).isoformat()}; "
        f"{len(legacy)} earlier events are only SHA-256 chained: check them against the "
        "channel with --against-slack"
    ) in out

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
    assert "If you never used such a key, the trail was rewritten" in err

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


# --------------------------------------------- adoption from no key: once per trail


def _strip(bot: Bot, edit: dict[str, Any], *, from_id: int = 0) -> None:
    """The attacker: rewrite the trail from ``from_id`` on as plain SHA-256 with no key
    ids (as if it predated the key), approver BOB changed to CAROL."""
    rows = _rows(bot)
    previous = ""
    for row in rows:
        if row["id"] >= from_id:
            if row["action"] == "approval_recorded" and row["actor"] == BOB:
                row.update(edit)
            row["key_id"] = None
            row["prev_hash"] = previous
            row["hash"] = audit.chain_hash(previous, row)
        previous = row["hash"]
    _write(bot, rows)


def _upgraded(make_bot: Callable[..., Bot]) -> tuple[Bot, dict[str, Any]]:
    """A trail from before the key, adopted by an upgraded bot, with keyed events after;
    returns the running bot and the adoption event."""
    bot = make_bot()
    _trail(bot)
    stop(bot)
    legacy = _as_before_the_key(bot)
    bot = make_bot()
    adoption = _rows(bot)[len(legacy)]
    assert adoption["action"] == audit.KEY_CHANGED and adoption["details"]["from"] is None
    submit(bot, ALICE, "db-admin dev 30m after the key")
    bot.settle()
    return bot, adoption


def test_a_keyed_trail_stripped_to_sha256_and_readopted_by_the_bot_fails_plain_verify(
    make_bot: Callable[..., Bot],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The whole trail rewritten as unkeyed SHA-256 (BOB -> CAROL), then the bot restarts
    and adopts it: the adoption signs over the forged head, yet verify still fails, at the
    original change of key, now unkeyed. The bot starts all the same."""
    bot, adoption = _upgraded(make_bot)
    stop(bot)
    _strip(bot, {"actor": CAROL})
    caplog.set_level(logging.WARNING, logger="bot.audit")
    unkeyed = len(_rows(bot))
    bot = make_bot()  # starts: a bot that does not start revokes nothing
    readoption = _rows(bot)[-1]
    assert readoption["action"] == audit.KEY_CHANGED and readoption["key_id"] == KEY.key_id
    assert f"adopting the audit trail: {unkeyed} earlier events are unkeyed" in caplog.text
    assert f"AUDIT TRAIL REWRITTEN: unkeyed event #{adoption['id']}" in caplog.text

    code, out, err = _jit_bot(bot, capsys, monkeypatch, "audit", "verify")
    assert code == 1 and out == ""
    assert (
        f"audit trail BROKEN at event #{adoption['id']}: it records a change of key, yet is "
        "not keyed"
    ) in err


def test_keys_stripped_after_the_adoption_fail_verify_even_after_a_readoption(
    make_bot: Callable[..., Bot],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the keyed part stripped (the adoption kept): an unkeyed event after a keyed
    one fails verify, and the bot adopting again over it changes nothing."""
    bot, adoption = _upgraded(make_bot)
    stop(bot)
    first_stripped = adoption["id"] + 1
    _strip(bot, {}, from_id=first_stripped)
    make_bot()
    code, _, err = _jit_bot(bot, capsys, monkeypatch, "audit", "verify")
    assert code == 1
    assert (
        f"audit trail BROKEN at event #{first_stripped}: it is not keyed, yet follows a keyed event"
    ) in err


def test_a_second_adoption_from_no_key_fails_verify(
    make_bot: Callable[..., Bot],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Adoption from no key is legitimate once per trail: a later one (written with the
    key, e.g. to make a forged unkeyed stretch look adopted) is named."""
    bot, adoption = _upgraded(make_bot)
    sessions = sessionmaker(bot.runtime.engine, info=audit.signing_info(KEY))
    notifier = SlackNotifier(bot.clock, AUDIT_CHANNEL, on_enqueue=lambda: None)
    with sessions.begin() as session:
        audit.record(
            session,
            bot.clock,
            notifier,
            actor="jit-bot",
            action=audit.KEY_CHANGED,
            request_id=None,
            details={"from": None, "to": KEY.key_id},
        )
    second = _rows(bot)[-1]["id"]
    code, _, err = _jit_bot(bot, capsys, monkeypatch, "audit", "verify")
    assert code == 1
    assert (
        f"audit trail BROKEN at event #{second}: it records a second adoption from no key "
        f"(the first is event #{adoption['id']})"
    ) in err


def test_every_keyed_event_stripped_and_readopted_passes_plain_verify_but_not_the_channel(
    make_bot: Callable[..., Bot],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A trail keyed from its first event has no change of key to give a stripping away:
    after the bot re-adopts, plain verify cannot know, says where the keyed part starts,
    and the channel, which shows the original keyed hashes, names every rewritten event."""
    bot = make_bot()
    _trail(bot)
    stop(bot)
    original = _rows(bot)
    _strip(bot, {"actor": CAROL})
    bot = make_bot()
    readoption = _rows(bot)[-1]
    assert readoption["action"] == audit.KEY_CHANGED

    code, out, _ = _jit_bot(bot, capsys, monkeypatch, "audit", "verify")
    assert code == 0
    assert (
        f"keyed from event #{readoption['id']} at {_as_utc(readoption['at']).isoformat()}; "
        f"{len(original)} earlier events are only SHA-256 chained: check them against the "
        "channel with --against-slack"
    ) in out

    code, _, err = _jit_bot(bot, capsys, monkeypatch, "audit", "verify", "--against-slack")
    assert code == 1
    for row in original:
        assert f"event #{row['id']}: the channel shows hash {row['hash']}, the database" in err
    assert f"event #{readoption['id']}:" not in err
    assert f"audit channel DISAGREES: {len(original)} findings" in err


# ------------------------------------------------------------------- a missing key


def test_audit_verify_without_the_key_is_a_clear_error(bot: Bot, tmp_path: Path) -> None:
    _trail(bot)
    no_key = {"DATABASE_URL": bot.settings.database_url, "JIT_AUDIT_KEY": ""}
    done = run_cli(["audit", "verify"], no_key, tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert "jit-bot: no audit key: set JIT_AUDIT_KEY or JIT_AUDIT_KEY_FILE" in done.stderr
    assert "Traceback" not in done.stderr

    missing = tmp_path / "not-mounted"
    done = run_cli(
        ["audit", "verify"],
        {**no_key, "JIT_AUDIT_KEY_FILE": str(missing)},
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


def test_without_a_configured_key_a_sqlite_trial_warns_and_keeps_a_private_key_file(
    tmp_path: Path,
) -> None:
    """A laptop trial: no JIT_AUDIT_KEY, so a local key file, never the database."""
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'jit.db'}", "JIT_AUDIT_KEY": ""}
    first = run_cli(["sync"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "AUDIT KEY NOT CONFIGURED" in first.stderr and "created now, mode 0600" in first.stderr
    local = tmp_path / "jit.db.audit-key"
    assert stat.S_IMODE(local.stat().st_mode) == 0o600
    secret = local.read_text().strip()
    assert len(secret) == 64

    assert run_cli(["sync"], env, tmp_path).returncode == 0  # the same key, no key change
    done = run_cli(["audit", "verify"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "audit trail intact: 2 events" in done.stdout
    done = run_cli(["audit", "export"], env, tmp_path)
    assert secret not in done.stdout  # nor anywhere in the database's events


def test_on_a_shared_database_a_bot_without_a_configured_key_refuses_to_start(
    tmp_path: Path,
) -> None:
    """Replicas each inventing a key in their own working directory would sign one trail
    with different keys: on anything but SQLite, the key must be configured."""
    env = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": "s",
        "DATABASE_URL": "postgresql+psycopg://jit@127.0.0.1:1/never-reached",
        "JIT_AUDIT_KEY": "",
    }
    for args in (["serve"], ["sync"]):
        done = run_cli(args, env, tmp_path)
        assert done.returncode == 2, done.stderr
        assert "no audit key: set JIT_AUDIT_KEY or JIT_AUDIT_KEY_FILE" in done.stderr
        assert "Traceback" not in done.stderr and list(tmp_path.iterdir()) == []


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
