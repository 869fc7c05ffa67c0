"""``jit-bot audit verify`` and ``jit-bot audit export``: check the trail (and, with
``--against-slack``, compare it with the audit channel) or write it for auditors. Both
stream the trail, and draw a progress bar when stderr is a terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.cli.moments import when
from bot.cli.progress import one_bar

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from bot.audit import Verdict


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``audit verify`` and ``audit export`` on the top-level sub-commands."""
    command = commands.add_parser("audit", help="verify or export the audit trail")
    audit_actions = command.add_subparsers(dest="audit_action", required=True)
    verify = audit_actions.add_parser(
        "verify", help="check the keyed hash chain; name the first bad event"
    )
    verify.add_argument(
        "--against-slack",
        action="store_true",
        help="also compare every event with its post in the audit channel (JIT_AUDIT_CHANNEL)",
    )
    verify.add_argument(
        "--previous-key-file",
        action="append",
        default=[],
        metavar="PATH",
        help="a key the trail was signed with before a rotation (repeatable)",
    )
    export = audit_actions.add_parser("export", help="write the trail for auditors")
    export.add_argument("--since", type=when, help="ISO date/time (UTC unless given)")
    export.add_argument("--until", type=when, help="ISO date/time, exclusive")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.add_argument(
        "--kind",
        choices=["events", "grants", "breakglass"],
        default="events",
        help="every event; one row per grant: who had which role where, approved by "
        "whom, from when to when; or one row per break-glass use, with its incident and "
        "its post-incident review (unreviewed, justified, not_justified)",
    )
    export.add_argument("--output", help="file to write (default: standard output)")


def run(args: argparse.Namespace) -> int:
    """``jit-bot audit verify`` or ``jit-bot audit export``; the exit status."""
    from sqlalchemy.orm import sessionmaker

    from bot import audit
    from bot.storage.db import make_engine, make_reader, upgrade

    url = os.environ.get("DATABASE_URL") or "sqlite:///jit-bot.db"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    sessions = sessionmaker(make_reader(url), expire_on_commit=False)
    if args.audit_action == "verify":
        return _audit_verify(args, sessions)
    with contextlib.ExitStack() as stack:
        out = (
            stack.enter_context(open(args.output, "w", newline="", encoding="utf-8"))
            if args.output
            else sys.stdout
        )
        progress = stack.enter_context(one_bar(f"exporting {args.kind}"))
        count = audit.export(
            sessions,
            out,
            since=args.since,
            until=args.until,
            fmt=args.format,
            kind=args.kind,
            progress=progress,
        )
    print(f"exported {count} {args.kind}", file=sys.stderr)
    return 0


def _audit_verify(args: argparse.Namespace, sessions: sessionmaker[Session]) -> int:
    from bot import audit, audit_key

    env = os.environ
    try:
        keys = [
            audit_key.for_verifier(
                env.get("JIT_AUDIT_KEY"),
                env.get("JIT_AUDIT_KEY_FILE"),
                env.get("DATABASE_URL") or "sqlite:///jit-bot.db",
            ),
            *(audit_key.from_file(p, "--previous-key-file") for p in args.previous_key_file),
        ]
    except audit_key.AuditKeyError as exc:
        print(f"jit-bot: {exc}", file=sys.stderr)
        return 2
    with one_bar("verifying the audit trail") as progress:
        verdict = audit.verify(sessions, keys, progress)
    if verdict.ok:
        signed = ", ".join(verdict.key_ids) or "none"
        print(
            f"audit trail intact: {verdict.checked} events, hash chain verified "
            f"({verdict.checked - verdict.unkeyed} signed by key {signed}; {verdict.unkeyed} "
            "unkeyed from before the key, covered by the first keyed event)"
        )
        print(_keyed_boundary(verdict))
    else:
        state = "NOT CHECKED from" if verdict.unchecked else "BROKEN at"
        print(
            f"audit trail {state} event #{verdict.first_bad_id}: it {verdict.problem} "
            f"({verdict.checked} events before it verified)",
            file=sys.stderr,
        )
    if not args.against_slack:
        return 0 if verdict.ok else 1
    witnessed = _against_slack(sessions)
    if witnessed is None:
        return 2
    return 0 if verdict.ok and witnessed else 1


def _keyed_boundary(verdict: Verdict) -> str:
    """Where the keyed chain starts: what is before it only the channel can vouch for."""
    if verdict.keyed_from is None:
        return "no keyed events yet"
    at = verdict.keyed_at.isoformat() if verdict.keyed_at else "?"
    if not verdict.unkeyed:
        return f"keyed from event #{verdict.keyed_from} at {at}, the first event"
    return (
        f"keyed from event #{verdict.keyed_from} at {at}; {verdict.unkeyed} earlier events "
        "are only SHA-256 chained: check them against the channel with --against-slack"
    )


def _against_slack(sessions: sessionmaker[Session]) -> bool | None:
    """Compare the trail with the audit channel; True if it agrees, None if the channel
    could not be read."""
    from slack_sdk import WebClient

    from bot import audit
    from bot.audit_witness import compare
    from bot.slack.audit_channel import ChannelUnreadable, read_seals

    token, channel = os.environ.get("SLACK_BOT_TOKEN"), os.environ.get("JIT_AUDIT_CHANNEL")
    missing = [n for n, v in (("SLACK_BOT_TOKEN", token), ("JIT_AUDIT_CHANNEL", channel)) if not v]
    if missing or not token or not channel:
        print(
            f"jit-bot: --against-slack reads the audit channel: set {' and '.join(missing)} "
            "as for `jit-bot serve`.",
            file=sys.stderr,
        )
        return None
    client = WebClient(
        token=token, base_url=os.environ.get("SLACK_API_URL") or WebClient.BASE_URL, timeout=10
    )
    try:
        posted = read_seals(client, channel)
    except ChannelUnreadable as exc:
        print(f"jit-bot: cannot read the audit channel {channel}: {exc}", file=sys.stderr)
        return None
    testimony = compare(audit.seals(sessions), posted, now=datetime.now(UTC))
    for finding in testimony.findings:
        print(f"event #{finding.event_id}: {finding.problem}", file=sys.stderr)
    for waiting in testimony.waiting:
        print(f"warning: event #{waiting.event_id}: {waiting.problem}", file=sys.stderr)
    newest = "none" if testimony.newest_posted is None else f"#{testimony.newest_posted}"
    summary = (
        f"{testimony.events} events in the database, {testimony.posted} in the audit channel "
        f"{channel} (newest posted: {newest})"
    )
    if testimony.ok:
        print(f"audit channel agrees: {summary}")
    else:
        print(
            f"audit channel DISAGREES: {len(testimony.findings)} findings; {summary}",
            file=sys.stderr,
        )
    return testimony.ok
