"""One estate import from reading to the line it prints, as every cloud's command runs
it: what cannot be used (credentials that cannot read, a bad --environments file, an
estate with nothing to propose, an unwritable directory) is one line on stderr and exit
status 2, never a traceback, and nothing is written.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from bot.importer.access import CannotImport, Imported
from bot.importer.mining import Progress
from bot.importer.outputs import headline
from bot.importer.propose import Options, propose, write_outputs
from bot.importer.terminal import show


def run_import(
    cloud: str,
    read: Callable[[], Imported],
    output: Path,
    options: Options,
    progress: Progress | None = None,
) -> int:
    """Exit status: 0 written, 2 the estate or the options cannot be used."""
    try:
        outcome = propose(read(), options, progress)
    except CannotImport as exc:
        return _fail(cloud, str(exc))
    try:
        write_outputs(outcome, output)
    except OSError as exc:
        return _fail(cloud, f"cannot write {exc.filename or output}: {exc.strerror or exc}")
    print(headline(outcome))
    show(outcome)  # on a terminal only
    return 0


def _fail(cloud: str, message: str) -> int:
    print(f"jit-bot import {cloud}: {message}", file=sys.stderr)
    return 2
