"""The "who can do what" matrices of report.html: people × capabilities held today, and
people × proposed roles after.

An estate of 3,000 people and 500 capabilities cannot be drawn cell by cell, and need
not be: people with identical access today are one row (the mining gives them the same
roles too), rows are ordered by the roles they get so that each role shows as a block,
and only the largest groups and the most held columns are drawn, with how many more
there are. Both matrices share their rows, so a reader compares them line by line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from bot.importer.access import Capability
from bot.importer.holdings import Cell
from bot.importer.outputs import Outcome
from bot.importer.similarity import capability_labels

MAX_ROWS = 60
MAX_COLUMNS = 80


@dataclass(frozen=True)
class Row:
    person: str  # the first of the group, who names the row
    people: int  # how many have exactly this access
    beyond_today: int  # cells each of them gets beyond today (--max-overgrant)


@dataclass(frozen=True)
class Column:
    label: str
    title: str  # what it grants, for a tooltip


@dataclass(frozen=True)
class Grid:
    rows: tuple[Row, ...]
    columns: tuple[Column, ...]
    cells: Mapping[tuple[int, int], tuple[float, str]]  # (row, column) → shade, tooltip
    hidden_rows: int  # groups of people not drawn
    hidden_people: int
    hidden_columns: int


@dataclass(frozen=True)
class _Group:
    people: tuple[str, ...]
    cells: frozenset[Cell]
    roles: tuple[int, ...]  # indexes into mining.roles


def before_after(outcome: Outcome) -> tuple[Grid, Grid]:
    """People × capabilities today, and people × proposed roles, on the same rows."""
    groups = _groups(outcome)
    shown = sorted(
        sorted(groups, key=lambda g: (-len(g.people), g.roles, g.people[0]))[:MAX_ROWS],
        key=lambda g: (g.roles, -len(g.people), g.people[0]),
    )
    hidden_people = sum(len(g.people) for g in groups) - sum(len(g.people) for g in shown)
    rows = tuple(_row(outcome, g) for g in shown)
    hidden = (len(groups) - len(shown), hidden_people)
    holders: Counter[int] = Counter()
    for group in groups:
        for k in group.roles:
            holders[k] += len(group.people)
    return _before(outcome, shown, rows, hidden), _after(outcome, holders, shown, rows, hidden)


def _groups(outcome: Outcome) -> list[_Group]:
    cells_of: dict[str, set[Cell]] = {}
    for person, cell in outcome.held.pairs:
        cells_of.setdefault(person, set()).add(cell)
    index = {role.name: k for k, role in enumerate(outcome.mining.roles)}
    by_row: dict[frozenset[Cell], list[str]] = {}
    for person in sorted(cells_of):
        by_row.setdefault(frozenset(cells_of[person]), []).append(person)
    return [
        _Group(
            tuple(people),
            row,
            tuple(sorted(index[n] for n in outcome.mining.assignments.get(people[0], ()))),
        )
        for row, people in by_row.items()
    ]


def _row(outcome: Outcome, group: _Group) -> Row:
    extra = outcome.mining.overgrant.get(group.people[0], ())
    return Row(group.people[0], len(group.people), len(extra))


def _before(
    outcome: Outcome, shown: list[_Group], rows: tuple[Row, ...], hidden: tuple[int, int]
) -> Grid:
    """Columns are the capabilities the drawn rows hold (the most held, if too many),
    ordered by the first role that carries them; a cell's shade is the share of the capability's
    scopes the row holds."""
    labels = capability_labels(outcome.imported)
    holders: Counter[Capability] = Counter(cap for _, (cap, _) in outcome.held.pairs)
    scopes: dict[Capability, set[str]] = {}
    for _, (cap, scope) in outcome.held.pairs:
        scopes.setdefault(cap, set()).add(scope)
    first_role: dict[Capability, int] = {}
    for k, role in enumerate(outcome.mining.roles):
        for cap, _ in role.permissions:
            first_role.setdefault(cap, k)
    drawn: Counter[Capability] = Counter()
    for group in shown:
        for cap in {cap for cap, _ in group.cells}:
            drawn[cap] += len(group.people)
    kept = sorted(drawn, key=lambda c: (-drawn[c], -holders[c], labels[c][0]))[:MAX_COLUMNS]
    kept.sort(key=lambda c: (first_role.get(c, len(first_role)), labels[c][0]))
    column = {cap: j for j, cap in enumerate(kept)}
    noun = outcome.imported.cloud.scopes_noun
    cells: dict[tuple[int, int], tuple[float, str]] = {}
    for i, group in enumerate(shown):
        held = Counter(cap for cap, _ in group.cells if cap in column)
        for cap, n in held.items():
            total = len(scopes[cap])
            cells[(i, column[cap])] = (n / total, f"{n} of {total} {noun}")
    columns = tuple(Column(labels[c][0], c.describe()) for c in kept)
    return Grid(rows, columns, cells, *hidden, len(holders) - len(kept))


def _after(
    outcome: Outcome,
    holders: Counter[int],
    shown: list[_Group],
    rows: tuple[Row, ...],
    hidden: tuple[int, int],
) -> Grid:
    """Columns are the proposed roles the drawn rows get (the most held, if too many),
    in the mining's order."""
    roles = outcome.mining.roles
    drawn: Counter[int] = Counter()
    for group in shown:
        for k in group.roles:
            drawn[k] += len(group.people)
    kept = sorted(sorted(drawn, key=lambda k: (-drawn[k], -holders[k], k))[:MAX_COLUMNS])
    column = {k: j for j, k in enumerate(kept)}
    names = outcome.drafts.names
    cells = {
        (i, column[k]): (1.0, names[roles[k].name])
        for i, group in enumerate(shown)
        for k in group.roles
        if k in column
    }
    columns = tuple(
        Column(names[roles[k].name], f"{len(roles[k].permissions)} cells, {holders[k]} people")
        for k in kept
    )
    return Grid(rows, columns, cells, *hidden, len(roles) - len(kept))
