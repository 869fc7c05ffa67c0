"""``jit-bot import SOURCE``: read an existing estate and propose roles that reproduce it.

``matrix`` reads a plain user–permission file and runs the mining core alone; the cloud
sources (bot/cli/import_clouds.py) read an estate, read-only, and feed the same core.
Everything heavy (the solver, rich, the cloud SDKs) is imported when the command runs, so
``jit-bot serve`` never loads it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.cli import import_clouds
from bot.cli.import_options import add_output, progress_bar


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
    add_output(
        matrix,
        "for the exact search; then the best cover found is kept, and the report says how "
        "far from the minimum it can be",
    )
    matrix.set_defaults(run=_run_matrix)
    import_clouds.add_aws(sources)
    import_clouds.add_gcp(sources)
    import_clouds.add_azure(sources)


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
    with progress_bar() as progress:
        result = mine(matrix.pairs, time_limit=args.time_limit, progress=progress)
    try:
        write_outputs(result, args.output, matrix.source)
    except OSError as exc:
        where = exc.filename or args.output
        print(f"jit-bot import: cannot write {where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(summary_line(result.figures))
    return 0
