"""The roles.yaml and approvers.yaml drafts: mined roles that grant through the sources
that exist today, and who approves them.

Each role × environment grants the sources behind its cells on exactly the scopes of
those cells, so the drafts work on day one without creating anything, and nobody can
request more than the mining gave them. The approver group is proposed from whoever holds
admin-like access today; production-like environments require its approval. Elsewhere
the people who hold a role's access standing today are approved automatically (they lose
nothing, and gain an end time), and everyone else asks the group.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.importer.access import Capability, Imported
from bot.importer.holdings import Cell, Held
from bot.importer.mining import Mining
from bot.importer.naming import role_names

MAX_DURATION = "8h"
DEFAULT_DURATION = "1h"
_PROD_LIKE = re.compile(r"(^|[-_])(prod|production|prd|live)([-_]|\d|$)")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DESCRIPTION_MAX = 200
Standing = dict[tuple[str, str], list[str]]


@dataclass(frozen=True)
class Drafts:
    roles: dict[str, Any]  # roles.yaml
    approvers: dict[str, Any]  # approvers.yaml
    names: Mapping[str, str]  # mined role name (role-N) → proposed name
    admins: tuple[str, ...]  # who holds admin-like access today (the proposed approvers)
    fallback: str | None  # the Slack user group added when admins alone cannot approve
    # role → (name to create it under, its merged definition), where the cloud has them
    proposals: Mapping[str, tuple[str, dict[str, Any]]]


def prod_like(environment: str) -> bool:
    return bool(_PROD_LIKE.search(environment))


def is_email(text: str) -> bool:
    return bool(_EMAIL.match(text))


def draft(
    mining: Mining[str, Cell], held: Held, imported: Imported, *, consolidate: bool = False
) -> Drafts:
    """The drafts; with ``consolidate``, each role grants through its one proposed
    definition instead of today's sources."""
    names = role_names(mining, held, imported)
    proposals = _proposals(mining, held, imported, names)
    roles: dict[str, Any] = {}
    for role in mining.roles:
        name = names[role.name]
        environments = role_environments(role.permissions, held, imported)
        if consolidate and name in proposals:
            environments = _through(proposals[name][0], environments, role.permissions, imported)
        roles[name] = {
            "description": _description(role.permissions, imported.cloud.key),
            "max_duration": MAX_DURATION,
            "default_duration": DEFAULT_DURATION,
            "environments": environments,
        }
    group = imported.cloud.approver_group
    admins = _admins(held)
    # One approver cannot approve their own request: a second is needed for theirs.
    fallback = f"@{group}" if len(admins) < 2 else None
    standing = _standing(mining, names, imported)
    rules: list[dict[str, Any]] = []
    for name, role in roles.items():
        for env in role["environments"]:
            rules.append(_rule(name, env, group, standing.get((name, env), [])))
    rules.append({"roles": ["*"], "environments": ["*"], "approvers": [group]})
    domains = sorted({p.rsplit("@", 1)[1] for p in held.people if is_email(p)})
    approvers: dict[str, Any] = {
        "groups": {group: [*admins, *([fallback] if fallback else [])]},
        "rules": rules,
        "settings": {"allowed_email_domains": domains},
    }
    return Drafts({"roles": roles}, approvers, names, admins, fallback, proposals)


def _proposals(
    mining: Mining[str, Cell], held: Held, imported: Imported, names: Mapping[str, str]
) -> dict[str, tuple[str, dict[str, Any]]]:
    propose = imported.cloud.propose
    if propose is None:
        return {}
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for role in mining.roles:
        sources = sorted({s for cell in role.permissions for s in held.sources[cell]})
        found[names[role.name]] = propose(names[role.name], [imported.sources[s] for s in sources])
    return found


def _through(
    created: str,
    environments: dict[str, list[dict[str, Any]]],
    cells: tuple[Cell, ...],
    imported: Imported,
) -> dict[str, list[dict[str, Any]]]:
    """Each environment granting the one proposed definition on every scope the role
    reaches there (consolidation.widened says where that is more than today)."""
    return {
        env: [
            imported.cloud.target(
                created,
                sorted({s for _, s in cells if imported.scopes[s].environment == env}),
            )
        ]
        for env in environments
    }


def consolidation_widens(
    mining: Mining[str, Cell], imported: Imported, names: Mapping[str, str]
) -> dict[str, int]:
    """Role → how many (capability, scope) cells its one merged definition grants beyond
    its cells: a merged definition is granted whole on every scope the role reaches."""
    wider: dict[str, int] = {}
    for role in mining.roles:
        caps = {cap for cap, _ in role.permissions}
        by_env: dict[str, set[str]] = {}
        for _, scope in role.permissions:
            by_env.setdefault(imported.scopes[scope].environment, set()).add(scope)
        product = sum(len(caps) * len(scopes) for scopes in by_env.values())
        if product > len(role.permissions):
            wider[names[role.name]] = product - len(role.permissions)
    return wider


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


def _admins(held: Held) -> tuple[str, ...]:
    return tuple(
        sorted({person for person, (cap, _) in held.pairs if cap.admin_like and is_email(person)})
    )


def _standing(mining: Mining[str, Cell], names: Mapping[str, str], imported: Imported) -> Standing:
    """(role, environment) → the role's people who hold all of it there standing today:
    everyone given the role, less anyone to whom it gives more there than they hold
    (see --max-overgrant)."""
    cells = {names[role.name]: set(role.permissions) for role in mining.roles}
    standing: dict[tuple[str, str], list[str]] = {}
    for person in sorted(mining.assignments):
        if not is_email(person):
            continue
        extra = mining.overgrant.get(person, ())
        for mined in mining.assignments[person]:
            role = names[mined]
            wider = {imported.scopes[cell[1]].environment for cell in extra if cell in cells[role]}
            for env in {imported.scopes[scope].environment for _, scope in cells[role]} - wider:
                standing.setdefault((role, env), []).append(person)
    return standing


def _rule(role: str, env: str, group: str, standing: list[str]) -> dict[str, Any]:
    if prod_like(env):
        return {
            "roles": [role],
            "environments": [env],
            "approvers": [group],
            "required_approvals": 1,
        }
    if not standing:
        return {"roles": [role], "environments": [env], "approvers": [group]}
    # Today's holders keep what they have standing, now on request; nobody else is
    # approved automatically (the last rule sends them to the approver group).
    return {"roles": [role], "environments": [env], "requesters": standing, "auto_approve": True}
