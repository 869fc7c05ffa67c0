"""Normalising Azure role definitions into capabilities: what a role lets you do,
whatever it is called and whichever subscription it was copied for.

A capability is the role's permissions: each entry's actions, notActions, dataActions and
notDataActions in lower case (Azure matches them without case), sorted, without
repeats. Entries that exclude nothing are one entry (their union is what they grant), and
the same entry twice is once. A role's assignable scopes are not part of it: they say
where it may be assigned, the assignment says where it is held. So the per-subscription
copies of a custom role ("VM Operator (prod)" assignable on one subscription, "VM
Operator (dev)" on another) are one thing to the mining, and so are exact duplicates and
a custom copy of a built-in role.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from bot.importer.azure.estate import Permission, RoleDefinition

#: Who may write role assignments may give anyone, themselves included, any role.
_GRANTING = "microsoft.authorization/roleassignments/write"


@dataclass(frozen=True, order=True)
class Capability:
    """What a role definition grants; hashable, so it is a column of the mining matrix."""

    permissions: tuple[Permission, ...]

    @property
    def admin_like(self) -> bool:
        """Full control: every action (Owner, or a custom copy of it), or the right to
        assign roles (User Access Administrator, Role Based Access Control Administrator),
        which is every right one step later. Contributor is not: it may not assign."""
        for p in self.permissions:
            if "*" in p.actions and not p.not_actions:
                return True
            if _matches(p.actions, _GRANTING) and not _matches(p.not_actions, _GRANTING):
                return True
        return False

    def describe(self) -> str:
        """One line for people: the actions it grants, and those it excludes."""
        parts: list[str] = []
        for p in self.permissions:
            parts += p.actions
            parts += [f"data {a}" for a in p.data_actions]
            parts += [f"not {a}" for a in p.not_actions]
            parts += [f"not data {a}" for a in p.not_data_actions]
        return ", ".join(parts) if parts else "no permissions"

    def features(self) -> frozenset[str]:
        """Each action item by item; an exclusion names the entry it narrows, since
        "* but not delete" and "*" share "*" yet grant differently."""
        items: set[str] = set()
        for p in self.permissions:
            but = f" but not {', '.join(p.not_actions)}" if p.not_actions else ""
            items |= {f"action {a}{but}" for a in p.actions}
            but = f" but not {', '.join(p.not_data_actions)}" if p.not_data_actions else ""
            items |= {f"data action {a}{but}" for a in p.data_actions}
        return frozenset(items)


def capability_of(role: RoleDefinition) -> Capability:
    return Capability(normalised(role.permissions))


def capabilities(roles: Iterable[RoleDefinition]) -> dict[str, Capability]:
    """Role definition guid → its capability."""
    return {role.guid: capability_of(role) for role in roles}


def normalised(permissions: Iterable[Permission]) -> tuple[Permission, ...]:
    entries = {
        Permission(
            _actions(p.actions),
            _actions(p.not_actions),
            _actions(p.data_actions),
            _actions(p.not_data_actions),
        )
        for p in permissions
    }
    narrowed = {p for p in entries if p.not_actions or p.not_data_actions}
    plain = entries - narrowed
    if plain:  # entries that exclude nothing grant their union
        merged = Permission(
            _actions(a for p in plain for a in p.actions),
            data_actions=_actions(a for p in plain for a in p.data_actions),
        )
        narrowed.add(merged)
    return tuple(sorted(p for p in narrowed if p.actions or p.data_actions))


def _actions(actions: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({a.strip().lower() for a in actions if a.strip()}))


def _matches(patterns: Iterable[str], action: str) -> bool:
    """Whether one of Azure's action patterns (``*`` matches any run of characters)
    covers ``action``."""
    return any(
        re.fullmatch(".*".join(re.escape(piece) for piece in pattern.split("*")), action)
        for pattern in patterns
    )
