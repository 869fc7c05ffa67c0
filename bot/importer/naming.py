"""Names for proposed roles, from what the estate already calls that access.

A role most of whose people get it through one group today is named after that group
(the team it serves); otherwise after the source that carries most of it (its label, with
scope ids abstracted), with ``-plus`` when it bundles more. Names are made valid for
roles.yaml (lower case, letters, digits, ``-`` and ``_``) and unique.
"""

from __future__ import annotations

import re
from collections import Counter

from bot.importer.access import Imported
from bot.importer.holdings import Cell, Held
from bot.importer.mining import Mining, Role

NAME_MAX = 56  # roles.yaml allows 64; room for a "-N" that makes a name unique
_INVALID = re.compile(r"[^a-z0-9_-]+")
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def valid_name(text: str, fallback: str = "default") -> str:
    """``text`` as a roles.yaml name: lower case, letters, digits, ``-`` and ``_``."""
    name = _INVALID.sub("-", text.strip().lower()).strip("-_")[:NAME_MAX].strip("-_")
    return name or fallback


def role_names(mining: Mining[str, Cell], held: Held, imported: Imported) -> dict[str, str]:
    """Mined role name (role-N) → proposed name, in the mining's order."""
    via_groups = _groups_by_cell(held, imported)
    holders: Counter[str] = Counter(r for mined in mining.assignments.values() for r in mined)
    taken: set[str] = set()
    names: dict[str, str] = {}
    for role in mining.roles:
        base = _group_name(role, via_groups, holders[role.name])
        if not base or base in taken:
            base = _source_name(role, held, imported)
        name, n = base, 2
        while name in taken:
            name, n = f"{base}-{n}", n + 1
        taken.add(name)
        names[role.name] = name
    return names


def _groups_by_cell(held: Held, imported: Imported) -> dict[Cell, Counter[str]]:
    """Cell → group name → how many people the group brings to it."""
    found: dict[Cell, Counter[str]] = {}
    for holding, cell in zip(imported.holdings, held.cells, strict=True):
        if cell is not None and holding.principal_type == "GROUP" and holding.people:
            found.setdefault(cell, Counter())[holding.principal] += len(holding.people)
    return found


def _group_name(role: Role[Cell], via_groups: dict[Cell, Counter[str]], people: int) -> str:
    """The group that brings more than half the role's people to every one of its
    cells, if there is one."""
    common: set[str] | None = None
    for cell in role.permissions:
        enough = {g for g, n in via_groups.get(cell, Counter()).items() if 2 * n > people}
        common = enough if common is None else common & enough
        if not common:
            return ""
    return valid_name(_short(min(common)), fallback="") if common else ""


def _short(label: str) -> str:
    """The part of a label that names the thing: placeholders for scope ids dropped, the
    last segment of a path (projects/{project}/roles/auditor → auditor), the local part
    of a group's email (developers@example.com → developers)."""
    label = _PLACEHOLDER.sub("", label).rstrip("/")
    label = label.rsplit("/", 1)[-1]
    return label.split("@", 1)[0] if "@" in label else label


def _source_name(role: Role[Cell], held: Held, imported: Imported) -> str:
    weight: Counter[str] = Counter()
    for cell in role.permissions:
        for source in held.sources[cell]:
            weight[_short(imported.sources[source].label)] += 1
    best = min(weight, key=lambda label: (-weight[label], len(label), label))
    base = valid_name(best, fallback="role")
    return f"{base}-plus" if len({cap for cap, _ in role.permissions}) > 1 else base
