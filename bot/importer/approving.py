"""The approvers.yaml draft: who approves the proposed roles, and who is approved
automatically.

The approver group is proposed from whoever holds admin-like access today, in
production-like environments where there are such holders (an admin of their own sandbox
is no approver of production); a lone approver cannot approve their own requests, so a
Slack user group is added beside them. Production-like environments require the group's
approval. Elsewhere the people who hold a role's access standing today are approved
automatically (they lose nothing, and gain an end time); everyone else may request any
role and asks the group (the last rule).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from bot.config.models import DOMAIN
from bot.importer.access import CannotImport, Imported
from bot.importer.holdings import Cell, Held
from bot.importer.mining import Mining

_PROD_LIKE = re.compile(r"(^|[-_])(prod|production|prd|live)([-_]|\d|$)")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
Standing = dict[tuple[str, str], list[str]]


@dataclass(frozen=True)
class Approvers:
    document: dict[str, Any]  # approvers.yaml
    admins: tuple[str, ...]  # the approver group as proposed from today's admins
    fallback: str | None  # the Slack user group added when admins alone cannot approve


def prod_like(environment: str) -> bool:
    return bool(_PROD_LIKE.search(environment))


def is_email(text: str) -> bool:
    return bool(_EMAIL.match(text))


def approvers_draft(
    roles: Mapping[str, Any],
    mining: Mining[str, Cell],
    held: Held,
    imported: Imported,
    names: Mapping[str, str],
    wider: Collection[tuple[str, str]] = (),
) -> Approvers:
    """``wider``: (role, environment) where the role gives more than its cells (as
    consolidated): nobody is approved automatically there."""
    domains = sorted({p.rsplit("@", 1)[1] for p in held.people if is_email(p)})
    domains = [d for d in domains if DOMAIN.match(d)]
    if not domains:
        raise CannotImport(
            "nobody in the estate has an email address (jit-bot knows people by their "
            "Slack email): map the users to emails in the identity source, then import again"
        )
    group = imported.cloud.approver_group
    admins = _admins(held, imported)
    fallback = f"@{group}" if len(admins) < 2 else None
    standing = _standing(mining, names, imported)
    rules: list[dict[str, Any]] = []
    for name, role in roles.items():
        for env in role["environments"]:
            people = [] if (name, env) in wider else standing.get((name, env), [])
            rules.append(_rule(name, env, group, people))
    rules.append({"roles": ["*"], "environments": ["*"], "approvers": [group]})
    document: dict[str, Any] = {
        "groups": {group: [*admins, *([fallback] if fallback else [])]},
        "rules": rules,
        "settings": {"allowed_email_domains": domains},
    }
    return Approvers(document, admins, fallback)


def _admins(held: Held, imported: Imported) -> tuple[str, ...]:
    """People with admin-like access in a production-like environment; where nobody has
    that, anywhere."""
    found: dict[bool, set[str]] = {True: set(), False: set()}
    for person, (cap, scope) in held.pairs:
        if cap.admin_like and is_email(person):
            found[prod_like(imported.scopes[scope].environment)].add(person)
    return tuple(sorted(found[True] or found[False]))


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
