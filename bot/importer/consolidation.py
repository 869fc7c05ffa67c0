"""``--consolidate`` and the proposals behind it: one merged definition per role (an
AWS permission set, a GCP or Azure custom role) from the sources it grants through today,
named uniquely within the cloud's length limit, and where granting it whole on every
scope the role reaches is more than the role's cells.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from bot.importer.access import Imported
from bot.importer.holdings import Cell, Held
from bot.importer.mining import Mining

Proposals = dict[str, tuple[str, dict[str, Any]]]  # role → (name to create, definition)


def proposals(
    mining: Mining[str, Cell], held: Held, imported: Imported, names: Mapping[str, str]
) -> Proposals:
    """Role → its merged definition, where the cloud has them."""
    propose = imported.cloud.propose
    if propose is None:
        return {}
    found: Proposals = {}
    taken: set[str] = set()
    for role in mining.roles:
        # each source as it grants on the role's cells (its capability there)
        sources = {
            (s, cap): replace(imported.sources[s], capability=cap)
            for cap, scope in role.permissions
            for s in held.sources[(cap, scope)]
        }
        ordered = [sources[key] for key in sorted(sources, key=lambda k: (k[0], repr(k[1])))]
        created, document = propose(names[role.name], ordered)
        if created in taken:  # two roles' names cut to one by the cloud's length limit
            created, document = propose(names[role.name], ordered, _unique(created, taken))
        taken.add(created)
        found[names[role.name]] = (created, document)
    return found


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or with -2, -3 … in place of its last characters (a cloud's name limit
    can cut two roles' names to one)."""
    n, found = 2, name
    while found in taken:
        suffix = f"-{n}"
        found, n = name[: len(name) - len(suffix)] + suffix, n + 1
    return found


def through(
    created: str, cells: tuple[Cell, ...], imported: Imported
) -> dict[str, list[dict[str, Any]]]:
    """Environment → the one proposed definition granted on every scope the role
    reaches there (widened says where that is more than its cells)."""
    by_env: dict[str, set[str]] = {}
    for _, scope in cells:
        by_env.setdefault(imported.scopes[scope].environment, set()).add(scope)
    return {
        env: [imported.cloud.target(created, sorted(scopes))]
        for env, scopes in sorted(by_env.items())
    }


def widened(cells: tuple[Cell, ...], imported: Imported) -> dict[str, int]:
    """Environment → how many (capability, scope) cells the role's merged definition
    grants there beyond its cells: it carries all of the role's capabilities, and is
    granted whole on every scope the role reaches in the environment."""
    caps = {cap for cap, _ in cells}
    held: dict[str, set[str]] = {}
    count: dict[str, int] = {}
    for _, scope in cells:
        env = imported.scopes[scope].environment
        held.setdefault(env, set()).add(scope)
        count[env] = count.get(env, 0) + 1
    return {
        env: len(caps) * len(scopes) - count[env]
        for env, scopes in sorted(held.items())
        if len(caps) * len(scopes) > count[env]
    }


def consolidation_widens(
    mining: Mining[str, Cell], imported: Imported, names: Mapping[str, str]
) -> dict[str, int]:
    """Role → how many cells its merged definition grants beyond its cells, in all."""
    found = {names[r.name]: sum(widened(r.permissions, imported).values()) for r in mining.roles}
    return {name: n for name, n in found.items() if n}
