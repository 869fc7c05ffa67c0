"""What ``jit-bot import azure`` read from Azure and Microsoft Entra ID: plain values, no
SDK.

The readers (reading.py for ARM, directory.py for Graph) fill these; everything after
them (normalising, environments, the drafts) works on them alone, so it is tested
without Azure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Permission:
    """One entry of a role definition's ``permissions``, as Azure wrote it."""

    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoleDefinition:
    guid: str  # lower case: a built-in role's is the same in every subscription
    name: str  # unique in the tenant, and what roles.yaml grants
    custom: bool
    permissions: tuple[Permission, ...]
    assignable_scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Subscription:
    id: str  # lower case
    name: str
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def scope(self) -> str:
        return f"/subscriptions/{self.id}"


@dataclass(frozen=True)
class ResourceGroup:
    subscription: str  # its subscription's id
    name: str  # as Azure spells it
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def scope(self) -> str:
        return f"/subscriptions/{self.subscription}/resourceGroups/{self.name}"


@dataclass(frozen=True)
class Assignment:
    """One role assignment as ARM holds it."""

    id: str  # the assignment's resource id: the same when listed from two subscriptions
    scope: str  # canonical (scopes.canonical); "" when above every subscription
    role_guid: str
    principal_id: str
    principal_type: str  # User, Group, ServicePrincipal, ForeignGroup, …
    condition: bool = False  # an ABAC condition narrows it


@dataclass(frozen=True)
class Directory:
    """The principals the assignments name, from Microsoft Graph."""

    people: Mapping[str, str]  # user object id → mail or user principal name, lower case
    groups: Mapping[str, str]  # group object id → display name
    members: Mapping[str, tuple[str, ...]]  # group object id → its users, nested included


@dataclass(frozen=True)
class Estate:
    subscriptions: Mapping[str, Subscription]  # by id
    resource_groups: Mapping[str, ResourceGroup]  # by lower-case scope
    roles: Mapping[str, RoleDefinition]  # by guid
    assignments: tuple[Assignment, ...]
    directory: Directory

    def holders(self, assignment: Assignment) -> tuple[str, ...]:
        """The people an assignment reaches: the user, or each user in the group."""
        if assignment.principal_type == "Group":
            ids = self.directory.members.get(assignment.principal_id, ())
        else:
            ids = (assignment.principal_id,)
        return tuple(self.directory.people[i] for i in ids if i in self.directory.people)
