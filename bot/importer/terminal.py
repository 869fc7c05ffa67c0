"""The before and after of an import at a glance, on the terminal that ran it: a small
rich table with a bar per figure, drawn on stderr when it is a terminal (the files hold
everything; this is what a person sees first).
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bot.importer.findings import dead_sources, holders
from bot.importer.outputs import Outcome, standing_rows
from bot.importer.similarity import capability_labels

BAR_WIDTH = 30


def summary(outcome: Outcome) -> Table:
    """Figure, count and a bar scaled to the largest count of the table."""
    i = outcome.imported
    rows = [
        (f"{i.cloud.sources_noun} today", len(i.sources), "grey62"),
        ("  of them assigned to nobody", len(dead_sources(outcome)), "grey62"),
        ("  distinct after merging copies", len(capability_labels(i)), "grey62"),
        ("proposed roles", len(outcome.mining.roles), "blue"),
        ("  of them one-person exceptions", sum(n == 1 for n in holders(outcome).values()), "blue"),
        ("standing assignments today", len(i.holdings), "grey62"),
        ("  replaced by requests", len(standing_rows(outcome)), "green"),
        ("cells given beyond today", sum(map(len, outcome.mining.overgrant.values())), "red"),
    ]
    widest = max(count for _, count, _ in rows) or 1
    table = Table(title=f"jit-bot import {i.cloud.key}: before and after", title_justify="left")
    table.add_column("figure")
    table.add_column("count", justify="right")
    table.add_column("")
    for label, count, colour in rows:
        bar = Text("█" * max(1 if count else 0, round(BAR_WIDTH * count / widest)), colour)
        table.add_row(label, str(count), bar)
    return table


def show(outcome: Outcome, console: Console | None = None) -> None:
    """Draw the summary on ``console``, by default stderr when it is a terminal."""
    console = console or Console(stderr=True)
    if console.is_terminal:
        console.print(summary(outcome))
