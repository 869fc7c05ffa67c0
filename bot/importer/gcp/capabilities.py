"""Normalising IAM roles into capabilities: what a role lets you do, whatever it is called
and wherever it was defined.

A predefined role is its name: Google defines it once, everywhere. A custom role is the
set of permissions it includes, so the per-project copies of one custom role
(``projects/acme-prod/roles/auditor``, ``projects/acme-dev/roles/auditor``) and exact
duplicates under other names are one thing to the mining. Labels abstract the project or
organization a custom role is defined in (``projects/{project}/roles/auditor``).

Admin-like (whoever holds it today is proposed as an approver) means the role may change
who has access: it includes ``setIamPolicy`` on projects, folders or organizations, as
roles/owner, roles/resourcemanager.organizationAdmin, folderAdmin, folderIamAdmin,
projectIamAdmin and roles/iam.securityAdmin do. roles/editor is not admin-like: it changes
resources, not who may use them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.importer.gcp.estate import Role

PROJECT_PLACEHOLDER = "{project}"
ORGANIZATION_PLACEHOLDER = "{organization}"
ADMIN_PERMISSIONS = frozenset(
    {
        "resourcemanager.projects.setIamPolicy",
        "resourcemanager.folders.setIamPolicy",
        "resourcemanager.organizations.setIamPolicy",
    }
)
_OWNER = "roles/owner"
_CUSTOM = re.compile(r"^(projects|organizations)/[^/]+/roles/(.+)$")
_DESCRIBED_MAX = 8  # permissions named in describe() before "and N more"


@dataclass(frozen=True, order=True)
class Capability:
    """What a role grants; hashable, so it is a column label of the mining matrix."""

    role: str  # a predefined role's name; "" for a custom role
    permissions: tuple[str, ...]  # a custom role's included permissions; () if predefined
    # What a predefined role includes, as IAM said: for admin_like and features only
    # (the name alone decides what it is).
    includes: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def admin_like(self) -> bool:
        """May change IAM policies (see the module's docstring)."""
        granted = set(self.permissions) | self.includes
        return self.role == _OWNER or bool(granted & ADMIN_PERMISSIONS)

    def describe(self) -> str:
        if self.role:
            return self.role
        shown = ", ".join(self.permissions[:_DESCRIBED_MAX])
        more = len(self.permissions) - _DESCRIBED_MAX
        return f"custom: {shown}{f' and {more} more' if more > 0 else ''}" if shown else "nothing"

    def features(self) -> frozenset[str]:
        """The permissions it includes; a predefined role IAM did not describe, its name."""
        if self.role and not self.includes:
            return frozenset({self.role})
        return frozenset(self.permissions) | self.includes


def capability_of(role: Role) -> Capability:
    if role.custom:
        return Capability("", tuple(sorted(set(role.permissions))))
    return Capability(role.name, (), frozenset(role.permissions))


def capabilities(roles: Mapping[str, Role]) -> dict[str, Capability]:
    """Role name → its capability."""
    return {name: capability_of(role) for name, role in roles.items()}


def label(role: str) -> str:
    """The role's name with the project or organization of a custom role abstracted."""
    match = _CUSTOM.match(role)
    if match is None:
        return role
    kind = match.group(1)
    where = PROJECT_PLACEHOLDER if kind == "projects" else ORGANIZATION_PLACEHOLDER
    return f"{kind}/{where}/roles/{match.group(2)}"
