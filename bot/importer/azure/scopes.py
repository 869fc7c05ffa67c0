"""Azure scopes as the import writes them: one spelling per scope, so an assignment read
from two listings, a mapping-file line and a roles.yaml target name it alike.

The spelling is the azure provider's (providers/azure/target.py): the subscription id in
lower case, the fixed words as ARM writes them (``resourceGroups``, ``providers``).
Resource group names are compared without case, as Azure does.
"""

from __future__ import annotations

import re

_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
GUID = re.compile(rf"^{_GUID}$")
_SCOPE = re.compile(
    rf"^/subscriptions/({_GUID})(?:/resourceGroups/([^/]+)(/providers/[^?#]+)?)?/?$",
    re.IGNORECASE,
)


def canonical(scope: str) -> str | None:
    """The scope's one spelling; None for what is not a subscription or below one (a
    management group, the tenant root ``/``)."""
    match = _SCOPE.match(scope.strip())
    if match is None:
        return None
    subscription, group, resource = match.groups()
    found = f"/subscriptions/{subscription.lower()}"
    if group:
        found += f"/resourceGroups/{group}"
    if resource:
        found += "/providers/" + resource[len("/providers/") :].rstrip("/")
    return found


def parts(scope: str) -> tuple[str, str | None, str | None]:
    """A canonical scope's subscription id, resource group name and resource path (the
    part after ``/providers/``)."""
    match = _SCOPE.match(scope)
    if match is None:
        raise ValueError(f"'{scope}' is not an Azure scope")
    subscription, group, resource = match.groups()
    return subscription.lower(), group, resource[len("/providers/") :] if resource else None


def group_key(subscription: str, group: str) -> str:
    """How resource groups are looked up: Azure compares their names without case."""
    return f"/subscriptions/{subscription}/resourcegroups/{group}".lower()
