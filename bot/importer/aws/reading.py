"""Reading an IAM Identity Center estate through the aws provider's clients, read-only.

Every list is followed page by page and every call is retried while AWS throttles, by
the provider's own `AwsCalls` under its `RETRY` policy; the clients come from
`AwsClients`, so the credential chain, the assumed role and the endpoint are the bot's.
Nothing here writes: the calls made are exactly those providers/aws-import-policy.json
allows (tests/unit/test_aws_import_policy.py records them).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.client import BaseClient

from bot.importer.aws.estate import Account, Assignment, Estate, PermissionSet
from providers.aws.calls import AwsCalls, AwsClients
from providers.base import ProviderError


class EstateError(Exception):
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
        self._sso = clients.client("sso-admin")
        self._org = clients.client("organizations")
        self._store = clients.client("identitystore")

    def read(self) -> Estate:
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

    def _permission_sets(self, instance: str) -> Iterator[PermissionSet]:
        for page in self._pages(self._sso, "list_permission_sets", InstanceArn=instance):
            for ps_arn in page["PermissionSets"]:
                yield self._permission_set(instance, ps_arn)

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
            arn=ps_arn,
            name=described["Name"],
            session_duration=described.get("SessionDuration"),
            managed_policies=tuple(sorted(managed)),
            customer_managed=tuple(sorted(customer)),
            inline_policy=inline.get("InlinePolicy") or None,
        )

    def _accounts(self) -> Iterator[Account]:
        """Every account under the root, walking the OU tree so each knows its OU."""
        roots = [r for page in self._pages(self._org, "list_roots") for r in page["Roots"]]
        stack = [(root["Id"], root.get("Name") or "Root") for root in roots]
        while stack:
            parent_id, parent_name = stack.pop()
            for page in self._pages(self._org, "list_accounts_for_parent", ParentId=parent_id):
                for account in page["Accounts"]:
                    yield Account(
                        account["Id"], account["Name"], parent_name, self._tags(account["Id"])
                    )
            for page in self._pages(
                self._org, "list_organizational_units_for_parent", ParentId=parent_id
            ):
                stack += [(ou["Id"], ou["Name"]) for ou in page["OrganizationalUnits"]]

    def _tags(self, resource: str) -> dict[str, str]:
        pages = self._pages(self._org, "list_tags_for_resource", ResourceId=resource)
        return {tag["Key"]: tag["Value"] for page in pages for tag in page["Tags"]}

    def _assignments(
        self, instance: str, accounts: dict[str, Account], sets: dict[str, PermissionSet]
    ) -> Iterator[Assignment]:
        for account_id in sorted(accounts):
            for ps_arn in sets:
                for page in self._pages(
                    self._sso,
                    "list_account_assignments",
                    InstanceArn=instance,
                    AccountId=account_id,
                    PermissionSetArn=ps_arn,
                ):
                    for a in page["AccountAssignments"]:
                        yield Assignment(account_id, ps_arn, a["PrincipalType"], a["PrincipalId"])

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
        members: dict[str, tuple[str, ...]] = {}
        for page in self._pages(self._store, "list_groups", IdentityStoreId=store):
            for group in page["Groups"]:
                groups[group["GroupId"]] = group.get("DisplayName") or group["GroupId"]
        for group_id in groups:
            ids = [
                m["MemberId"]["UserId"]
                for page in self._pages(
                    self._store,
                    "list_group_memberships",
                    IdentityStoreId=store,
                    GroupId=group_id,
                )
                for m in page["GroupMemberships"]
                if "UserId" in m.get("MemberId", {})
            ]
            members[group_id] = tuple(ids)
        return groups, members
