"""Which ClusterRoles give everything: whoever holds one can make themselves cluster-admin.

RBAC's own escalation guard stops nobody who holds one of these:

- ``*`` on every resource (cluster-admin and its copies);
- ``escalate`` on roles or ClusterRoles, even on one named role: its holder may write any
  rule into that role and bind it (the API server skips its escalation check for them);
- ``bind`` on any role, or on a named ClusterRole that itself gives everything (followed
  through the names it binds in turn);
- ``impersonate`` on users, groups or service accounts: impersonating the group
  ``system:masters`` is cluster-admin.

`check --live` asks this of a target's ClusterRole; so does every grant (cached for a few
minutes per cluster and role), since a ClusterRole can change, or gain rules by
aggregation, after the check ran.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from providers.kubernetes.bindings import RBAC_GROUP
from providers.kubernetes.calls import KubeCalls, NotFound
from providers.kubernetes.target import CLUSTER_ADMIN

if TYPE_CHECKING:  # annotations only: the SDK is imported where it is used
    from kubernetes import client

#: The rules of a ClusterRole by name; None where it does not exist. Raises ProviderError
#: where it cannot be read.
Rules = Callable[[str], "list[client.V1PolicyRule] | None"]

_ALL = "*"
_ROLES = {"clusterroles", "roles", _ALL}
_IDENTITIES = {"users", "groups", "serviceaccounts", _ALL}


def gives_everything(name: str, rules_of: Rules) -> str | None:
    """Why ClusterRole ``name`` gives everything, or None where it does not."""
    followed: set[str] = set()

    def why(role: str) -> str | None:
        if role == CLUSTER_ADMIN:
            return "it is cluster-admin"
        if role in followed:
            return None
        followed.add(role)
        for rule in rules_of(role) or []:
            found = _rule(rule)
            if found is not None:
                return found
            for bound in _named_binds(rule):
                if why(bound) is not None:
                    return f"it may bind ClusterRole `{bound}`, which gives everything"
        return None

    return why(name)


def cluster_role_rules(api: client.ApiClient, calls: KubeCalls, label: str) -> Rules:
    """Reads a ClusterRole's rules (None: it does not exist), each role once."""
    from kubernetes import client

    rbac = client.RbacAuthorizationV1Api(api)
    read: dict[str, list[client.V1PolicyRule] | None] = {}

    def rules_of(name: str) -> list[client.V1PolicyRule] | None:
        if name not in read:
            try:
                role = calls.call(label, f"read ClusterRole {name}", rbac.read_cluster_role, name)
                read[name] = list(role.rules or [])
            except NotFound:
                read[name] = None
        return read[name]

    return rules_of


def refusal(label: str, cluster_role: str, why: str) -> str:
    return (
        f"{label}: ClusterRole `{cluster_role}` gives everything ({why}); jit-bot grants it "
        "only with allow_cluster_admin: true"
    )


def _rule(rule: client.V1PolicyRule) -> str | None:
    verbs = set(rule.verbs or [])
    groups = set(rule.api_groups or [])
    resources = set(rule.resources or [])
    named = bool(rule.resource_names)
    if _ALL in verbs and _ALL in resources and _ALL in groups and not named:
        return "it may do anything"
    rbac = bool(groups & {_ALL, RBAC_GROUP})
    if rbac and resources & _ROLES and verbs & {"escalate", _ALL}:
        return "it may escalate roles (write any rule into them)"
    if rbac and resources & _ROLES and "bind" in verbs and not named:
        return "it may bind any role"
    core = bool(groups & {_ALL, RBAC_GROUP, ""})
    if core and not named and verbs & {"bind", "escalate"} and _ALL in resources:
        return "it may bind or escalate any role"
    if groups & {_ALL, ""} and resources & _IDENTITIES and verbs & {"impersonate", _ALL}:
        return "it may impersonate users or groups (system:masters is cluster-admin)"
    return None


def _named_binds(rule: client.V1PolicyRule) -> list[str]:
    """The ClusterRoles a rule lets its holder bind by name."""
    groups, resources = set(rule.api_groups or []), set(rule.resources or [])
    if "bind" in (rule.verbs or []) and groups & {_ALL, RBAC_GROUP} and resources & _ROLES:
        return list(rule.resource_names or [])
    return []
