"""The ``aws`` provider: IAM Identity Center permission sets on AWS accounts.

Identity Center has no notion of expiry, so jit-bot's own revocation is the only line of
defence: every call is retried where that is safe (throttling, conflicts, 5xx), grants and
revocations are polled until AWS reports them finished, and "already gone" counts as
success so a revocation can always be repeated.

The bot runs outside the accounts: it uses the default credential chain, or assumes a
role through STS (``assume_role_arn``/``external_id`` on a target, or
``JIT_AWS_ASSUME_ROLE_ARN``/``JIT_AWS_EXTERNAL_ID``). The permissions it needs are in
providers/aws-policy.json (for the role it acts through) and
providers/aws-assume-role-policy.json (for the identity that assumes that role).
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Annotated, Any, Literal

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import AfterValidator, Field, model_validator

from providers import aws_sessions
from providers.base import (
    GrantContext,
    GrantOutcome,
    Holding,
    Principal,
    Provider,
    ProviderError,
    TargetSpec,
)
from providers.sessions import Denial, EndsSessions, SessionScope

log = logging.getLogger(__name__)

_ACCOUNT = re.compile(r"^\d{12}$")
_OU = re.compile(r"^(ou-[0-9a-z]{4,32}-[0-9a-z]{8,32}|r-[0-9a-z]{4,32})$")
# AWS writes permissionSet/…; some emulators write instance/…, so the kind is not checked.
_PS_ARN = re.compile(
    r"^arn:aws[a-z-]*:sso:::[A-Za-z]+/(sso)?ins-[a-zA-Z0-9-.]{16}/ps-[a-zA-Z0-9-./]{16}$"
)
_PS_NAME = re.compile(r"^[\w+=,.@-]{1,32}$")
_INSTANCE_ARN = re.compile(r"^arn:aws[a-z-]*:sso:::instance/(sso)?ins-[a-zA-Z0-9-.]{16}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")

# Errors worth another try: AWS is busy, or another operation on the same assignment is
# still running (ConflictException).
_RETRYABLE = {
    "ThrottlingException",
    "TooManyRequestsException",
    "ConflictException",
    "InternalServerException",
    "ServiceUnavailableException",
    "RequestLimitExceeded",
}
_NOT_FOUND = {"ResourceNotFoundException"}


def _account(value: str) -> str:
    if not _ACCOUNT.match(value):
        raise ValueError(f"'{value}' is not an AWS account id; expected 12 digits in quotes")
    return value


def _ou(value: str) -> str:
    if not _OU.match(value):
        raise ValueError(
            f"'{value}' is not an organizational unit id; expected ou-xxxx-xxxxxxxx or r-xxxx"
        )
    return value


def _permission_set(value: str) -> str:
    if value.startswith("arn:"):
        if not _PS_ARN.match(value):
            raise ValueError(
                f"'{value}' is not a permission set ARN; expected "
                "arn:aws:sso:::permissionSet/ssoins-…/ps-…"
            )
    elif not _PS_NAME.match(value):
        raise ValueError(f"'{value}' is not a permission set name or ARN")
    return value


def _match(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"'{value}' is not {what}")
        return value

    return check


AccountId = Annotated[str, AfterValidator(_account)]
OuId = Annotated[str, AfterValidator(_ou)]


class AwsTarget(TargetSpec):
    provider: Literal["aws"] = "aws"
    permission_set: Annotated[str, AfterValidator(_permission_set)]
    accounts: list[AccountId] = Field(default_factory=list)
    organizational_units: list[OuId] = Field(default_factory=list)
    instance_arn: (
        Annotated[str, AfterValidator(_match(_INSTANCE_ARN, "an Identity Center instance ARN"))]
        | None
    ) = None
    assume_role_arn: Annotated[str, AfterValidator(_match(_ROLE_ARN, "an IAM role ARN"))] | None = (
        None
    )
    external_id: str | None = Field(default=None, min_length=2, max_length=1224)
    #: At revocation, also end the role sessions taken during the grant (a Deny in the
    #: permission set's inline policy until they have run out); see providers/aws_sessions.py.
    end_sessions: bool = True

    def key(self) -> str:
        # Whether sessions end is how access is taken away, not which access is held: two
        # grants that differ only in it give the same assignment.
        dump = self.model_dump(mode="json", exclude={"end_sessions"})
        return json.dumps(dump, sort_keys=True, separators=(",", ":"))

    @model_validator(mode="after")
    def _somewhere(self) -> AwsTarget:
        if not self.accounts and not self.organizational_units:
            raise ValueError("expected 'accounts' and/or 'organizational_units' to grant on")
        if self.external_id and not self.assume_role_arn:
            raise ValueError("external_id only makes sense with assume_role_arn")
        return self


@dataclass(frozen=True)
class AwsCredentials:
    assume_role_arn: str | None = None
    external_id: str | None = None


class AwsClients:
    """Builds boto3 clients, assuming a role through STS when one is configured, and
    rebuilds them before the temporary credentials run out."""

    def __init__(
        self,
        session: boto3.Session,
        *,
        region: str,
        endpoint_url: str | None = None,
        default: AwsCredentials = AwsCredentials(),
        on_call: Callable[[str, str], None] | None = None,
    ) -> None:
        self._session = session
        self._region = region
        self._endpoint_url = endpoint_url
        self._default = default
        self._on_call = on_call
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, AwsCredentials], tuple[datetime, BaseClient]] = {}
        self._config = Config(
            region_name=region,
            retries={"max_attempts": 1, "mode": "standard"},  # we retry ourselves
            connect_timeout=5,
            read_timeout=30,
            user_agent_extra="jit-bot",
        )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> AwsClients:
        region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        return cls(
            boto3.Session(),
            region=region,
            endpoint_url=environ.get("AWS_ENDPOINT_URL") or None,
            default=AwsCredentials(
                environ.get("JIT_AWS_ASSUME_ROLE_ARN") or None,
                environ.get("JIT_AWS_EXTERNAL_ID") or None,
            ),
        )

    def client(self, service: str, target: AwsTarget | None = None) -> BaseClient:
        creds = self._default
        if target is not None and target.assume_role_arn:
            creds = AwsCredentials(target.assume_role_arn, target.external_id)
        key = (service, creds)
        now = datetime.now(UTC)
        with self._lock:
            cached = self._cache.get(key)
            if cached and cached[0] > now:
                return cached[1]
        client, valid_until = self._build(service, creds)
        with self._lock:
            self._cache[key] = (valid_until, client)
        return client

    def _build(self, service: str, creds: AwsCredentials) -> tuple[BaseClient, datetime]:
        kwargs: dict[str, Any] = {"config": self._config, "endpoint_url": self._endpoint_url}
        valid_until = datetime.max.replace(tzinfo=UTC)
        if creds.assume_role_arn:
            sts = self._watch(self._session.client("sts", **kwargs))
            extra = {"ExternalId": creds.external_id} if creds.external_id else {}
            try:
                answer = sts.assume_role(
                    RoleArn=creds.assume_role_arn, RoleSessionName="jit-bot", **extra
                )
            except (ClientError, BotoCoreError) as exc:
                raise ProviderError(
                    f"cannot assume {creds.assume_role_arn}: {_describe(exc)}",
                    retryable=_retryable(exc),
                ) from None
            secret = answer["Credentials"]
            kwargs.update(
                aws_access_key_id=secret["AccessKeyId"],
                aws_secret_access_key=secret["SecretAccessKey"],
                aws_session_token=secret["SessionToken"],
            )
            # Rebuild five minutes before AWS would start refusing the credentials.
            valid_until = _aware(secret["Expiration"]) - timedelta(minutes=5)
        return self._watch(self._session.client(service, **kwargs)), valid_until

    def _watch(self, client: BaseClient) -> BaseClient:
        if self._on_call is not None:
            on_call = self._on_call
            prefix = client.meta.service_model.signing_name

            def record(model: Any, **_: Any) -> None:
                on_call(prefix, model.name)

            client.meta.events.register("before-call", record)
        return client


@dataclass(frozen=True)
class _Resolved:
    instance_arn: str
    identity_store_id: str


class AwsProvider(Provider, EndsSessions):
    name = "aws"
    target_model = AwsTarget

    def __init__(
        self,
        clients: AwsClients,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        deadline: float = 300.0,
        attempts: int = 8,
        cache_ttl: float = 900.0,
    ) -> None:
        self._clients = clients
        self._sleep = sleep
        self._monotonic = monotonic
        self._deadline = deadline
        self._attempts = attempts
        self._cache_ttl = cache_ttl
        self._cache: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    # -------------------------------------------------------------- interface

    def validate(self, target: TargetSpec, *, live: bool = False) -> list[str]:
        aws = _as_aws(target)
        if not live:
            return []
        warnings = []
        instance = self._instance(aws)
        ps_arn = self._permission_set_arn(aws, instance)
        duration = self._session_duration(aws, instance, ps_arn)
        if duration > timedelta(hours=1):
            outlives = (
                "jit-bot's Deny that ends live sessions at revocation stays in its inline "
                "policy that long"
                if aws.end_sessions
                else "a console session started just before revocation outlives it by that much"
            )
            warnings.append(
                f"permission set `{aws.permission_set}` has a session duration of {duration}; "
                f"{outlives} (1 hour or less is recommended)"
            )
        org = self._clients.client("organizations", aws)
        # AWS's "not found" messages do not say which id they mean; the error must.
        for account in aws.accounts:
            try:
                self._call(org.describe_account, AccountId=account)
            except ProviderError as exc:
                raise ProviderError(f"account {account}: {exc}", retryable=exc.retryable) from None
        for ou in aws.organizational_units:
            try:
                accounts = self._accounts_under(aws, ou)
            except ProviderError as exc:
                raise ProviderError(
                    f"organizational unit {ou}: {exc}", retryable=exc.retryable
                ) from None
            if not accounts:
                warnings.append(f"organizational unit {ou} holds no accounts")
        return warnings

    def expand(self, target: TargetSpec) -> list[TargetSpec]:
        """One unit per account, OUs expanded now, names resolved to ARNs."""
        aws = _as_aws(target)
        instance = self._instance(aws)
        ps_arn = self._permission_set_arn(aws, instance)
        return [
            aws.model_copy(
                update={
                    "accounts": [account],
                    "organizational_units": [],
                    "permission_set": ps_arn,
                    "instance_arn": instance.instance_arn,
                }
            )
            for account in self._all_accounts(aws)
        ]

    def describe(self, target: TargetSpec) -> str:
        aws = _as_aws(target)
        name = aws.permission_set
        if name.startswith("arn:"):
            name = self._permission_set_name(aws, self._instance(aws), name)
        where = ", ".join(aws.accounts + aws.organizational_units)
        return f"AWS account {where}: permission set `{name}`"

    def grant(
        self, principal: Principal, target: TargetSpec, context: GrantContext
    ) -> GrantOutcome:
        aws = _as_aws(target)
        instance = self._instance(aws)
        ps_arn = self._permission_set_arn(aws, instance)
        user_id = self._user_id(aws, instance, principal.email)
        sso = self._clients.client("sso-admin", aws)
        outcomes = []
        for account in self._all_accounts(aws):
            if self._assigned(aws, instance, ps_arn, account, user_id):
                outcomes.append(True)
                continue
            answer = self._call(
                sso.create_account_assignment,
                **self._assignment(instance, ps_arn, account, user_id),
            )
            self._wait(
                aws,
                answer["AccountAssignmentCreationStatus"],
                sso.describe_account_assignment_creation_status,
                "AccountAssignmentCreationRequestId",
                "AccountAssignmentCreationStatus",
                partial(self._assigned, aws, instance, ps_arn, account, user_id),
                what=f"granting {account}",
            )
            outcomes.append(False)
        # Granting on no account at all (an empty OU) found no standing access either.
        who = f"{_RECORDED}{user_id}"
        if outcomes and all(outcomes):
            return GrantOutcome(
                preexisting=True, detail="the user already held this assignment", principal=who
            )
        return GrantOutcome(principal=who)

    def revoke(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        aws = _as_aws(target)
        instance = self._instance(aws)
        ps_arn = self._permission_set_arn(aws, instance)
        # The user granted to, as recorded then: one renamed since is not found by the
        # email any more, and would keep the assignment.
        user_id = _recorded_user_id(principal.recorded)
        if user_id is None:
            try:
                user_id = self._user_id(aws, instance, principal.email)
            except _NoSuchUser:
                # A user gone from the Identity Store can no longer sign in, and AWS
                # removes its assignments with it: the access is already absent.
                log.warning(
                    "revoke %s: %s; nothing left to remove", context.request_id, principal.email
                )
                return
        sso = self._clients.client("sso-admin", aws)
        for account in self._all_accounts(aws):
            try:
                answer = self._call(
                    sso.delete_account_assignment,
                    **self._assignment(instance, ps_arn, account, user_id),
                )
            except _NotFound:
                continue
            self._wait(
                aws,
                answer["AccountAssignmentDeletionStatus"],
                sso.describe_account_assignment_deletion_status,
                "AccountAssignmentDeletionRequestId",
                "AccountAssignmentDeletionStatus",
                partial(self._unassigned, aws, instance, ps_arn, account, user_id),
                what=f"revoking {account}",
            )

    def is_granted(self, principal: Principal, target: TargetSpec) -> bool | None:
        aws = _as_aws(target)
        instance = self._instance(aws)
        ps_arn = self._permission_set_arn(aws, instance)
        user_id = self._user_id(aws, instance, principal.email)
        accounts = self._all_accounts(aws)
        return bool(accounts) and all(
            self._assigned(aws, instance, ps_arn, a, user_id) for a in accounts
        )

    def inventory(self, target: TargetSpec) -> list[Holding] | None:
        """Every user assignment of the target's permission set on its accounts."""
        found = []
        for unit in self.expand(target):
            aws = _as_aws(unit)
            instance = self._instance(aws)
            account = aws.accounts[0]
            for assignment in self._list_assignments(aws, instance, aws.permission_set, account):
                if assignment["PrincipalType"] != "USER":
                    continue
                email = self._email_of(aws, instance, assignment["PrincipalId"])
                found.append(Holding(email=email, unit=unit))
        return found

    def refresh(self) -> None:
        with self._lock:
            self._cache.clear()

    # -------------------------------------------------------------- live sessions

    def session_scope(
        self, principal: Principal, target: TargetSpec, *, recorded: str | None = None
    ) -> SessionScope | None:
        aws = _as_aws(target)
        if not aws.end_sessions:
            return None
        instance = self._instance(aws)
        ps_arn = self._permission_set_arn(aws, instance)
        # The user granted to, as recorded then: a user deleted or renamed since (at
        # offboarding) keeps the sessions already issued, and AWS documents the Deny as
        # the way to end them. The email is looked up only for grants that recorded none.
        user_id = _recorded_user_id(recorded)
        if user_id is None:
            try:
                user_id = self._user_id(aws, instance, principal.email)
            except _NoSuchUser:
                log.warning(
                    "ending sessions: no Identity Store user recorded or found for %s",
                    principal.email,
                )
                return None
        return SessionScope(
            key=f"aws:{instance.instance_arn}:{ps_arn}",
            principal_id=user_id,
            lifetime=self._session_duration(aws, instance, ps_arn),
        )

    def denial_name(self, request_id: str) -> str:
        return aws_sessions.statement_id(request_id)

    def write_denials(
        self, target: TargetSpec, denials: Sequence[Denial], *, enforce: bool = False
    ) -> bool:
        aws = _as_aws(target)
        instance = self._instance(aws)
        ps_arn = self._permission_set_arn(aws, instance)
        sso = self._clients.client("sso-admin", aws)
        where = {"InstanceArn": instance.instance_arn, "PermissionSetArn": ps_arn}
        current = self._call(sso.get_inline_policy_for_permission_set, **where)
        document, changed = aws_sessions.with_denials(
            str(current.get("InlinePolicy") or ""), denials, where=f"permission set {ps_arn}"
        )
        # Unchanged is not in force: an earlier write may have put this document and then
        # failed to provision it. ``enforce`` provisions it again regardless.
        if not changed and not enforce:
            return False
        if changed and document is None:
            with contextlib.suppress(_NotFound):  # deleted by hand meanwhile: as wanted
                self._call(sso.delete_inline_policy_from_permission_set, **where)
        elif changed:
            self._call(sso.put_inline_policy_to_permission_set, **where, InlinePolicy=document)
        # The policy only reaches the accounts' IAM roles when the permission set is
        # provisioned again, to every account it is on.
        answer = self._call(
            sso.provision_permission_set, **where, TargetType="ALL_PROVISIONED_ACCOUNTS"
        )
        self._wait(
            aws,
            answer["PermissionSetProvisioningStatus"],
            sso.describe_permission_set_provisioning_status,
            "ProvisionPermissionSetRequestId",
            "PermissionSetProvisioningStatus",
            lambda: False,
            what=f"provisioning permission set {ps_arn}",
        )
        return changed

    # -------------------------------------------------------------- lookups

    def _all_accounts(self, aws: AwsTarget) -> list[str]:
        """Explicit accounts, then the accounts of the OUs, each once. The domain hands
        grant/revoke/is_granted expanded one-account units, but a target that still names
        OUs must not be "granted" (or "revoked", or "held") on its explicit accounts only."""
        accounts = list(aws.accounts)
        for ou in aws.organizational_units:
            accounts += self._accounts_under(aws, ou)
        return list(dict.fromkeys(accounts))

    def _instance(self, aws: AwsTarget) -> _Resolved:
        def load() -> _Resolved:
            sso = self._clients.client("sso-admin", aws)
            instances = [
                i for page in self._pages(sso, "list_instances") for i in page["Instances"]
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

        return self._cached(("instance", aws.instance_arn, aws.assume_role_arn), load)

    def _permission_set_arn(self, aws: AwsTarget, instance: _Resolved) -> str:
        if aws.permission_set.startswith("arn:"):
            return aws.permission_set

        def load() -> str:
            sso = self._clients.client("sso-admin", aws)
            for page in self._pages(sso, "list_permission_sets", InstanceArn=instance.instance_arn):
                for arn in page["PermissionSets"]:
                    if self._permission_set_name(aws, instance, arn) == aws.permission_set:
                        return str(arn)
            raise ProviderError(
                f"no permission set named `{aws.permission_set}` in {instance.instance_arn}"
            )

        return self._cached(("ps", instance.instance_arn, aws.permission_set), load)

    def _describe_permission_set(
        self, aws: AwsTarget, instance: _Resolved, arn: str
    ) -> dict[str, Any]:
        def load() -> dict[str, Any]:
            sso = self._clients.client("sso-admin", aws)
            try:
                answer = self._call(
                    sso.describe_permission_set,
                    InstanceArn=instance.instance_arn,
                    PermissionSetArn=arn,
                )
            except _NotFound:
                raise ProviderError(f"permission set {arn} not found") from None
            return dict(answer["PermissionSet"])

        return self._cached(("ps-info", arn), load)

    def _permission_set_name(self, aws: AwsTarget, instance: _Resolved, arn: str) -> str:
        return str(self._describe_permission_set(aws, instance, arn)["Name"])

    def _session_duration(self, aws: AwsTarget, instance: _Resolved, arn: str) -> timedelta:
        raw = self._describe_permission_set(aws, instance, arn).get("SessionDuration") or "PT1H"
        return _iso_duration(str(raw))

    def _accounts_under(self, aws: AwsTarget, ou: str) -> list[str]:
        """Active accounts in an OU and every OU below it."""

        def load() -> list[str]:
            org = self._clients.client("organizations", aws)
            accounts: list[str] = []
            parents = [ou]
            while parents:
                parent = parents.pop()
                for page in self._pages(org, "list_accounts_for_parent", ParentId=parent):
                    accounts += [
                        a["Id"] for a in page["Accounts"] if a.get("Status", "ACTIVE") == "ACTIVE"
                    ]
                for page in self._pages(
                    org, "list_organizational_units_for_parent", ParentId=parent
                ):
                    parents += [child["Id"] for child in page["OrganizationalUnits"]]
            return accounts

        return self._cached(("ou", ou, aws.assume_role_arn), load)

    def _user_id(self, aws: AwsTarget, instance: _Resolved, email: str) -> str:
        """The Identity Store user for an email: by email, then by user name."""

        def load() -> str:
            store = self._clients.client("identitystore", aws)
            found: set[str] = set()
            for path in ("emails.value", "userName"):
                try:
                    answer = self._call(
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

        return self._cached(("user", instance.identity_store_id, email.lower()), load)

    def _email_of(self, aws: AwsTarget, instance: _Resolved, user_id: str) -> str:
        def load() -> str:
            store = self._clients.client("identitystore", aws)
            try:
                user = self._call(
                    store.describe_user, IdentityStoreId=instance.identity_store_id, UserId=user_id
                )
            except _NotFound:
                return f"unknown-user:{user_id}"
            emails = user.get("Emails") or []
            primary = [e for e in emails if e.get("Primary")] or emails
            return str(primary[0]["Value"] if primary else user.get("UserName", user_id)).lower()

        return self._cached(("email", instance.identity_store_id, user_id), load)

    def _list_assignments(
        self, aws: AwsTarget, instance: _Resolved, ps_arn: str, account: str
    ) -> list[dict[str, Any]]:
        sso = self._clients.client("sso-admin", aws)
        return [
            a
            for page in self._pages(
                sso,
                "list_account_assignments",
                InstanceArn=instance.instance_arn,
                AccountId=account,
                PermissionSetArn=ps_arn,
            )
            for a in page["AccountAssignments"]
        ]

    def _assigned(
        self, aws: AwsTarget, instance: _Resolved, ps_arn: str, account: str, user_id: str
    ) -> bool:
        return any(
            a["PrincipalType"] == "USER" and a["PrincipalId"] == user_id
            for a in self._list_assignments(aws, instance, ps_arn, account)
        )

    def _unassigned(
        self, aws: AwsTarget, instance: _Resolved, ps_arn: str, account: str, user_id: str
    ) -> bool:
        return not self._assigned(aws, instance, ps_arn, account, user_id)

    @staticmethod
    def _assignment(instance: _Resolved, ps_arn: str, account: str, user_id: str) -> dict[str, str]:
        return {
            "InstanceArn": instance.instance_arn,
            "TargetId": account,
            "TargetType": "AWS_ACCOUNT",
            "PermissionSetArn": ps_arn,
            "PrincipalType": "USER",
            "PrincipalId": user_id,
        }

    # -------------------------------------------------------------- mechanics

    def _wait(
        self,
        aws: AwsTarget,
        status: dict[str, Any],
        describe: Callable[..., dict[str, Any]],
        id_field: str,
        status_field: str,
        confirmed: Callable[[], bool],
        *,
        what: str,
    ) -> None:
        """Poll an asynchronous assignment operation until it succeeds or fails, with
        backoff, under the overall deadline."""
        start = self._monotonic()
        delay = 0.5
        instance = self._instance(aws)
        while True:
            state = status.get("Status")
            if state == "SUCCEEDED":
                return
            if state == "FAILED":
                reason = status.get("FailureReason") or "no reason given"
                raise ProviderError(f"AWS reports {what} FAILED: {reason}")
            if state is None and confirmed():
                # Some endpoints answer without a status; the assignment list is the truth.
                return
            if self._monotonic() - start > self._deadline:
                raise ProviderError(
                    f"{what} still {state or 'unconfirmed'} after {self._deadline:.0f}s",
                    retryable=True,
                )
            self._sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, 10.0)
            answer = self._call(
                describe, InstanceArn=instance.instance_arn, **{id_field: status["RequestId"]}
            )
            status = answer[status_field]

    def _call(self, operation: Callable[..., Any], **kwargs: Any) -> Any:
        """One AWS call, retried with jittered backoff when AWS says "try again"."""
        for attempt in range(1, self._attempts + 1):
            try:
                return operation(**kwargs)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code in _NOT_FOUND:
                    raise _NotFound(_describe(exc)) from None
                if code not in _RETRYABLE or attempt == self._attempts:
                    raise ProviderError(_describe(exc), retryable=code in _RETRYABLE) from None
            except BotoCoreError as exc:
                if attempt == self._attempts:
                    raise ProviderError(_describe(exc), retryable=True) from None
            backoff = min(0.25 * 2**attempt, 20.0)
            self._sleep(random.uniform(backoff / 2, backoff))
        raise AssertionError("unreachable")

    def _pages(self, client: BaseClient, operation: str, **kwargs: Any) -> Iterator[Any]:
        token: str | None = None
        while True:
            extra = {"NextToken": token} if token else {}
            try:
                page = self._call(getattr(client, operation), **kwargs, **extra)
            except _NotFound as exc:
                raise ProviderError(str(exc)) from None
            yield page
            token = page.get("NextToken")
            if not token:
                return

    def _cached(self, key: tuple[Any, ...], load: Callable[[], Any]) -> Any:
        now = self._monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit and now - hit[0] < self._cache_ttl:
                return hit[1]
        value = load()
        with self._lock:
            self._cache[key] = (now, value)
        return value


class _NoSuchUser(ProviderError):
    """No Identity Store user has the requester's email or user name."""


class _NotFound(ProviderError):
    pass


_RECORDED = "Identity Store user "  # how grant() names the user in GrantOutcome.principal


def _recorded_user_id(recorded: str | None) -> str | None:
    if recorded and recorded.startswith(_RECORDED) and len(recorded) > len(_RECORDED):
        return recorded[len(_RECORDED) :]
    return None


def _as_aws(target: TargetSpec) -> AwsTarget:
    if not isinstance(target, AwsTarget):
        raise TypeError(f"the aws provider cannot handle {target.provider} targets")
    return target


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        operation = getattr(exc, "operation_name", "call")
        return f"AWS {operation}: {error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
    return f"AWS: {type(exc).__name__}: {exc}"


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code") in _RETRYABLE
    return True


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


_ISO = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def _iso_duration(text: str) -> timedelta:
    match = _ISO.match(text)
    if not match:
        return timedelta(hours=1)
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
