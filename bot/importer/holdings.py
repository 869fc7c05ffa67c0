"""Who holds what today, as the mining sees it: people × (capability, scope).

A cell is a capability on one scope (an account, a project, …), so a role mined from
cells grants each of its people exactly what they hold today, scope by scope; the
environment is only how the drafts group a role's cells. Group assignments are expanded
to their members. Each cell remembers the sources (permission sets, roles) that carry it
today, so a role grants through exactly those.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.importer.access import Capability, Imported

Cell = tuple[Capability, str]  # (capability, scope id)


@dataclass(frozen=True)
class Held:
    pairs: frozenset[tuple[str, Cell]]  # (person, cell)
    sources: Mapping[Cell, frozenset[str]]  # cell → names of the sources carrying it there
    cells: tuple[Cell | None, ...]  # per holding, in order; None: outside what was read

    @property
    def people(self) -> frozenset[str]:
        return frozenset(person for person, _ in self.pairs)


def held_today(imported: Imported) -> Held:
    pairs: set[tuple[str, Cell]] = set()
    sources: dict[Cell, set[str]] = {}
    cells: list[Cell | None] = []
    for holding in imported.holdings:
        source = imported.source_of(holding)
        if source is None or holding.scope not in imported.scopes:
            cells.append(None)  # nothing to grant through
            continue
        cell = (source.capability_on(holding.scope), holding.scope)
        cells.append(cell)
        sources.setdefault(cell, set()).add(source.name)
        pairs.update((person, cell) for person in holding.people)
    frozen = {cell: frozenset(names) for cell, names in sources.items()}
    return Held(frozenset(pairs), frozen, tuple(cells))
