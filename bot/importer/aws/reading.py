"""Reading an IAM Identity Center estate through the aws provider's clients, read-only.

Every list is followed page by page and every call is retried while AWS throttles, by
the provider's own `AwsCalls` under its `RETRY` policy; the clients come from
`AwsClients`, so the credential chain, the assumed role and the endpoint are the bot's.
Nothing here writes: the calls made are exactly those providers/aws-import-policy.json
allows (tests/unit/test_aws_import_policy.py records them).

An estate of 500 permission sets on 60 accounts has 30,000 (account, set) pairs, few of
which carry an assignment; asking each pair would be most of the import. Each account is
asked instead which sets are provisioned to it (AWS provisions a set to an account with
its first assignment there), and only those pairs are listed. Independent calls run
side by side on a few threads (boto3 clients are thread-safe; each call keeps its own
retries); results are put back in a fixed order, so the same estate reads the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from botocore.client import BaseClient

from bot.importer.access import CannotImport
from bot.importer.aws.estate import Account, Assignment, Estate, PermissionSet
from providers.aws.calls import AwsCalls, AwsClients, _NotFound
from providers.base import ProviderError

T = TypeVar("T")
R = TypeVar("R")
# Calls in flight at once: enough to hide the round trip, few enough not to provoke
# AWS's throttling (the read APIs allow some 20 a second) or exceed botocore's pool of 10.
WORKERS = 8


class EstateError(CannotImport):
    """The estate cannot be read (no access, no Identity Center); the message says why."""


def read_estate(clients: AwsClients, calls: AwsCalls) -> Estate:
    """Everything the import needs, in one pass; EstateError when AWS refuses."""
    try:
        return _Reader(clients, calls).read()
    except ProviderError as exc:
        raise EstateError(f"cannot read the AWS estate: {exc}") from None


class _Reader:
    def __init__(self, clients: AwsClients, calls: AwsCalls) -> None:
        self._calls = calls
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="aws-read")
        self._sso = clients.client("sso-admin")
        self._org = clients.client("organizations")
        self._store = clients.client("identitystore")

    def read(self) -> Estate:
        try:
            return self._read()
        finally:
            self._pool.shutdown(cancel_futures=True)

    def _read(self) -> Estate:
        instances = [
            i for page in self._pages(self._sso, "list_instances") for i in page["Instances"]
        ]
        if not instances:
            raise EstateError("no IAM Identity Center instance is visible to these credentials")
        instance = instances[0]
        arn, store_id = instance["InstanceArn"], instance["IdentityStoreId"]
        permission_sets = {ps.arn: ps for ps in self._permission_sets(arn)}
        accounts = {a.id: a for a in self._accounts()}
        assignments = tuple(self._assignments(arn, accounts, permission_sets))
        people = self._people(store_id)
        groups, members = self._groups(store_id)
        return Estate(permission_sets, accounts, assignments, people, groups, members)

    def _pages(self, client: BaseClient, operation: str, **kwargs: Any) -> Iterator[Any]:
        return self._calls.pages(client, operation, **kwargs)

    def _each(self, read: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``read`` of every item, several at once, in the items' order."""
        return list(self._pool.map(read, items))

    def _permission_sets(self, instance: str) -> list[PermissionSet]:
        arns = [
            ps_arn
            for page in self._pages(self._sso, "list_permission_sets", InstanceArn=instance)
            for ps_arn in page["PermissionSets"]
        ]
        return self._each(lambda ps_arn: self._permission_set(instance, ps_arn), arns)

    def _permission_set(self, instance: str, ps_arn: str) -> PermissionSet:
        which = {"InstanceArn": instance, "PermissionSetArn": ps_arn}
        described = self._calls.call(self._sso.describe_permission_set, **which)["PermissionSet"]
        managed = [
            p["Arn"]
            for page in self._pages(self._sso, "list_managed_policies_in_permission_set", **which)
            for p in page["AttachedManagedPolicies"]
        ]
        customer = [
            f"{ref.get('Path') or '/'}{ref['Name']}"
            for page in self._pages(
                self._sso, "list_customer_managed_policy_references_in_permission_set", **which
            )
            for ref in page["CustomerManagedPolicyReferences"]
        ]
        inline = self._calls.call(self._sso.get_inline_policy_for_permission_set, **which)
        return PermissionSet(
            boundary=self._boundary(which),
            arn=ps_arn,
            name=described["Name"],
            session_duration=described.get("SessionDuration"),
            managed_policies=tuple(sorted(managed)),
            customer_managed=tuple(sorted(customer)),
            inline_policy=inline.get("InlinePolicy") or None,
        )

    def _boundary(self, which: dict[str, str]) -> str | None:
        """The set's permissions boundary, which caps whatever its policies grant."""
        try:
            found = self._calls.call(self._sso.get_permissions_boundary_for_permission_set, **which)
        except _NotFound:
            return None  # how AWS says a set has no boundary
        boundary = found.get("PermissionsBoundary") or {}
        if boundary.get("ManagedPolicyArn"):
            return str(boundary["ManagedPolicyArn"])
        ref = boundary.get("CustomerManagedPolicyReference")
        return f"customer {ref.get('Path') or '/'}{ref['Name']}" if ref else None

    def _accounts(self) -> list[Account]:
        """Every account under the root, walking the OU tree so each knows its OU."""
        roots = [r for page in self._pages(self._org, "list_roots") for r in page["Roots"]]
        stack = [(root["Id"], root.get("Name") or "Root") for root in roots]
        found: list[tuple[str, str, str]] = []  # (id, name, OU)
        while stack:
            parent_id, parent_name = stack.pop()
            for page in self._pages(self._org, "list_accounts_for_parent", ParentId=parent_id):
                found += [(a["Id"], a["Name"], parent_name) for a in page["Accounts"]]
            for page in self._pages(
                self._org, "list_organizational_units_for_parent", ParentId=parent_id
            ):
                stack += [(ou["Id"], ou["Name"]) for ou in page["OrganizationalUnits"]]
        tags = self._each(self._tags, [account_id for account_id, _, _ in found])
        return [Account(*account, tags=t) for account, t in zip(found, tags, strict=True)]

    def _tags(self, resource: str) -> dict[str, str]:
        pages = self._pages(self._org, "list_tags_for_resource", ResourceId=resource)
        return {tag["Key"]: tag["Value"] for page in pages for tag in page["Tags"]}

    def _assignments(
        self, instance: str, accounts: dict[str, Account], sets: dict[str, PermissionSet]
    ) -> list[Assignment]:
        """Every assignment of a set that was read, by account, then set, then principal."""
        ids = sorted(accounts)
        provisioned = self._each(lambda a: self._provisioned(instance, a), ids)
        pairs = [
            (account_id, ps_arn)
            for account_id, arns in zip(ids, provisioned, strict=True)
            for ps_arn in sorted(set(arns) & set(sets))
        ]
        listed = self._each(lambda pair: self._assigned(instance, *pair), pairs)
        return [a for found in listed for a in found]

    def _provisioned(self, instance: str, account_id: str) -> list[str]:
        """The permission sets provisioned to an account: every set assigned there (and
        some perhaps no longer assigned)."""
        return [
            ps_arn
            for page in self._pages(
                self._sso,
                "list_permission_sets_provisioned_to_account",
                InstanceArn=instance,
                AccountId=account_id,
            )
            for ps_arn in page["PermissionSets"]
        ]

    def _assigned(self, instance: str, account_id: str, ps_arn: str) -> list[Assignment]:
        found = [
            Assignment(account_id, ps_arn, a["PrincipalType"], a["PrincipalId"])
            for page in self._pages(
                self._sso,
                "list_account_assignments",
                InstanceArn=instance,
                AccountId=account_id,
                PermissionSetArn=ps_arn,
            )
            for a in page["AccountAssignments"]
        ]
        return sorted(found, key=lambda a: (a.principal_type, a.principal_id))

    def _people(self, store: str) -> dict[str, str]:
        """User id → email: the primary email, else any, else the user name (which is
        what names people in jit-bot, as it does in the provider's lookups)."""
        people: dict[str, str] = {}
        for page in self._pages(self._store, "list_users", IdentityStoreId=store):
            for user in page["Users"]:
                emails = sorted(user.get("Emails") or [], key=lambda e: not e.get("Primary"))
                email = emails[0].get("Value") if emails else None
                people[user["UserId"]] = (email or user["UserName"]).lower()
        return people

    def _groups(self, store: str) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
        groups: dict[str, str] = {}
        for page in self._pages(self._store, "list_groups", IdentityStoreId=store):
            for group in page["Groups"]:
                groups[group["GroupId"]] = group.get("DisplayName") or group["GroupId"]
        listed = self._each(lambda group_id: self._members(store, group_id), groups)
        members = dict(zip(groups, listed, strict=True))
        return groups, members

    def _members(self, store: str, group_id: str) -> tuple[str, ...]:
        return tuple(
            m["MemberId"]["UserId"]
            for page in self._pages(
                self._store, "list_group_memberships", IdentityStoreId=store, GroupId=group_id
            )
            for m in page["GroupMemberships"]
            if "UserId" in m.get("MemberId", {})
        )
