"""``jit-bot stats`` output: tables with a small bar per figure for a person at a
terminal (the figures alone, without colour or bars, when stdout is a pipe or a file),
or one JSON document for dashboards.

The JSON document's keys are stable (add keys, never rename them; ``version`` changes if
one ever must): times are seconds, shares and rates fractions of 1 rounded to 4 places,
and a figure with nothing to divide by is null. docs/configuration.md lists every key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bot.stats.figures import RUBBER_STAMP_SECONDS, Figures
from bot.stats.words import percent, span

VERSION = 1
BAR_WIDTH = 24
_PLACES = 4

#: A table and the line under it that says what its figures mean.
Section = tuple[Table, str]


def as_json(figures: Figures) -> dict[str, Any]:
    """The figures as one JSON-ready document."""
    window = figures.window
    return {
        "version": VERSION,
        "window": {
            "since": _iso(window.since),
            "until": _iso(window.until),
            "days": _round(figures.days),
        },
        "requests": {
            "asked": figures.requests,
            "auto_approved": figures.auto_approved,
            "auto_approved_share": _round(figures.auto_approved_share),
            "expired_undecided": figures.expired_undecided,
        },
        "time_to_decision": [
            {
                "role": t.role,
                "environment": t.environment,
                "decided": t.decided,
                "p50_seconds": _round(t.p50_seconds),
                "p90_seconds": _round(t.p90_seconds),
            }
            for t in figures.decision_times
        ],
        "approvers": [
            {
                "approver": a.approver,
                "approvals": a.approvals,
                "denials": a.denials,
                "decisions": a.decisions,
                "approvals_per_day": _round(a.approvals_per_day),
                "share_of_decisions": _round(a.share_of_decisions),
                "approval_rate": _round(a.approval_rate),
                "median_seconds_to_click": _round(a.median_seconds_to_click),
                "possible_rubber_stamping": a.possible_rubber_stamping,
            }
            for a in figures.approvers
        ],
        "break_glass": {
            "uses": figures.break_glass.uses,
            "reviewed": figures.break_glass.reviewed,
            "review_completion": _round(figures.break_glass.review_completion),
        },
        "extensions": [
            {
                "role": e.role,
                "granted": e.granted,
                "extensions": e.extensions,
                "extensions_per_grant": _round(e.per_grant),
            }
            for e in figures.extensions
        ],
    }


def show(figures: Figures, console: Console) -> None:
    """Print every section; bars only where ``console`` is a terminal."""
    bars = console.is_terminal
    console.print(_heading(figures))
    for table, note in (
        _requests(figures, bars),
        _decision_times(figures, bars),
        _approvers(figures, bars),
        _break_glass(figures, bars),
        _extensions(figures, bars),
    ):
        console.print(table)
        console.print(Text(note, style="dim"))


def _heading(figures: Figures) -> Text:
    window = figures.window
    since = _iso(window.since) or "the first request"
    until = _iso(window.until) or "the last request"
    heading = f"jit-bot stats: requests asked from {since} until {until} ({figures.days:g} days)"
    if not figures.requests:
        heading += "; no request was asked in this window"
    return Text(heading, style="bold")


def _requests(figures: Figures, bars: bool) -> Section:
    asked = figures.requests
    table = _table("Requests", ["figure"], ["count", "share"], bars)
    rows = [
        ("asked", asked, None),
        ("auto-approved by a rule", figures.auto_approved, figures.auto_approved_share),
        (
            "expired undecided",
            figures.expired_undecided,
            figures.expired_undecided / asked if asked else None,
        ),
    ]
    for label, count, share in rows:
        _row(table, [label, str(count), percent(share)], bars, count, asked, "blue")
    return table, "extensions and break-glass uses are requests too"


def _decision_times(figures: Figures, bars: bool) -> Section:
    table = _table("Time to decision", ["role", "environment"], ["decided", "p50", "p90"], bars)
    longest = max((t.p90_seconds for t in figures.decision_times), default=0.0)
    for t in figures.decision_times:
        cells = [t.role, t.environment, str(t.decided), span(t.p50_seconds)]
        _row(table, [*cells, span(t.p90_seconds)], bars, t.p90_seconds, longest, "magenta")
    note = "from asking to the approval or denial; auto-approved and break-glass not counted"
    return table, _note(figures.decision_times, note, "no request decided by an approver")


def _approvers(figures: Figures, bars: bool) -> Section:
    numbers = ["approvals", "denials", "per day", "share", "approve rate", "median click"]
    table = _table("Approvers", ["approver"], numbers, bars)
    table.add_column("")  # the flag
    for a in figures.approvers:
        cells = [
            a.approver,
            str(a.approvals),
            str(a.denials),
            "-" if a.approvals_per_day is None else f"{a.approvals_per_day:.2f}",
            percent(a.share_of_decisions),
            percent(a.approval_rate),
            span(a.median_seconds_to_click),
        ]
        flag = Text("possible rubber-stamping", "bold red") if a.possible_rubber_stamping else ""
        _row(table, cells, bars, a.share_of_decisions, 1.0, "green", flag)
    note = (
        f"per day: approvals over {figures.days:g} days; share: of all decisions; median "
        f"click: from the DM that asked them; flagged under {RUBBER_STAMP_SECONDS:g} s"
    )
    return table, _note(figures.approvers, note, "no one approved or denied a request")


def _break_glass(figures: Figures, bars: bool) -> Section:
    glass = figures.break_glass
    table = _table("Break-glass", ["figure"], ["count", "share"], bars)
    _row(table, ["uses", str(glass.uses), "-"], bars, glass.uses, glass.uses, "red")
    reviewed = [str(glass.reviewed), percent(glass.review_completion)]
    _row(table, ["reviewed", *reviewed], bars, glass.reviewed, glass.uses, "green")
    return table, "reviewed: judged justified or not by one of the rule's approvers"


def _extensions(figures: Figures, bars: bool) -> Section:
    table = _table("Extensions", ["role"], ["granted", "extensions", "per grant"], bars)
    most = max((e.per_grant or 0.0 for e in figures.extensions), default=0.0)
    for e in figures.extensions:
        per_grant = "-" if e.per_grant is None else f"{e.per_grant:.2f}"
        cells = [e.role, str(e.granted), str(e.extensions), per_grant]
        _row(table, cells, bars, e.per_grant or 0.0, most, "yellow")
    note = "extensions asked per request of the role granted: high, its default is short"
    return table, _note(figures.extensions, note, "no request granted or extended")


def _table(title: str, labels: list[str], numbers: list[str], bars: bool) -> Table:
    table = Table(title=title, title_justify="left")
    for label in labels:
        table.add_column(label)
    for number in numbers:
        table.add_column(number, justify="right")
    if bars:
        table.add_column("")
    return table


def _row(
    table: Table,
    cells: list[str],
    bars: bool,
    value: float,
    largest: float,
    colour: str,
    *extra: Text | str,
) -> None:
    """Add ``cells`` (text from the trail, made safe to print) and, at a terminal, a bar
    of ``value`` scaled to ``largest``."""
    shown: list[Text | str] = [Text(_printable(cell)) for cell in cells]
    if bars:
        length = round(BAR_WIDTH * value / largest) if largest else 0
        shown.append(Text("█" * max(1 if value else 0, length), colour))
    table.add_row(*shown, *extra)


def _note(rows: Sequence[object], note: str, none: str) -> str:
    """What the section's figures mean, or, when it has none, that it has none."""
    return note if rows else none


def _printable(text: str) -> str:
    """Text from the trail with control characters (a terminal's escape sequences among
    them) shown as "?": a role or a person's id cannot repaint the terminal."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, _PLACES)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
