"""An Azure estate in the import's own words (bot.importer.access): role definitions are
the sources, subscriptions, resource groups and resources the scopes, and a role grants a
role definition, by name, on scopes (providers/azure/target.py).

Only people are imported: assignments to service principals, to principals of other
tenants, to principals deleted from the directory, above the subscriptions (management
groups, the tenant root) or of role definitions that no longer exist are counted in the
report's notes instead. Also the one custom role proposed per functional role: the union
of its sources' permissions, assignable on the subscriptions where they are held today.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from bot.importer.access import Cloud, Holding, Imported, Scope, Source
from bot.importer.azure.capabilities import Capability, capabilities, normalised
from bot.importer.azure.estate import Assignment, Estate
from bot.importer.azure.scopes import group_key, parts

_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_ROLE_NAME_MAX = 512  # Azure's limit for a custom role's name
_NOT_PEOPLE = {
    "ServicePrincipal": "service principals (applications, managed identities)",
    "ForeignGroup": "principals of other tenants",
}


def azure_target(role: str, scopes: Sequence[str]) -> dict[str, Any]:
    """The roles.yaml entry granting ``role`` on ``scopes``; the provider's default mode
    (PIM: Azure itself ends the access) is left to apply."""
    return {"provider": "azure", "role": role, "scopes": list(scopes)}


def propose_role(
    role: str,
    sources: Sequence[Source],
    name: str | None = None,
    *,
    held_in: Mapping[str, frozenset[str]],
    everywhere: Sequence[str],
) -> tuple[str, dict[str, Any]]:
    """One custom role definition for a functional role, in ARM's roleDefinition shape:
    every permission of the roles it replaces, assignable on the subscriptions where
    those are held today."""
    name = name or f"jit-bot {role}"[:_ROLE_NAME_MAX]
    entries = normalised(
        p for s in sources if isinstance(s.capability, Capability) for p in s.capability.permissions
    )
    scopes = sorted({sub for s in sources for sub in held_in.get(s.name, ())}) or everywhere
    return name, {
        "roleName": name,
        "description": f"jit-bot role {role}; replaces {', '.join(s.name for s in sources)}"[:1024],
        "type": "CustomRole",
        "permissions": [
            {
                "actions": list(p.actions),
                "notActions": list(p.not_actions),
                "dataActions": list(p.data_actions),
                "notDataActions": list(p.not_data_actions),
            }
            for p in entries
        ],
        "assignableScopes": list(scopes),
    }


def held_scopes(estate: Estate) -> list[str]:
    """The scopes the import speaks of: every subscription read, and every scope below
    one where someone holds a role."""
    found = {s.scope for s in estate.subscriptions.values()}
    found |= {_spelled(estate, a.scope) for a in _kept(estate)[0]}
    return sorted(found)


def imported(estate: Estate, environment: Mapping[str, str]) -> Imported:
    """The estate as the import's core reads it; ``environment`` is by scope (see
    held_scopes)."""
    kept, notes = _kept(estate)
    caps = capabilities(estate.roles.values())
    used = {a.role_guid for a in kept}
    sources = {
        role.name: Source(role.name, caps[role.guid], label(role.name, estate))
        for role in estate.roles.values()
        if role.guid in used or role.custom  # unused built-ins are not the estate's
    }
    scopes = {
        scope: Scope(scope, scope_name(estate, scope), environment[scope]) for scope in environment
    }
    holdings = tuple(_holding(estate, a) for a in kept)
    held_in: dict[str, set[str]] = {}
    for h in holdings:
        held_in.setdefault(h.source, set()).add(f"/subscriptions/{parts(h.scope)[0]}")
    cloud = Cloud(
        key="azure",
        title="Azure",
        sources_noun="role definitions",
        scopes_noun="scopes",
        target=azure_target,
        columns=("scope", "scope_name", "role_definition"),
        approver_group="azure-admins",
        propose=partial(
            propose_role,
            held_in={k: frozenset(v) for k, v in held_in.items()},
            everywhere=sorted(s.scope for s in estate.subscriptions.values()),
        ),
        proposed_dir="custom-roles",
    )
    return Imported(cloud, sources, scopes, holdings, notes)


def _kept(estate: Estate) -> tuple[list[Assignment], tuple[str, ...]]:
    """The assignments that reach people, and a note for each kind left out."""
    kept: list[Assignment] = []
    skipped: Counter[str] = Counter()
    for a in estate.assignments:
        if not a.scope:
            skipped["at management groups or the tenant root (above every subscription)"] += 1
        elif a.role_guid not in estate.roles:
            skipped["of role definitions that no longer exist"] += 1
        elif a.principal_type in _NOT_PEOPLE:
            skipped[f"to {_NOT_PEOPLE[a.principal_type]}"] += 1
        elif a.principal_type == "User" and a.principal_id not in estate.directory.people:
            skipped["to users no longer in the directory"] += 1
        elif a.principal_type == "Group" and a.principal_id not in estate.directory.groups:
            skipped["to groups no longer in the directory"] += 1
        elif a.principal_type not in ("User", "Group"):
            skipped[f"to principals of type {a.principal_type or 'unknown'}"] += 1
        elif a.condition:
            # jit-bot's azure targets cannot carry the condition: granted without it,
            # the role would give more than today
            skipped["with a condition (ABAC), which the proposed roles could not keep,"] += 1
        else:
            kept.append(a)
    notes = [f"{n} role assignment(s) {why} skipped." for why, n in sorted(skipped.items())]
    notes.append(
        "PIM eligible assignments were not read: only active assignments (standing, or "
        "activated now) are in this proposal."
    )
    return kept, tuple(notes)


def _holding(estate: Estate, a: Assignment) -> Holding:
    group = a.principal_type == "Group"
    principal = (
        estate.directory.groups[a.principal_id]
        if group
        else estate.directory.people[a.principal_id]
    )
    return Holding(
        estate.roles[a.role_guid].name,
        _spelled(estate, a.scope),
        "GROUP" if group else "USER",
        principal,
        estate.holders(a),
    )


def _spelled(estate: Estate, scope: str) -> str:
    """The scope with its resource group's name as Azure lists it (assignments may
    spell it in another case)."""
    subscription, group, resource = parts(scope)
    if group is None:
        return scope
    found = estate.resource_groups.get(group_key(subscription, group))
    name = found.name if found is not None else group
    spelled = f"/subscriptions/{subscription}/resourceGroups/{name}"
    return f"{spelled}/providers/{resource}" if resource else spelled


def scope_name(estate: Estate, scope: str) -> str:
    """For people: the subscription's name, then the resource group and the resource."""
    subscription, group, resource = parts(scope)
    found = estate.subscriptions.get(subscription)
    name = found.name if found is not None else subscription
    if group is not None:
        name += f"/{group}"
    if resource is not None:
        name += f"/{resource.rsplit('/', 1)[-1]}"
    return name


def label(name: str, estate: Estate) -> str:
    """The role's name without the subscription it was copied for: its id or its name
    (and the brackets or dashes left around them) taken out."""
    text = _GUID.sub("", name)
    for subscription in sorted(estate.subscriptions.values(), key=lambda s: -len(s.name)):
        if subscription.name:
            text = re.sub(re.escape(subscription.name), "", text, flags=re.I)
    text = re.sub(r"\(\s*\)|\[\s*\]", "", text)
    return re.sub(r"\s+", " ", text).strip(" -_:/") or name
