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
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING

from providers import aws_sessions
from providers.aws.calls import RETRY, AwsCalls, AwsClients, _NotFound
from providers.aws.lookups import IdentityCenter, _NoSuchUser, _Resolved
from providers.aws.target import AwsTarget
from providers.base import GrantOutcome, Holding, Provider, ProviderError
from providers.sessions import Denial, EndsSessions, SessionScope

if TYPE_CHECKING:  # annotations only
    from botocore.client import BaseClient

    from providers.base import GrantContext, Principal, TargetSpec

log = logging.getLogger(__name__)


class AwsProvider(Provider, EndsSessions):
    """Grants a permission set on accounts to the requester's Identity Store user. What
    it looks up is `IdentityCenter`'s; how it calls AWS, `AwsCalls`'."""

    name = "aws"
    target_model = AwsTarget

    def __init__(
        self,
        clients: AwsClients,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        deadline: float = 300.0,
        attempts: int = RETRY.attempts,
        cache_ttl: float = 900.0,
    ) -> None:
        self._clients = clients
        self._calls = AwsCalls(
            dataclasses.replace(RETRY, attempts=attempts),
            sleep=sleep,
            monotonic=monotonic,
            deadline=deadline,
        )
        self._lookups = IdentityCenter(
            clients, self._calls, cache_ttl=cache_ttl, monotonic=monotonic
        )

    # -------------------------------------------------------------- interface

    def validate(self, target: TargetSpec, *, live: bool = False) -> list[str]:
        aws = _as_aws(target)
        # AWS's own settings (AWS_PROFILE, …) are read now: a profile that is not there
        # stops the bot at start-up, naming this target, rather than its first grant.
        self._clients.session()
        if not live:
            return []
        warnings = []
        instance = self._lookups.instance(aws)
        ps_arn = self._lookups.permission_set_arn(aws, instance)
        duration = self._lookups.session_duration(aws, instance, ps_arn)
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
                self._calls.call(org.describe_account, AccountId=account)
            except ProviderError as exc:
                raise ProviderError(f"account {account}: {exc}", retryable=exc.retryable) from None
        for ou in aws.organizational_units:
            try:
                accounts = self._lookups.accounts_under(aws, ou)
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
        instance = self._lookups.instance(aws)
        ps_arn = self._lookups.permission_set_arn(aws, instance)
        return [
            aws.model_copy(
                update={
                    "accounts": [account],
                    "organizational_units": [],
                    "permission_set": ps_arn,
                    "instance_arn": instance.instance_arn,
                }
            )
            for account in self._lookups.all_accounts(aws)
        ]

    def describe(self, target: TargetSpec) -> str:
        aws = _as_aws(target)
        name = aws.permission_set
        if name.startswith("arn:"):
            name = self._lookups.permission_set_name(aws, self._lookups.instance(aws), name)
        where = ", ".join(aws.accounts + aws.organizational_units)
        return f"AWS account {where}: permission set `{name}`"

    def grant(
        self, principal: Principal, target: TargetSpec, context: GrantContext
    ) -> GrantOutcome:
        aws = _as_aws(target)
        instance = self._lookups.instance(aws)
        ps_arn = self._lookups.permission_set_arn(aws, instance)
        user_id = self._lookups.user_id(aws, instance, principal.email)
        sso = self._clients.client("sso-admin", aws)
        outcomes = []
        for account in self._lookups.all_accounts(aws):
            if self._lookups.assigned(aws, instance, ps_arn, account, user_id):
                outcomes.append(True)
                continue
            self._change(_CREATE, sso, aws, instance, ps_arn, account, user_id)
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
        instance = self._lookups.instance(aws)
        ps_arn = self._lookups.permission_set_arn(aws, instance)
        # The user granted to, as recorded then: one renamed since is not found by the
        # email any more, and would keep the assignment.
        user_id = _recorded_user_id(principal.recorded)
        if user_id is None:
            try:
                user_id = self._lookups.user_id(aws, instance, principal.email)
            except _NoSuchUser:
                # A user gone from the Identity Store can no longer sign in, and AWS
                # removes its assignments with it: the access is already absent.
                log.warning(
                    "revoke %s: %s; nothing left to remove", context.request_id, principal.email
                )
                return
        sso = self._clients.client("sso-admin", aws)
        for account in self._lookups.all_accounts(aws):
            self._change(_DELETE, sso, aws, instance, ps_arn, account, user_id)

    def _change(
        self,
        change: _Change,
        sso: BaseClient,
        aws: AwsTarget,
        instance: _Resolved,
        ps_arn: str,
        account: str,
        user_id: str,
    ) -> None:
        """Make ``change`` to the user's assignment on ``account`` and wait until AWS has."""
        try:
            answer = self._calls.call(
                getattr(sso, change.start),
                **self._lookups.assignment(instance, ps_arn, account, user_id),
            )
        except _NotFound:
            if change.present:
                raise
            return  # nothing left to delete: as wanted
        done = self._lookups.assigned if change.present else self._lookups.unassigned
        self._calls.wait(
            instance.instance_arn,
            answer[change.fields[1]],
            getattr(sso, change.describe),
            change.fields,
            partial(done, aws, instance, ps_arn, account, user_id),
            what=f"{change.verb} {account}",
        )

    def is_granted(self, principal: Principal, target: TargetSpec) -> bool | None:
        aws = _as_aws(target)
        instance = self._lookups.instance(aws)
        ps_arn = self._lookups.permission_set_arn(aws, instance)
        user_id = self._lookups.user_id(aws, instance, principal.email)
        accounts = self._lookups.all_accounts(aws)
        return bool(accounts) and all(
            self._lookups.assigned(aws, instance, ps_arn, a, user_id) for a in accounts
        )

    def inventory(self, target: TargetSpec) -> list[Holding] | None:
        """Every user assignment of the target's permission set on its accounts."""
        found = []
        for unit in self.expand(target):
            aws = _as_aws(unit)
            instance = self._lookups.instance(aws)
            account = aws.accounts[0]
            for assignment in self._lookups.list_assignments(
                aws, instance, aws.permission_set, account
            ):
                if assignment["PrincipalType"] != "USER":
                    continue
                email = self._lookups.email_of(aws, instance, assignment["PrincipalId"])
                found.append(Holding(email=email, unit=unit))
        return found

    def refresh(self) -> None:
        self._lookups.refresh()

    # -------------------------------------------------------------- live sessions

    def session_scope(
        self, principal: Principal, target: TargetSpec, *, recorded: str | None = None
    ) -> SessionScope | None:
        aws = _as_aws(target)
        if not aws.end_sessions:
            return None
        instance = self._lookups.instance(aws)
        ps_arn = self._lookups.permission_set_arn(aws, instance)
        # The user granted to, as recorded then: a user deleted or renamed since (at
        # offboarding) keeps the sessions already issued, and AWS documents the Deny as
        # the way to end them. The email is looked up only for grants that recorded none.
        user_id = _recorded_user_id(recorded)
        if user_id is None:
            try:
                user_id = self._lookups.user_id(aws, instance, principal.email)
            except _NoSuchUser:
                log.warning(
                    "ending sessions: no Identity Store user recorded or found for %s",
                    principal.email,
                )
                return None
        return SessionScope(
            key=f"aws:{instance.instance_arn}:{ps_arn}",
            principal_id=user_id,
            lifetime=self._lookups.session_duration(aws, instance, ps_arn),
        )

    def denial_name(self, request_id: str) -> str:
        return aws_sessions.statement_id(request_id)

    def write_denials(
        self, target: TargetSpec, denials: Sequence[Denial], *, enforce: bool = False
    ) -> bool:
        aws = _as_aws(target)
        instance = self._lookups.instance(aws)
        ps_arn = self._lookups.permission_set_arn(aws, instance)
        sso = self._clients.client("sso-admin", aws)
        where = {"InstanceArn": instance.instance_arn, "PermissionSetArn": ps_arn}
        current = self._calls.call(sso.get_inline_policy_for_permission_set, **where)
        document, changed = aws_sessions.with_denials(
            str(current.get("InlinePolicy") or ""), denials, where=f"permission set {ps_arn}"
        )
        # Unchanged is not in force: an earlier write may have put this document and then
        # failed to provision it. ``enforce`` provisions it again regardless.
        if not changed and not enforce:
            return False
        if changed and document is None:
            with contextlib.suppress(_NotFound):  # deleted by hand meanwhile: as wanted
                self._calls.call(sso.delete_inline_policy_from_permission_set, **where)
        elif changed:
            self._calls.call(
                sso.put_inline_policy_to_permission_set, **where, InlinePolicy=document
            )
        # The policy only reaches the accounts' IAM roles when the permission set is
        # provisioned again, to every account it is on.
        answer = self._calls.call(
            sso.provision_permission_set, **where, TargetType="ALL_PROVISIONED_ACCOUNTS"
        )
        self._calls.wait(
            instance.instance_arn,
            answer["PermissionSetProvisioningStatus"],
            sso.describe_permission_set_provisioning_status,
            ("ProvisionPermissionSetRequestId", "PermissionSetProvisioningStatus"),
            lambda: False,
            what=f"provisioning permission set {ps_arn}",
        )
        return changed


@dataclass(frozen=True)
class _Change:
    """A change to one account assignment, which AWS makes asynchronously: the sso-admin
    operations that start and follow it, and whether the assignment exists once it is done
    (for a deletion, an assignment AWS no longer finds is already as wanted)."""

    start: str
    describe: str
    fields: tuple[str, str]  # the request id's and the status's field names
    verb: str
    present: bool


_CREATE = _Change(
    "create_account_assignment",
    "describe_account_assignment_creation_status",
    ("AccountAssignmentCreationRequestId", "AccountAssignmentCreationStatus"),
    "granting",
    present=True,
)
_DELETE = _Change(
    "delete_account_assignment",
    "describe_account_assignment_deletion_status",
    ("AccountAssignmentDeletionRequestId", "AccountAssignmentDeletionStatus"),
    "revoking",
    present=False,
)

_RECORDED = "Identity Store user "  # how grant() names the user in GrantOutcome.principal


def _recorded_user_id(recorded: str | None) -> str | None:
    if recorded and recorded.startswith(_RECORDED) and len(recorded) > len(_RECORDED):
        return recorded[len(_RECORDED) :]
    return None


def _as_aws(target: TargetSpec) -> AwsTarget:
    if not isinstance(target, AwsTarget):
        raise TypeError(f"the aws provider cannot handle {target.provider} targets")
    return target
