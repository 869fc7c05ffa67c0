"""What the ``aws`` provider looks up before it grants: the Identity Center instance,
permission sets by name, the accounts under an organizational unit (and every OU below
it), Identity Store users by email, and who is assigned what. Answers are cached for
``cache_ttl`` seconds (providers/resilience.py's TtlCache) and forgotten on ``refresh``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from providers.aws.calls import AwsCalls, AwsClients, _NotFound
from providers.aws.target import AwsTarget
from providers.base import ProviderError
from providers.resilience import TtlCache


@dataclass(frozen=True)
class _Resolved:
    instance_arn: str
    identity_store_id: str


class _NoSuchUser(ProviderError):
    """No Identity Store user has the requester's email or user name."""


class IdentityCenter:
    """Cached lookups in IAM Identity Center, the Identity Store and Organizations."""

    def __init__(
        self,
        clients: AwsClients,
        calls: AwsCalls,
        *,
        cache_ttl: float = 900.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clients = clients
        self._calls = calls
        self._cache: TtlCache[tuple[Any, ...], Any] = TtlCache(cache_ttl, monotonic)

    def refresh(self) -> None:
        self._cache.clear()

    def all_accounts(self, aws: AwsTarget) -> list[str]:
        """Explicit accounts, then the accounts of the OUs, each once. The domain hands
        grant/revoke/is_granted expanded one-account units, but a target that still names
        OUs must not be "granted" (or "revoked", or "held") on its explicit accounts only."""
        accounts = list(aws.accounts)
        for ou in aws.organizational_units:
            accounts += self.accounts_under(aws, ou)
        return list(dict.fromkeys(accounts))

    def instance(self, aws: AwsTarget) -> _Resolved:
        def load() -> _Resolved:
            sso = self._clients.client("sso-admin", aws)
            instances = [
                i for page in self._calls.pages(sso, "list_instances") for i in page["Instances"]
            ]
            if aws.instance_arn:
                instances = [i for i in instances if i["InstanceArn"] == aws.instance_arn]
                if not instances:
                    raise ProviderError(f"Identity Center instance {aws.instance_arn} not found")
            if len(instances) != 1:
                raise ProviderError(
                    f"found {len(instances)} Identity Center instances; "
                    "set instance_arn on the target to choose one"
                )
            return _Resolved(instances[0]["InstanceArn"], instances[0]["IdentityStoreId"])

        return self._cache.get(("instance", aws.instance_arn, aws.assume_role_arn), load)

    def permission_set_arn(self, aws: AwsTarget, instance: _Resolved) -> str:
        if aws.permission_set.startswith("arn:"):
            return aws.permission_set

        def load() -> str:
            sso = self._clients.client("sso-admin", aws)
            for page in self._calls.pages(
                sso, "list_permission_sets", InstanceArn=instance.instance_arn
            ):
                for arn in page["PermissionSets"]:
                    if self.permission_set_name(aws, instance, arn) == aws.permission_set:
                        return str(arn)
            raise ProviderError(
                f"no permission set named `{aws.permission_set}` in {instance.instance_arn}"
            )

        return self._cache.get(("ps", instance.instance_arn, aws.permission_set), load)

    def _describe_permission_set(
        self, aws: AwsTarget, instance: _Resolved, arn: str
    ) -> dict[str, Any]:
        def load() -> dict[str, Any]:
            sso = self._clients.client("sso-admin", aws)
            try:
                answer = self._calls.call(
                    sso.describe_permission_set,
                    InstanceArn=instance.instance_arn,
                    PermissionSetArn=arn,
                )
            except _NotFound:
                raise ProviderError(f"permission set {arn} not found") from None
            return dict(answer["PermissionSet"])

        return self._cache.get(("ps-info", arn), load)

    def permission_set_name(self, aws: AwsTarget, instance: _Resolved, arn: str) -> str:
        return str(self._describe_permission_set(aws, instance, arn)["Name"])

    def session_duration(self, aws: AwsTarget, instance: _Resolved, arn: str) -> timedelta:
        raw = self._describe_permission_set(aws, instance, arn).get("SessionDuration") or "PT1H"
        return _iso_duration(str(raw))

    def accounts_under(self, aws: AwsTarget, ou: str) -> list[str]:
        """Active accounts in an OU and every OU below it."""

        def load() -> list[str]:
            org = self._clients.client("organizations", aws)
            accounts: list[str] = []
            parents = [ou]
            while parents:
                parent = parents.pop()
                for page in self._calls.pages(org, "list_accounts_for_parent", ParentId=parent):
                    accounts += [
                        a["Id"] for a in page["Accounts"] if a.get("Status", "ACTIVE") == "ACTIVE"
                    ]
                for page in self._calls.pages(
                    org, "list_organizational_units_for_parent", ParentId=parent
                ):
                    parents += [child["Id"] for child in page["OrganizationalUnits"]]
            return accounts

        return self._cache.get(("ou", ou, aws.assume_role_arn), load)

    def user_id(self, aws: AwsTarget, instance: _Resolved, email: str) -> str:
        """The Identity Store user for an email: by email, then by user name."""

        def load() -> str:
            store = self._clients.client("identitystore", aws)
            found: set[str] = set()
            for path in ("emails.value", "userName"):
                try:
                    answer = self._calls.call(
                        store.get_user_id,
                        IdentityStoreId=instance.identity_store_id,
                        AlternateIdentifier={
                            "UniqueAttribute": {"AttributePath": path, "AttributeValue": email}
                        },
                    )
                except _NotFound:
                    continue
                found.add(answer["UserId"])
            if not found:
                raise _NoSuchUser(
                    f"no IAM Identity Center user has the email or user name {email}; "
                    "provision the user (then `/jit sync`) and ask again"
                )
            if len(found) > 1:
                raise ProviderError(
                    f"{email} matches {len(found)} IAM Identity Center users (one by email, "
                    "another by user name); fix the directory so it names one person"
                )
            return found.pop()

        return self._cache.get(("user", instance.identity_store_id, email.lower()), load)

    def email_of(self, aws: AwsTarget, instance: _Resolved, user_id: str) -> str:
        def load() -> str:
            store = self._clients.client("identitystore", aws)
            try:
                user = self._calls.call(
                    store.describe_user, IdentityStoreId=instance.identity_store_id, UserId=user_id
                )
            except _NotFound:
                return f"unknown-user:{user_id}"
            emails = user.get("Emails") or []
            primary = [e for e in emails if e.get("Primary")] or emails
            return str(primary[0]["Value"] if primary else user.get("UserName", user_id)).lower()

        return self._cache.get(("email", instance.identity_store_id, user_id), load)

    def list_assignments(
        self, aws: AwsTarget, instance: _Resolved, ps_arn: str, account: str
    ) -> list[dict[str, Any]]:
        sso = self._clients.client("sso-admin", aws)
        return [
            a
            for page in self._calls.pages(
                sso,
                "list_account_assignments",
                InstanceArn=instance.instance_arn,
                AccountId=account,
                PermissionSetArn=ps_arn,
            )
            for a in page["AccountAssignments"]
        ]

    def assigned(
        self, aws: AwsTarget, instance: _Resolved, ps_arn: str, account: str, user_id: str
    ) -> bool:
        return any(
            a["PrincipalType"] == "USER" and a["PrincipalId"] == user_id
            for a in self.list_assignments(aws, instance, ps_arn, account)
        )

    def unassigned(
        self, aws: AwsTarget, instance: _Resolved, ps_arn: str, account: str, user_id: str
    ) -> bool:
        return not self.assigned(aws, instance, ps_arn, account, user_id)

    @staticmethod
    def assignment(instance: _Resolved, ps_arn: str, account: str, user_id: str) -> dict[str, str]:
        return {
            "InstanceArn": instance.instance_arn,
            "TargetId": account,
            "TargetType": "AWS_ACCOUNT",
            "PermissionSetArn": ps_arn,
            "PrincipalType": "USER",
            "PrincipalId": user_id,
        }


_ISO = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def _iso_duration(text: str) -> timedelta:
    match = _ISO.match(text)
    if not match:
        return timedelta(hours=1)
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
