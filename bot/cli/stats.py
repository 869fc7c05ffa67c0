"""``jit-bot stats``: approver-load figures from the audit trail alone, for the requests
asked in a window (``--since``/``--until`` select requests by when they were asked; all
their later events count), as tables or as one JSON document.

The trail is read in id order and streamed through the figures, a thousand events at a
time; rich and the figures are imported when the command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from bot.cli.moments import when

# Wide enough that a pipe or a file gets every column of the approvers' table unfolded.
_PIPE_WIDTH = 160


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``stats`` on the top-level sub-commands."""
    command = commands.add_parser(
        "stats",
        help="approver load from the audit trail: decision times, who decides and how "
        "fast, auto-approval, break-glass reviews, extensions, expired requests",
    )
    command.add_argument(
        "--since",
        type=when,
        help="requests asked at or after this ISO date/time (UTC unless given)",
    )
    command.add_argument(
        "--until", type=when, help="requests asked before this ISO date/time (exclusive)"
    )
    command.add_argument(
        "--format",
        choices=["table", "json"],
        default="table",
        help="tables (with bars on a terminal), or one JSON document for dashboards",
    )


def run(args: argparse.Namespace) -> int:
    """Print the figures; exit status 2 for a window that ends before it starts."""
    from rich.console import Console
    from sqlalchemy.orm import sessionmaker

    from bot.stats import figures, reading, rendering
    from bot.storage.db import make_engine, upgrade

    since, until = args.since, args.until
    if since is not None and until is not None and since >= until:
        print(
            f"jit-bot stats: --since {since.isoformat()} is not before --until "
            f"{until.isoformat()}; the window would hold no request.",
            file=sys.stderr,
        )
        return 2
    engine = make_engine(os.environ.get("DATABASE_URL") or "sqlite:///jit-bot.db")
    upgrade(engine)
    found = figures.compute(
        reading.events(sessionmaker(engine), since), figures.Window(since=since, until=until)
    )
    if args.format == "json":
        json.dump(rendering.as_json(found), sys.stdout, indent=2, sort_keys=True)
        print()
        return 0
    console = Console()
    if not console.is_terminal:
        console = Console(width=_PIPE_WIDTH)
    rendering.show(found, console)
    return 0
