"""What the bot's identity may do at an Azure scope, as Azure's permissions API answers
it: used by `jit-bot check --live` so that a scope where the bot cannot write role
assignments is refused before anyone asks for access there, not when a grant fails.

Azure answers the caller's effective permissions as a list of (actions, notActions)
pairs with ``*`` wildcards; an action is allowed when some pair allows it and does not
exclude it. The API exists for resource groups and resources only, not subscriptions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

# What granting and revoking write, per mode.
NEEDED: dict[Literal["pim", "rbac"], tuple[str, ...]] = {
    "pim": ("Microsoft.Authorization/roleAssignmentScheduleRequests/write",),
    "rbac": (
        "Microsoft.Authorization/roleAssignments/write",
        "Microsoft.Authorization/roleAssignments/delete",
    ),
}

_GROUP_SCOPE = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/(?P<group>[^/]+)"
    r"(?:/providers/(?P<namespace>[^/]+)/(?P<rest>.+))?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Permission:
    actions: tuple[str, ...]
    not_actions: tuple[str, ...]


def permissions_at(client: Any, scope: str) -> list[Permission] | None:
    """The caller's permissions at ``scope`` through the SDK's permissions operations;
    None for a subscription scope, which the API does not cover."""
    match = _GROUP_SCOPE.match(scope)
    if match is None:
        return None
    group, namespace, rest = match.group("group", "namespace", "rest")
    if namespace is None:
        listed = client.permissions.list_for_resource_group(group)
    else:
        parts = rest.split("/")
        listed = client.permissions.list_for_resource(
            group, namespace, "/".join(parts[:-2]), parts[-2], parts[-1]
        )
    return [Permission(tuple(p.actions or ()), tuple(p.not_actions or ())) for p in list(listed)]


def missing(permissions: Iterable[Permission], needed: Iterable[str]) -> list[str]:
    """The needed actions no permission allows (Azure compares case-insensitively)."""
    held = list(permissions)
    return [action for action in needed if not any(_allows(p, action) for p in held)]


def _allows(permission: Permission, action: str) -> bool:
    wanted = action.lower()
    granted = any(fnmatchcase(wanted, pattern.lower()) for pattern in permission.actions)
    excluded = any(fnmatchcase(wanted, pattern.lower()) for pattern in permission.not_actions)
    return granted and not excluded
