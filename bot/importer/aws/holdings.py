"""Who holds what today, as the mining sees it: people × (capability, environment).

Group assignments are expanded to their members. Each cell remembers the concrete
permission sets and accounts behind it, so a role proposed for a cell grants through
exactly the sets that carry the access today.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.importer.aws.capabilities import Capability
from bot.importer.aws.estate import Assignment, Estate

Cell = tuple[Capability, str]  # (capability, environment)


@dataclass(frozen=True)
class Holdings:
    pairs: frozenset[tuple[str, Cell]]  # (person, cell)
    # cell → permission set name → account ids it is assigned on in that environment
    sources: Mapping[Cell, Mapping[str, frozenset[str]]]
    # each assignment with the cell it falls in
    cells: Mapping[Assignment, Cell]

    @property
    def people(self) -> frozenset[str]:
        return frozenset(person for person, _ in self.pairs)


def holdings(
    estate: Estate, caps: Mapping[str, Capability], environment: Mapping[str, str]
) -> Holdings:
    pairs: set[tuple[str, Cell]] = set()
    sources: dict[Cell, dict[str, set[str]]] = {}
    cells: dict[Assignment, Cell] = {}
    for assignment in estate.assignments:
        ps = estate.permission_sets.get(assignment.permission_set_arn)
        if ps is None or assignment.account_id not in environment:
            continue  # a set or account outside what was read: nothing to grant through
        cell = (caps[ps.arn], environment[assignment.account_id])
        cells[assignment] = cell
        sources.setdefault(cell, {}).setdefault(ps.name, set()).add(assignment.account_id)
        pairs.update((person, cell) for person in estate.holders(assignment))
    frozen = {
        cell: {name: frozenset(ids) for name, ids in by_set.items()}
        for cell, by_set in sources.items()
    }
    return Holdings(frozenset(pairs), frozen, cells)
