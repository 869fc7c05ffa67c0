"""The IAM side of ending AWS role sessions: jit-bot's Deny statements in a permission
set's inline policy, merged with whatever else that policy holds.

This is how AWS documents revoking active IAM Identity Center sessions: an explicit Deny
of everything, for the user's ``identitystore:UserId``, on sessions whose
``aws:TokenIssueTime`` is before the revocation (so a later grant works), re-provisioned
to the permission set's accounts, and removed once no such session can still be alive.
jit-bot's statements are recognised by their Sid prefix; every other statement of the
policy is kept exactly as it was.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, timedelta
from typing import Any

from providers.base import ProviderError
from providers.sessions import Denial

SID_PREFIX = "JitBotEndSessions"


def statement_id(request_id: str) -> str:
    """One statement per revocation; IAM Sids are letters and digits only."""
    return SID_PREFIX + "".join(c for c in request_id if c.isalnum())


def deny_statement(denial: Denial) -> dict[str, Any]:
    # IAM compares whole seconds: round up, or a session issued in the revocation's own
    # second, before it, would be let through.
    before = denial.before.astimezone(UTC)
    if before.microsecond:
        before = before.replace(microsecond=0) + timedelta(seconds=1)
    issued = before.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "Sid": denial.name,
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {
            "StringEquals": {"identitystore:UserId": denial.principal_id},
            "DateLessThan": {"aws:TokenIssueTime": issued},
        },
    }


def _statements(document: str, where: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The policy and its statements, a single statement read as a list of one."""
    if not document.strip():
        return {"Version": "2012-10-17"}, []
    try:
        policy = json.loads(document)
    except ValueError:
        raise ProviderError(f"the inline policy of {where} is not JSON; fix it by hand") from None
    if not isinstance(policy, dict):
        raise ProviderError(f"the inline policy of {where} is not a policy document")
    found = policy.get("Statement", [])
    statements = [found] if isinstance(found, dict) else list(found)
    return policy, statements


def _ours(statement: Any) -> bool:
    return isinstance(statement, dict) and str(statement.get("Sid", "")).startswith(SID_PREFIX)


def with_denials(
    document: str, denials: Sequence[Denial], *, where: str
) -> tuple[str | None, bool]:
    """The inline policy with exactly ``denials`` as jit-bot's statements (None: nothing
    at all is left, delete it), and whether that differs from ``document``."""
    policy, statements = _statements(document, where)
    others = [s for s in statements if not _ours(s)]
    wanted = [deny_statement(d) for d in sorted(denials, key=lambda d: d.name)]
    if sorted((s for s in statements if _ours(s)), key=lambda s: s["Sid"]) == wanted:
        return (document if document.strip() else None), False
    if not others and not wanted:
        return None, True
    merged = {
        **policy,
        "Version": policy.get("Version", "2012-10-17"),
        "Statement": others + wanted,
    }
    return json.dumps(merged, separators=(",", ":")), True
