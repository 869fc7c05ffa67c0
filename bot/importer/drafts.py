"""The roles.yaml draft: mined roles that grant through the sources that exist today
(or, consolidated, through one proposed definition each), with approvers.yaml beside it
(approving.py).

Each role × environment grants the sources behind its cells on exactly the scopes of
those cells, so the drafts work on day one without creating anything, and nobody is
given more than the mining gave them (with ``--max-overgrant 0``: what they hold today).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.importer.access import Capability, Imported
from bot.importer.approving import approvers_draft
from bot.importer.consolidation import Proposals, proposals, through, widened
from bot.importer.holdings import Cell, Held
from bot.importer.mining import Mining
from bot.importer.naming import role_names

MAX_DURATION = "8h"
DEFAULT_DURATION = "1h"
_DESCRIPTION_MAX = 200


@dataclass(frozen=True)
class Drafts:
    roles: dict[str, Any]  # roles.yaml
    approvers: dict[str, Any]  # approvers.yaml
    names: Mapping[str, str]  # mined role name (role-N) → proposed name
    admins: tuple[str, ...]  # who holds admin-like access today (the proposed approvers)
    fallback: str | None  # the Slack user group added when admins alone cannot approve
    proposals: Proposals  # role → (name to create it under, its merged definition)


def draft(
    mining: Mining[str, Cell], held: Held, imported: Imported, *, consolidate: bool = False
) -> Drafts:
    """The drafts; with ``consolidate``, each role grants through its one proposed
    definition instead of today's sources."""
    names = role_names(mining, held, imported)
    proposed = proposals(mining, held, imported, names)
    roles: dict[str, Any] = {}
    wider: set[tuple[str, str]] = set()
    for role in mining.roles:
        name = names[role.name]
        environments = role_environments(role.permissions, held, imported)
        if consolidate and name in proposed:
            environments = through(proposed[name][0], role.permissions, imported)
            wider |= {(name, env) for env in widened(role.permissions, imported)}
        roles[name] = {
            "description": _description(role.permissions, imported.cloud.key),
            "max_duration": MAX_DURATION,
            "default_duration": DEFAULT_DURATION,
            "environments": environments,
        }
    approvers = approvers_draft(roles, mining, held, imported, names, wider)
    return Drafts(
        {"roles": roles},
        approvers.document,
        names,
        approvers.admins,
        approvers.fallback,
        proposed,
    )


def role_environments(
    cells: tuple[Cell, ...], held: Held, imported: Imported
) -> dict[str, list[dict[str, Any]]]:
    """Environment → the roles.yaml targets granting ``cells``: each source on exactly
    the scopes where it carries one of them."""
    by_env: dict[str, dict[str, set[str]]] = {}
    for cell in cells:
        env = imported.scopes[cell[1]].environment
        for source in held.sources[cell]:
            by_env.setdefault(env, {}).setdefault(source, set()).add(cell[1])
    return {
        env: [imported.cloud.target(source, sorted(ids)) for source, ids in sorted(sets.items())]
        for env, sets in sorted(by_env.items())
    }


def _description(cells: tuple[Cell, ...], cloud: str) -> str:
    caps: list[Capability] = sorted({cap for cap, _ in cells})
    text = "; ".join(cap.describe() for cap in caps)
    if len(text) > _DESCRIPTION_MAX:
        text = text[: _DESCRIPTION_MAX - 1] + "…"
    return f"Proposed by jit-bot import {cloud}: {text}"
