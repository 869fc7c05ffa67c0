"""Progress drawn on a terminal: a rich bar on stderr when it is one, nothing when the
output goes to a pipe or a log (so a script or a cron job reads only the result)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol


class Stages(Protocol):
    """``step(stage, done, total)``: one bar per stage, created as the stage first reports."""

    def __call__(self, stage: str, done: int, total: int) -> None: ...


#: ``step(done, total)``: one bar.
Step = Callable[[int, int], None]


@contextmanager
def progress_bar() -> Iterator[Stages | None]:
    """A bar per stage on stderr when it is a terminal; None in pipes and logs."""
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


@contextmanager
def one_bar(description: str) -> Iterator[Step | None]:
    """One bar named ``description`` on a terminal; None in pipes and logs."""
    with progress_bar() as stages:
        if stages is None:
            yield None
        else:
            yield lambda done, total: stages(description, done, total)
