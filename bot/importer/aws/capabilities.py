"""Normalising permission sets into capabilities: what a set lets you do, whatever it is
called and whichever account it was copied for.

A capability is what a set grants on one account: its managed policy ARNs, its
customer-managed policy references, its permissions boundary and its inline statements as
``service:Action`` patterns with their resources, the id of that account replaced by a
placeholder. Two sets with the same capability are one thing to the mining: per-account
copies ("ProdReadOnly-111111111111" assigned on 111111111111, "ProdReadOnly-222222222222"
on 222222222222) and exact duplicates merge. Another account's id stays as it is: a set
that assumes a role in 222222222222 grants something else than one that assumes a role
in 333333333333, wherever each is assigned.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bot.importer.aws.estate import PermissionSet

ACCOUNT_PLACEHOLDER = "{account}"
_ACCOUNT_ID = re.compile(r"(?<!\d)\d{12}(?!\d)")
_ADMIN_POLICIES = ("AdministratorAccess",)


@dataclass(frozen=True, order=True)
class Statement:
    effect: str
    not_action: bool  # NotAction: every action but those listed
    actions: tuple[str, ...]  # lower-case: IAM matches actions case-insensitively
    not_resource: bool  # NotResource: every resource but those listed
    resources: tuple[str, ...]
    condition: str  # canonical JSON, "" when there is none

    @property
    def negated(self) -> bool:
        return self.not_action or self.not_resource


@dataclass(frozen=True, order=True)
class Capability:
    """What a permission set grants, with account ids abstracted; hashable, so it is a
    column label of the mining matrix."""

    managed: tuple[str, ...]
    customer_managed: tuple[str, ...]
    statements: tuple[Statement, ...]
    unparsed: str = ""  # an inline policy that is not JSON, normalised as text
    boundary: str = ""  # the permissions boundary, normalised; "" when there is none

    @property
    def admin_like(self) -> bool:
        """Full access: an administrator policy, or Allow * on *."""
        if any(arn.endswith(f"/{name}") for arn in self.managed for name in _ADMIN_POLICIES):
            return True
        return any(
            s.effect == "Allow" and not s.negated and "*" in s.actions and "*" in s.resources
            for s in self.statements
        )

    def describe(self) -> str:
        """One line for people: the policies and actions it grants."""
        parts = [arn.rsplit("/", 1)[-1] for arn in self.managed]
        parts += [f"customer policy {name}" for name in self.customer_managed]
        actions = sorted({a for s in self.statements if s.effect == "Allow" for a in s.actions})
        parts += actions
        if self.boundary:
            parts.append(f"within boundary {self.boundary.rsplit('/', 1)[-1]}")
        return ", ".join(parts) if parts else "no policy"

    def features(self) -> frozenset[str]:
        """Each managed or customer-managed policy, and each action on each resource of
        its statements (with its effect and condition)."""
        items = {f"policy {arn}" for arn in self.managed}
        items |= {f"customer policy {name}" for name in self.customer_managed}
        for s in self.statements:
            effect = f"{s.effect}{' not' if s.negated else ''}"
            condition = f" if {s.condition}" if s.condition else ""
            items |= {f"{effect} {a} on {r}{condition}" for a in s.actions for r in s.resources}
        if self.unparsed:
            items.add(f"inline {self.unparsed}")
        if self.boundary:
            items.add(f"boundary {self.boundary}")
        return frozenset(items)


def normalise(text: str, account: str | None = None) -> str:
    """``account``'s id replaced by the placeholder: the account a set is assigned on
    names itself, and another account's id means that other account. Without an account
    (a set assigned nowhere, only compared), every 12-digit id."""
    if account is None:
        return _ACCOUNT_ID.sub(ACCOUNT_PLACEHOLDER, text)
    return re.sub(rf"(?<!\d){re.escape(account)}(?!\d)", ACCOUNT_PLACEHOLDER, text)


def capability_of(permission_set: PermissionSet, account: str | None = None) -> Capability:
    """What ``permission_set`` grants on ``account``, that account's id abstracted."""
    statements: tuple[Statement, ...] = ()
    unparsed = ""
    if permission_set.inline_policy:
        try:
            statements = _statements(json.loads(permission_set.inline_policy), account)
        except (ValueError, TypeError, AttributeError):
            unparsed = normalise(permission_set.inline_policy, account)
    return Capability(
        managed=tuple(sorted({normalise(a, account) for a in permission_set.managed_policies})),
        customer_managed=tuple(
            sorted({normalise(c, account) for c in permission_set.customer_managed})
        ),
        statements=statements,
        unparsed=unparsed,
        boundary=normalise(permission_set.boundary or "", account),
    )


def capabilities(sets: Iterable[PermissionSet]) -> dict[str, Capability]:
    """Permission set ARN → its capability compared across accounts (every account id
    abstracted): for sets assigned nowhere, and for tests."""
    return {ps.arn: capability_of(ps) for ps in sets}


def _statements(document: Any, account: str | None) -> tuple[Statement, ...]:
    raw = document["Statement"]
    listed = raw if isinstance(raw, list) else [raw]
    found = set()
    for statement in listed:
        actions = statement.get("Action", statement.get("NotAction", []))
        resources = statement.get("Resource", statement.get("NotResource", []))
        condition = statement.get("Condition")
        found.add(
            Statement(
                effect=str(statement.get("Effect", "Allow")),
                not_action="NotAction" in statement,
                actions=tuple(sorted({a.lower() for a in _listed(actions)})),
                not_resource="NotResource" in statement,
                resources=tuple(sorted({normalise(r, account) for r in _listed(resources)})),
                condition=normalise(json.dumps(condition, sort_keys=True), account)
                if condition
                else "",
            )
        )
    return tuple(sorted(found))


def _listed(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]
