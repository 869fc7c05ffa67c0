"""An AWS estate in the import's own words (bot.importer.access): permission sets are
the sources, accounts the scopes, and a role grants a permission set on accounts.

Also the one merged permission set proposed per role: its managed and customer-managed
policies, its inline statements with the account placeholder written as the policy
variable ``${aws:PrincipalAccount}`` (the account the session is in), the longest
session duration among the sets it replaces, and their permissions boundary when they
share one (when they do not, ``ReviewBoundaries`` lists them: merging would change what
one of them caps).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from bot.importer.access import Cloud, Holding, Imported, Scope, Source
from bot.importer.aws.capabilities import (
    ACCOUNT_PLACEHOLDER,
    Capability,
    Statement,
    capability_of,
    normalise,
)
from bot.importer.aws.estate import Estate, PermissionSet

_PS_NAME_MAX = 32  # AWS's limit for a permission set's name
_PS_NAME = re.compile(r"[^\w+=,.@-]")
_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?$")


def aws_target(permission_set: str, accounts: Sequence[str]) -> dict[str, Any]:
    return {"provider": "aws", "permission_set": permission_set, "accounts": list(accounts)}


def propose_permission_set(
    role: str, sources: Sequence[Source], name: str | None = None
) -> tuple[str, dict[str, Any]]:
    """The permission set to create for ``role``, replacing ``sources``."""
    name = name or _PS_NAME.sub("-", f"jit-{role}")[:_PS_NAME_MAX]
    caps = [s.capability for s in sources if isinstance(s.capability, Capability)]
    statements = [_statement(st) for cap in caps for st in cap.statements]
    durations = [d for d in (s.session_duration for s in sources) if d]
    document: dict[str, Any] = {
        "Name": name,
        "Description": f"jit-bot role {role}"[:700],
        "SessionDuration": max(durations, key=_minutes, default="PT1H"),
        "ManagedPolicies": sorted({arn for cap in caps for arn in cap.managed}),
        "CustomerManagedPolicyReferences": sorted(
            {c for cap in caps for c in cap.customer_managed}
        ),
        "ReplacesPermissionSets": sorted(s.name for s in sources),
    }
    if statements:
        document["InlinePolicy"] = {"Version": "2012-10-17", "Statement": statements}
    boundaries = sorted({cap.boundary for cap in caps})
    if boundaries != [""]:
        if len(boundaries) == 1:
            document["PermissionsBoundary"] = _boundary(boundaries[0])
        else:  # one set would cap, or cap differently, what another set grants unbounded
            document["ReviewBoundaries"] = [b or "none" for b in boundaries]
    return name, document


def _boundary(normalised: str) -> dict[str, Any]:
    """A boundary as reading.py wrote it, in PutPermissionsBoundaryToPermissionSet's shape."""
    if normalised.startswith("customer "):
        path, _, name = normalised.removeprefix("customer ").rpartition("/")
        return {"CustomerManagedPolicyReference": {"Name": name, "Path": f"{path}/"}}
    return {"ManagedPolicyArn": normalised}


def _statement(st: Statement) -> dict[str, Any]:
    """A normalised statement as IAM JSON again, the account placeholder written as the
    account the session is in."""
    account = "${aws:PrincipalAccount}"
    statement: dict[str, Any] = {
        "Effect": st.effect,
        ("NotAction" if st.not_action else "Action"): list(st.actions),
        ("NotResource" if st.not_resource else "Resource"): [
            r.replace(ACCOUNT_PLACEHOLDER, account) for r in st.resources
        ],
    }
    if st.condition:
        statement["Condition"] = json.loads(st.condition.replace(ACCOUNT_PLACEHOLDER, account))
    return statement


def _minutes(duration: str) -> int:
    match = _DURATION.match(duration)
    if not match:
        return 0
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def _source(ps: PermissionSet, accounts: list[str]) -> Source:
    """The set as a source: what it grants on each account it is assigned on, that
    account's id abstracted (a set assigned nowhere: every id abstracted)."""
    on = {a: (capability_of(ps, a), normalise(ps.name, a)) for a in accounts}
    capability, label = on[accounts[0]] if accounts else (capability_of(ps), normalise(ps.name))
    return Source(ps.name, capability, label, ps.session_duration, on)


AWS = Cloud(
    key="aws",
    title="AWS",
    sources_noun="permission sets",
    scopes_noun="accounts",
    target=aws_target,
    columns=("account_id", "account_name", "permission_set"),
    approver_group="aws-admins",
    propose=propose_permission_set,
    proposed_dir="permission-sets",
)


def imported(estate: Estate, environment: Mapping[str, str]) -> Imported:
    assigned: dict[str, set[str]] = {}
    for a in estate.assignments:
        assigned.setdefault(a.permission_set_arn, set()).add(a.account_id)
    sources = {
        ps.name: _source(ps, sorted(assigned.get(arn, ())))
        for arn, ps in estate.permission_sets.items()
    }
    scopes = {
        account_id: Scope(account_id, account.name, environment[account_id])
        for account_id, account in estate.accounts.items()
        if account_id in environment
    }
    holdings = []
    for a in estate.assignments:
        ps = estate.permission_sets.get(a.permission_set_arn)
        principal = (
            estate.groups.get(a.principal_id, a.principal_id)
            if a.principal_type == "GROUP"
            else estate.people.get(a.principal_id, a.principal_id)
        )
        holdings.append(
            Holding(
                ps.name if ps else a.permission_set_arn,
                a.account_id,
                a.principal_type,
                principal,
                estate.holders(a),
            )
        )
    return Imported(AWS, sources, scopes, tuple(holdings))
