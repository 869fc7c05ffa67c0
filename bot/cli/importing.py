"""``jit-bot import SOURCE``: read an existing estate and propose roles that reproduce it.

``matrix`` (a plain user–permission file), ``aws`` (an IAM Identity Center estate,
read-only) and ``gcp`` (the IAM policies of a GCP resource tree, read-only); the other
cloud readers become sibling sub-commands feeding the same mining core. Everything heavy
(the solver, rich) is imported when the command runs, so ``jit-bot serve`` never loads it.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.importer.mining import Progress
    from bot.importer.propose import Options

DEFAULT_TIME_LIMIT = 60.0  # mining.DEFAULT_TIME_LIMIT, not imported to keep this light


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``import`` and its sources on the top-level sub-commands."""
    command = commands.add_parser(
        "import", help="propose roles (roles.csv, assignments.csv, report.md) from an estate"
    )
    sources = command.add_subparsers(dest="source", required=True)
    matrix = sources.add_parser(
        "matrix",
        help="from a file of 'user permission' lines (whitespace- or comma-separated)",
    )
    matrix.add_argument("file", type=Path, metavar="FILE")
    matrix.add_argument(
        "--output", type=Path, required=True, metavar="DIR", help="directory to write into"
    )
    matrix.add_argument(
        "--time-limit",
        type=_seconds,
        default=DEFAULT_TIME_LIMIT,
        metavar="SECONDS",
        help="for the exact search; then the best cover found is kept, and the report "
        f"says how far from the minimum it can be (default {DEFAULT_TIME_LIMIT:g})",
    )
    matrix.set_defaults(run=_run_matrix)
    _add_aws(sources)
    _add_gcp(sources)


def _add_aws(sources: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    aws = sources.add_parser(
        "aws",
        help="from IAM Identity Center, read-only: drafts roles.yaml, approvers.yaml, "
        "mapping.csv and report.md",
    )
    aws.add_argument(
        "--output", type=Path, required=True, metavar="DIR", help="directory to write into"
    )
    aws.add_argument(
        "--environments",
        default="ou",
        metavar="ou|tag:KEY|FILE",
        help="each account's environment: the name of its OU (default), the value of its "
        "tag KEY, or a file of '<account id> <environment>' lines",
    )
    aws.add_argument(
        "--time-limit",
        type=_seconds,
        default=DEFAULT_TIME_LIMIT,
        metavar="SECONDS",
        help=f"for the exact search (default {DEFAULT_TIME_LIMIT:g})",
    )
    _add_shared(aws)
    aws.set_defaults(run=_run_aws)


def _run_aws(args: argparse.Namespace) -> int:
    from bot.importer.aws.command import import_aws

    with _progress_bar() as progress:
        return import_aws(args.output, args.environments, os.environ, _options(args), progress)


def _add_gcp(sources: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gcp = sources.add_parser(
        "gcp",
        help="from the IAM policies of a GCP organization, folder or project, read-only: "
        "drafts roles.yaml, approvers.yaml, mapping.csv and report.md",
    )
    node = gcp.add_mutually_exclusive_group(required=True)
    node.add_argument("--organization", type=_numeric("organizations"), metavar="ID", dest="node")
    node.add_argument("--folder", type=_numeric("folders"), metavar="ID", dest="node")
    node.add_argument("--project", type=_project, metavar="ID", dest="node")
    gcp.add_argument(
        "--output", type=Path, required=True, metavar="DIR", help="directory to write into"
    )
    gcp.add_argument(
        "--environments",
        default="folder",
        metavar="folder|label:KEY|FILE",
        help="each project's environment: the name of the folder it sits in (default), the "
        "value of its label KEY, or a file of '<resource> <environment>' lines "
        "(projects/ID, folders/N, organizations/N)",
    )
    gcp.add_argument(
        "--time-limit",
        type=_seconds,
        default=DEFAULT_TIME_LIMIT,
        metavar="SECONDS",
        help=f"for the exact search (default {DEFAULT_TIME_LIMIT:g})",
    )
    _add_shared(gcp)
    gcp.set_defaults(run=_run_gcp)


def _run_gcp(args: argparse.Namespace) -> int:
    from bot.importer.gcp.command import import_gcp

    with _progress_bar() as progress:
        return import_gcp(
            args.node, args.output, args.environments, os.environ, _options(args), progress
        )


def _numeric(kind: str) -> Callable[[str], str]:
    """``123`` or ``{kind}/123`` → ``{kind}/123``."""
    noun = "an organization" if kind == "organizations" else "a folder"

    def parse(value: str) -> str:
        number = value.removeprefix(f"{kind}/")
        if not number.isascii() or not number.isdigit() or len(number) > 20:
            raise argparse.ArgumentTypeError(f"'{value}' is not {noun} id; expected its number")
        return f"{kind}/{number}"

    return parse


def _project(value: str) -> str:
    """``acme-prod`` or ``projects/acme-prod`` → ``projects/acme-prod``."""
    project = value.removeprefix("projects/")
    if not re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", project):
        raise argparse.ArgumentTypeError(
            f"'{value}' is not a project id; expected 6–30 lower-case letters, digits and "
            "hyphens, starting with a letter"
        )
    return f"projects/{project}"


def _add_shared(command: argparse.ArgumentParser) -> None:
    """The options every estate import takes."""
    command.add_argument(
        "--similarity",
        type=_fraction,
        default=0.8,
        metavar="J",
        help="report what is at least this alike (Jaccard, 0 < J ≤ 1) as near-duplicates, "
        "with what differs (default 0.8); they are not merged",
    )
    command.add_argument(
        "--max-overgrant",
        type=_count,
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


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 done, 2 the input cannot be used or the output cannot be written."""
    result: int = args.run(args)
    return result


def _run_matrix(args: argparse.Namespace) -> int:
    from bot.importer.matrix import MatrixError, read_matrix
    from bot.importer.mining import mine
    from bot.importer.report import summary_line, write_outputs

    try:
        matrix = read_matrix(args.file)
    except MatrixError as exc:
        print(f"jit-bot import: {exc}", file=sys.stderr)
        return 2
    if matrix.duplicates:
        print(
            f"jit-bot import: {matrix.source}: {matrix.duplicates} repeated "
            "assignment(s) counted once",
            file=sys.stderr,
        )
    with _progress_bar() as progress:
        result = mine(matrix.pairs, time_limit=args.time_limit, progress=progress)
    try:
        write_outputs(result, args.output, matrix.source)
    except OSError as exc:
        where = exc.filename or args.output
        print(f"jit-bot import: cannot write {where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(summary_line(result.figures))
    return 0


def _options(args: argparse.Namespace) -> Options:
    from bot.importer.propose import Options

    return Options(
        time_limit=args.time_limit,
        similarity=args.similarity,
        max_overgrant=args.max_overgrant,
        consolidate=args.consolidate,
    )


@contextmanager
def _progress_bar() -> Iterator[Progress | None]:
    """A rich progress bar on stderr when it is a terminal; nothing in pipes and logs."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        SpinnerColumn,
        TaskID,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as Bar

    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn())
    with Bar(SpinnerColumn(), *columns, TimeElapsedColumn(), console=Console(stderr=True)) as bar:
        tasks: dict[str, TaskID] = {}

        def step(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield step


def _seconds(value: str) -> float:
    return _number(value, lambda n: n >= 0, "a number of seconds ≥ 0")


def _count(value: str) -> int:
    number = _number(value, lambda n: math.isfinite(n) and 0 <= n == int(n), "a whole number ≥ 0")
    return int(number)


def _fraction(value: str) -> float:
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
