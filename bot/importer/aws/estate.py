"""What ``jit-bot import aws`` read from an AWS organization: plain values, no SDK.

The reader (reading.py) fills these; everything after it (normalising, the matrix, the
drafts) works on them alone, so it is tested without AWS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PermissionSet:
    arn: str
    name: str
    session_duration: str | None  # ISO 8601, e.g. PT1H
    managed_policies: tuple[str, ...]  # AWS-managed policy ARNs
    customer_managed: tuple[str, ...]  # path + name of customer-managed policy references
    inline_policy: str | None  # the JSON document, as AWS returned it
    # the permissions boundary: a managed policy ARN, or "customer /path/name"; None: none
    boundary: str | None = None


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    parent_name: str  # the OU the account sits in directly ("Root" at the top)
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Assignment:
    """One account assignment as Identity Center holds it."""

    account_id: str
    permission_set_arn: str
    principal_type: str  # USER or GROUP
    principal_id: str


@dataclass(frozen=True)
class Estate:
    permission_sets: Mapping[str, PermissionSet]  # by ARN
    accounts: Mapping[str, Account]  # by id
    assignments: tuple[Assignment, ...]
    people: Mapping[str, str]  # Identity Store user id → email (or user name)
    groups: Mapping[str, str]  # group id → display name
    members: Mapping[str, tuple[str, ...]]  # group id → user ids

    def holders(self, assignment: Assignment) -> tuple[str, ...]:
        """The people an assignment reaches: the user, or each member of the group."""
        if assignment.principal_type == "GROUP":
            ids = self.members.get(assignment.principal_id, ())
        else:
            ids = (assignment.principal_id,)
        return tuple(self.people[i] for i in ids if i in self.people)
