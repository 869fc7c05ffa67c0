"""What every estate import shares on the command line: the output directory, the search's
time limit, --similarity, --max-overgrant and --consolidate, argparse checks for their
numbers, and the progress bar drawn on a terminal.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli.progress import progress_bar

if TYPE_CHECKING:
    from bot.importer.propose import Options

__all__ = ["progress_bar"]  # the estate imports' bar is everyone's (bot/cli/progress.py)

DEFAULT_TIME_LIMIT = 60.0  # mining.DEFAULT_TIME_LIMIT, not imported to keep this light


def add_output(command: argparse.ArgumentParser, time_limit_help: str) -> None:
    """--output DIR and --time-limit SECONDS."""
    command.add_argument(
        "--output", type=Path, required=True, metavar="DIR", help="directory to write into"
    )
    command.add_argument(
        "--time-limit",
        type=seconds,
        default=DEFAULT_TIME_LIMIT,
        metavar="SECONDS",
        help=f"{time_limit_help} (default {DEFAULT_TIME_LIMIT:g})",
    )


def add_estate_options(command: argparse.ArgumentParser) -> None:
    """The options every estate import takes, --output and --time-limit included."""
    add_output(command, "for the exact search")
    command.add_argument(
        "--similarity",
        type=fraction,
        default=0.8,
        metavar="J",
        help="report what is at least this alike (Jaccard, 0 < J ≤ 1) as near-duplicates, "
        "with what differs (default 0.8); they are not merged",
    )
    command.add_argument(
        "--max-overgrant",
        type=count,
        default=0,
        metavar="N",
        help="allow up to N cells (a capability on one scope) per person beyond what they "
        "hold today, in exchange for fewer roles; all of it is listed in the report "
        "(default 0: everyone gets exactly what they hold)",
    )
    command.add_argument(
        "--consolidate",
        action="store_true",
        help="roles.yaml grants through the one merged definition proposed per role "
        "(written beside it, e.g. permission-sets/<role>.json; to create first) instead of "
        "what exists today",
    )


def options(args: argparse.Namespace) -> Options:
    from bot.importer.propose import Options

    return Options(
        time_limit=args.time_limit,
        similarity=args.similarity,
        max_overgrant=args.max_overgrant,
        consolidate=args.consolidate,
    )


def seconds(value: str) -> float:
    return _number(value, lambda n: n >= 0, "a number of seconds ≥ 0")


def count(value: str) -> int:
    number = _number(value, lambda n: math.isfinite(n) and 0 <= n == int(n), "a whole number ≥ 0")
    return int(number)


def fraction(value: str) -> float:
    return _number(value, lambda n: 0 < n <= 1, "a number above 0 and at most 1")


def _number(value: str, allowed: Callable[[float], bool], what: str) -> float:
    """``value`` as a number ``allowed`` accepts, else argparse's error naming ``what``
    (nan is never accepted: every comparison with it is false)."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not allowed(number):
        raise argparse.ArgumentTypeError(f"'{value}' is not {what}")
    return number
