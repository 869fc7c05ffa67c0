"""The roles.yaml and approvers.yaml drafts: mined roles that grant through the
permission sets that exist today, and who approves them.

Each role × environment grants the permission sets behind its cells on the accounts they
are assigned on today, so the drafts work on day one without creating anything. The
approver group is proposed from whoever holds admin-like sets today; production-like
environments require its approval, elsewhere today's holders are approved automatically
and everyone else asks the group.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.importer.aws.capabilities import Capability
from bot.importer.aws.environments import environment_name
from bot.importer.aws.holdings import Cell, Holdings
from bot.importer.mining import Mining

APPROVER_GROUP = "aws-admins"
#: When nobody holds an admin-like set: a Slack user group to fill in, named in the report.
FALLBACK_APPROVER = "@aws-admins"
MAX_DURATION = "8h"
DEFAULT_DURATION = "1h"
_PROD_LIKE = re.compile(r"(^|[-_])(prod|production|prd|live)([-_]|\d|$)")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DESCRIPTION_MAX = 200


@dataclass(frozen=True)
class Drafts:
    roles: dict[str, Any]  # roles.yaml
    approvers: dict[str, Any]  # approvers.yaml
    names: Mapping[str, str]  # mined role name (role-N) → proposed name
    admins: tuple[str, ...]  # the approver group as proposed; empty: the fallback


def prod_like(environment: str) -> bool:
    return bool(_PROD_LIKE.search(environment))


def draft(
    mining: Mining[str, Cell],
    held: Holdings,
    cap_names: Mapping[Capability, tuple[str, ...]],
) -> Drafts:
    names = _role_names(mining, cap_names)
    roles: dict[str, Any] = {}
    for role in mining.roles:
        roles[names[role.name]] = {
            "description": _description(role.permissions),
            "max_duration": MAX_DURATION,
            "default_duration": DEFAULT_DURATION,
            "environments": _environments(role.permissions, held),
        }
    admins = _admins(held)
    holders: dict[str, list[str]] = {}
    for person, role_names in mining.assignments.items():
        for name in role_names:
            holders.setdefault(names[name], []).append(person)
    rules: list[dict[str, Any]] = []
    for name, role in roles.items():
        for env in role["environments"]:
            rules.append(_rule(name, env, sorted(holders.get(name, []))))
    rules.append({"roles": ["*"], "environments": ["*"], "approvers": [APPROVER_GROUP]})
    domains = sorted({p.rsplit("@", 1)[1] for p in held.people if _EMAIL.match(p)})
    approvers: dict[str, Any] = {
        "groups": {APPROVER_GROUP: list(admins) or [FALLBACK_APPROVER]},
        "rules": rules,
        "settings": {"allowed_email_domains": domains},
    }
    return Drafts({"roles": roles}, approvers, names, admins)


def _role_names(
    mining: Mining[str, Cell], cap_names: Mapping[Capability, tuple[str, ...]]
) -> dict[str, str]:
    """Each role named from the permission set that carries most of it (its first
    capability's shortest name), made unique and valid for roles.yaml."""
    taken: set[str] = set()
    names: dict[str, str] = {}
    for role in mining.roles:
        caps = sorted({cap for cap, _ in role.permissions}, key=lambda c: cap_names[c][0])
        base = environment_name(cap_names[caps[0]][0].replace("{account}", ""))[:56]
        if len(caps) > 1:
            base = f"{base}-plus"
        name, n = base, 2
        while name in taken:
            name, n = f"{base}-{n}", n + 1
        taken.add(name)
        names[role.name] = name
    return names


def _description(cells: tuple[Cell, ...]) -> str:
    caps = sorted({cap for cap, _ in cells})
    text = "; ".join(cap.describe() for cap in caps)
    if len(text) > _DESCRIPTION_MAX:
        text = text[: _DESCRIPTION_MAX - 1] + "…"
    return f"Proposed by jit-bot import aws: {text}"


def _environments(cells: tuple[Cell, ...], held: Holdings) -> dict[str, list[dict[str, Any]]]:
    by_env: dict[str, dict[str, set[str]]] = {}
    for cell in cells:
        for ps_name, accounts in held.sources[cell].items():
            by_env.setdefault(cell[1], {}).setdefault(ps_name, set()).update(accounts)
    return {
        env: [
            {"provider": "aws", "permission_set": ps, "accounts": sorted(accounts)}
            for ps, accounts in sorted(sets.items())
        ]
        for env, sets in sorted(by_env.items())
    }


def _admins(held: Holdings) -> tuple[str, ...]:
    return tuple(
        sorted(
            {person for person, (cap, _) in held.pairs if cap.admin_like and _EMAIL.match(person)}
        )
    )


def _rule(role: str, env: str, holders: list[str]) -> dict[str, Any]:
    if prod_like(env):
        return {
            "roles": [role],
            "environments": [env],
            "approvers": [APPROVER_GROUP],
            "required_approvals": 1,
        }
    requesters = [p for p in holders if _EMAIL.match(p)]
    if not requesters:
        return {"roles": [role], "environments": [env], "approvers": [APPROVER_GROUP]}
    # Today's holders keep what they have standing, now on request; nobody else is
    # approved automatically (the last rule sends them to the approver group).
    return {"roles": [role], "environments": [env], "requesters": requesters, "auto_approve": True}
