"""A GCP estate in the import's own words (bot.importer.access): IAM roles are the
sources, projects, folders and the organization the scopes, and a role grants an IAM
role on some of them (providers/gcp/target.py GcpTarget).

Also the one custom role proposed per functional role: every permission of the roles it
replaces (a predefined role's as IAM lists them), in the shape of IAM's Role resource, to
be created in the organization (or, without one, in the project imported).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from bot.importer.access import Cloud, Imported, Proposal, Scope, Source
from bot.importer.gcp.capabilities import (
    ORGANIZATION_PLACEHOLDER,
    Capability,
    capabilities,
    label,
)
from bot.importer.gcp.estate import BASIC_ROLES, Estate
from bot.importer.gcp.members import holdings
from providers.gcp.target import DomainMap

_ROLE_ID = re.compile(r"[^a-zA-Z0-9_.]")
_ROLE_ID_MAX = 64
_TITLE_MAX = 100
_DESCRIPTION_MAX = 256
_KINDS = ("projects", "folders", "organizations")


def gcp_target(role: str, scopes: Sequence[str]) -> dict[str, Any]:
    """The roles.yaml target granting ``role`` on ``scopes`` (resource names)."""
    by_kind: dict[str, list[str]] = {kind: [] for kind in _KINDS}
    for scope in scopes:
        kind, _, ident = scope.partition("/")
        by_kind[kind].append(ident)
    target: dict[str, Any] = {"provider": "gcp", "role": role}
    if by_kind["projects"]:
        target["projects"] = by_kind["projects"]
    if by_kind["folders"]:
        target["folders"] = by_kind["folders"]
    if by_kind["organizations"]:
        target["organization"] = by_kind["organizations"][0]
    return target


def custom_roles_parent(estate: Estate) -> str:
    """Where the proposed custom roles are to be created: the organization, so they can
    be granted anywhere in it; without one, the project imported (granted there only);
    otherwise the organization's id is left for the team to fill in."""
    if estate.organization:
        return estate.organization
    if estate.node.startswith("projects/"):
        return estate.node
    return f"organizations/{ORGANIZATION_PLACEHOLDER}"


def custom_role_proposal(parent: str) -> Proposal:
    """A Proposal of one custom role under ``parent``, with the permissions of all the
    roles it replaces."""

    def propose(
        role: str, sources: Sequence[Source], name: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        role_id = _ROLE_ID.sub("_", f"jit_{role}")[:_ROLE_ID_MAX]
        name = name or f"{parent}/roles/{role_id}"
        caps = [s.capability for s in sources if isinstance(s.capability, Capability)]
        permissions = sorted({p for cap in caps for p in (*cap.permissions, *cap.includes)})
        replaced = ", ".join(sorted({s.label for s in sources}))
        document = {
            "name": name,
            "title": f"jit-bot {role}"[:_TITLE_MAX],
            "description": f"jit-bot role {role}; replaces {replaced}"[:_DESCRIPTION_MAX],
            "includedPermissions": permissions,
            "stage": "GA",
        }
        return name, document

    return propose


def gcp_cloud(estate: Estate) -> Cloud:
    return Cloud(
        key="gcp",
        title="Google Cloud",
        sources_noun="roles",
        scopes_noun="resources",
        target=gcp_target,
        columns=("resource", "resource_name", "iam_role"),
        approver_group="gcp-admins",
        propose=custom_role_proposal(custom_roles_parent(estate)),
        proposed_dir="custom-roles",
    )


def imported(estate: Estate, environment: Mapping[str, str], domains: DomainMap) -> Imported:
    """``environment``: resource name → environment, for the resources to propose on."""
    members = holdings(estate, domains)
    held = {h.source for h in members.holdings}
    caps = capabilities(estate.roles)
    # Custom roles defined in the tree are sources held or not (the report lists the
    # dead ones); a predefined role only where someone holds it.
    sources = {
        name: Source(name, caps[name], label(name))
        for name, role in sorted(estate.roles.items())
        if not role.deleted and name not in BASIC_ROLES and (role.custom or name in held)
    }
    scopes = {
        name: Scope(name, node.display_name, environment[name])
        for name, node in estate.nodes.items()
        if name in environment
    }
    notes = [*members.notes, *_parent_note(estate)]
    return Imported(gcp_cloud(estate), sources, scopes, members.holdings, tuple(notes))


def _parent_note(estate: Estate) -> list[str]:
    if estate.organization:
        return []
    where = custom_roles_parent(estate)
    if where == estate.node:
        return [
            f"No organization above {estate.node} could be read: the proposed custom "
            f"roles are defined in {where}, and can be granted there only."
        ]
    return [
        f"No organization above {estate.node} could be read: the proposed custom roles "
        f"name it {where}; put its number there before creating them."
    ]
