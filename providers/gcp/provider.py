"""The ``gcp`` provider: an IAM role on GCP projects, folders or an organization, granted
as a *conditional* binding that expires by itself.

Each grant adds one binding to the resource's IAM policy::

    role: roles/logging.viewer
    members: [user:alice@example.com]
    condition:
      title: jit-bot R-7K2M9QXA
      description: jit-bot request R-7K2M9QXA: alice@example.com as prod-support in prod
      expression: request.time < timestamp("2024-05-01T12:00:00Z")

so Google itself ends the access at ``expires_at`` even if the bot is down: the bot's own
revocation is the first line, the condition the second. An approved extension rewrites
that condition in place (`GcpProvider.extend`).

An IAM policy is shared with everyone else who manages the resource (people, Terraform),
so every change is a read-modify-write of the whole policy at version 3 guarded by its
etag: the policy written back is the one read plus (or minus) jit-bot's own bindings, and
a concurrent change (``409 ABORTED``) starts the read-modify-write again after a backoff.
Only bindings whose condition title starts with ``jit-bot `` are ever removed.

Credentials are Application Default Credentials, optionally impersonating a service
account (`GoogleAuth`); the clients are built by `GcpClients` in the composition root.
IAM admin (role checks for ``jit-bot check --live``) is reached over gRPC, the only
transport google-cloud-iam ships for it; Resource Manager over REST.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from providers.base import GrantOutcome, Holding, Provider, ProviderError
from providers.gcp.auth import CLOUD_PLATFORM, GcpClients, GoogleAuth
from providers.gcp.bindings import (
    POLICY_VERSION,
    TITLE_PREFIX,
    _condition,
    _expired,
    _has,
    _holds,
    _ours,
    _standing,
    _timestamp,
    _without,
    condition_end,
    condition_title,
    expiry_of,
)
from providers.gcp.calls import RETRY, GoogleCalls, _NotFound, _Stale
from providers.gcp.target import _KINDS, DomainMap, GcpTarget, _as_gcp, _label
from providers.resilience import TtlCache

if TYPE_CHECKING:  # annotations only: the SDK is imported where it is used
    from google.cloud import iam_admin_v1
    from google.iam.v1 import policy_pb2
    from google.type import expr_pb2

    from providers.base import GrantContext, Principal, TargetSpec

CRM_PREFIX = "//cloudresourcemanager.googleapis.com/"
_NEVER = datetime.min.replace(tzinfo=UTC)  # sorts a binding whose end is unknown first


class GcpProvider(Provider):
    """Grants an IAM role as a conditional binding per request; every policy change is a
    read-modify-write guarded by the etag (`_modify`)."""

    name = "gcp"
    target_model = GcpTarget
    separate_grants = True  # a binding per request, found by its condition title

    def __init__(
        self,
        clients: GcpClients,
        *,
        domain_map: DomainMap | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] | None = None,
        attempts: int = RETRY.attempts,
        timeout: float = 30.0,
    ) -> None:
        self._clients = clients
        self._domains = domain_map or DomainMap()
        self._now = now or (lambda: datetime.now(UTC))
        self._calls = GoogleCalls(
            dataclasses.replace(RETRY, attempts=attempts), sleep=sleep, timeout=timeout
        )
        # Roles and where they may be granted change rarely: kept until ``refresh``.
        self._roles: TtlCache[str, iam_admin_v1.Role] = TtlCache(math.inf)
        self._grantable: TtlCache[str, set[str]] = TtlCache(math.inf)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> GcpProvider:
        """Every GCP setting the bot reads, in one place:

        - ``GOOGLE_APPLICATION_CREDENTIALS`` (optional): a key file; otherwise ADC;
        - ``JIT_GCP_IMPERSONATE_SERVICE_ACCOUNT`` (optional): act as this service account;
        - ``JIT_GCP_DOMAIN_MAP`` (optional): ``slack-domain=google-domain,…``;
        - ``JIT_GCP_ENDPOINT`` / ``JIT_GCP_IAM_ENDPOINT`` (tests, emulators).
        """
        auth = GoogleAuth.from_environ(environ)
        clients = GcpClients(
            lambda: auth.credentials([CLOUD_PLATFORM]),
            api_endpoint=environ.get("JIT_GCP_ENDPOINT") or None,
            iam_endpoint=environ.get("JIT_GCP_IAM_ENDPOINT") or None,
        )
        return cls(clients, domain_map=DomainMap.parse(environ.get("JIT_GCP_DOMAIN_MAP", "")))

    # -------------------------------------------------------------- interface

    def validate(self, target: TargetSpec, *, live: bool = False) -> list[str]:
        """With ``live``: the role exists (not deleted), is grantable on every resource,
        and the bot may read and write each resource's IAM policy."""
        gcp = _as_gcp(target)
        if not live:
            return []
        from google.cloud import iam_admin_v1

        warnings = []
        role = self._role_info(gcp.role)
        if role.deleted:
            raise ProviderError(f"role {gcp.role} is deleted; undelete it or choose another")
        stage = iam_admin_v1.Role.RoleLaunchStage(role.stage).name
        if stage in ("DEPRECATED", "DISABLED"):
            warnings.append(f"role {gcp.role} is {stage}; grants of it may give nothing")
        for resource in gcp.resources():
            label = _label(resource)
            if gcp.role not in self._grantable_on(resource):
                raise ProviderError(
                    f"role {gcp.role} is not grantable on {label} (IAM queryGrantableRoles "
                    "does not list it there); choose a role that can be granted at that level"
                )
            missing = self._missing_permissions(resource)
            if missing:
                kind = resource.split("/")[0]
                raise ProviderError(
                    f"the bot may not change the IAM policy of {label}: it lacks "
                    f"{', '.join(missing)}; grant its service account {_KINDS[kind][1]} there"
                )
        return warnings

    def expand(self, target: TargetSpec) -> list[TargetSpec]:
        """One unit per project, folder and organization."""
        gcp = _as_gcp(target)
        units: list[TargetSpec] = []
        for resource in gcp.resources():
            kind, _, ident = resource.partition("/")
            units.append(
                GcpTarget(
                    role=gcp.role,
                    projects=[ident] if kind == "projects" else [],
                    folders=[ident] if kind == "folders" else [],
                    organization=ident if kind == "organizations" else None,
                )
            )
        return units

    def lane(self, target: TargetSpec) -> str | None:
        # Every grant and revoke rewrites the resource's whole IAM policy: calls on one
        # resource at once would only fail each other's etag check.
        return ",".join(_as_gcp(target).resources())

    def describe(self, target: TargetSpec) -> str:
        gcp = _as_gcp(target)
        where = ", ".join(_label(r) for r in gcp.resources())
        return f"GCP {where}: role `{gcp.role}`"

    def grant(
        self, principal: Principal, target: TargetSpec, context: GrantContext
    ) -> GrantOutcome:
        gcp = _as_gcp(target)
        member = self._member(principal)
        condition = _condition(member, gcp.role, context)
        standing = [
            self._grant_on(resource, gcp.role, member, condition) for resource in gcp.resources()
        ]
        if standing and all(standing):
            return GrantOutcome(
                preexisting=True,
                detail=f"{member} already holds {gcp.role} without a condition",
                principal=member,
            )
        return GrantOutcome(
            detail=f"expires by IAM condition at {_timestamp(context.expires_at)}",
            principal=member,
        )

    def revoke(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        """Take ``principal`` out of this request's binding of the role (the one titled
        ``jit-bot <request id>``), and drop expired jit-bot bindings of anyone while the
        policy is open anyway (an IAM policy has a size limit).

        Another request's binding of the same person stays: it ends with that request, or
        by its own condition. Bindings jit-bot did not write, standing access among them,
        are never touched."""
        gcp = _as_gcp(target)
        member = self._member(principal)
        title = condition_title(context.request_id)
        for resource in gcp.resources():
            self._revoke_on(resource, gcp.role, member, title)

    def extend(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        """Move this request's binding (titled ``jit-bot <request id>``) to end at the new
        expiry, on every resource of the unit: one etag-guarded write per resource in which
        the new condition replaces the old, so the person never holds the role through
        none, or through two, of this request's bindings. A binding that already ends at
        or after the new time is left alone (never shortened); standing access is never
        touched. A binding that is gone (removed by someone, or by jit-bot's own revocation
        racing this call) or has expired is never written again: the access has ended,
        and an extension only ever keeps access that is still there."""
        gcp = _as_gcp(target)
        member = self._member(principal)
        condition = _condition(member, gcp.role, context)
        for resource in gcp.resources():
            self._extend_on(resource, gcp.role, member, condition)

    def is_granted(self, principal: Principal, target: TargetSpec) -> bool | None:
        gcp = _as_gcp(target)
        member = self._member(principal)
        now = self._now()
        return all(
            _holds(self._read(resource), gcp.role, member, now) for resource in gcp.resources()
        )

    def inventory(self, target: TargetSpec) -> list[Holding] | None:
        """Who holds the role through a live jit-bot binding, per unit. Bindings written
        by others are Terraform's or people's business, not drift."""
        gcp = _as_gcp(target)
        now = self._now()
        found = []
        for unit in self.expand(gcp):
            policy = self._read(_as_gcp(unit).resources()[0])
            for binding in policy.bindings:
                if binding.role != gcp.role or not _ours(binding) or _expired(binding, now):
                    continue
                for member in binding.members:
                    if member.startswith("user:"):
                        email = self._domains.slack_email(member.removeprefix("user:"))
                        request_id = binding.condition.title.removeprefix(TITLE_PREFIX)
                        found.append(Holding(email=email, unit=unit, request_id=request_id))
        return found

    def refresh(self) -> None:
        self._roles.clear()
        self._grantable.clear()

    # -------------------------------------------------------------- policies

    def _member(self, principal: Principal) -> str:
        return f"user:{self.account_email(principal.email)}"

    def account_email(self, email: str) -> str:
        return self._domains.to_google(email)

    def _grant_on(self, resource: str, role: str, member: str, condition: expr_pb2.Expr) -> bool:
        """Add our binding; True when the member already held the role unconditionally
        (standing access: nothing is written)."""
        standing = False

        def edit(policy: policy_pb2.Policy) -> bool:
            nonlocal standing
            standing = _standing(policy, role, member)
            if standing:
                return False
            for binding in policy.bindings:
                if (
                    binding.role == role
                    and _ours(binding)
                    and binding.condition.title == condition.title
                ):
                    if _has(binding, member) and binding.condition == condition:
                        return False  # granted already (a retried call of this request)
                    binding.condition.CopyFrom(condition)
                    if not _has(binding, member):
                        binding.members.append(member)
                    return True
            policy.bindings.add(role=role, members=[member], condition=condition)
            return True

        self._modify(resource, edit)
        return standing

    def _extend_on(self, resource: str, role: str, member: str, condition: expr_pb2.Expr) -> None:
        until = condition_end(condition)
        now = self._now()

        def edit(policy: policy_pb2.Policy) -> bool:
            if _standing(policy, role, member):
                return False  # standing access: it outlasts any extension already
            ours = [
                i
                for i, b in enumerate(policy.bindings)
                if b.role == role
                and _ours(b)
                and b.condition.title == condition.title
                and _has(b, member)
            ]
            live = [i for i in ours if not _expired(policy.bindings[i], now)]
            if not live:
                raise ProviderError(
                    f"{_label(resource)}: {member.removeprefix('user:')} no longer holds "
                    f"{role} through this request's binding (removed, or expired); "
                    "nothing was extended"
                )
            # The same request's binding twice (a hand-made copy) is made one: the one
            # that ends last is kept, so nothing is shortened.
            kept = max(ours, key=lambda i: expiry_of(policy.bindings[i]) or _NEVER)
            ends = expiry_of(policy.bindings[kept])
            longer = ends is None or until is None or ends < until
            if not longer and len(ours) == 1:
                return False  # extended already, or for longer: never shortened
            if longer:
                policy.bindings[kept].condition.CopyFrom(condition)
            if len(ours) > 1:
                left = [
                    b
                    for i, b in enumerate(policy.bindings)
                    if i not in ours or i == kept or _without(b, member)
                ]
                del policy.bindings[:]
                policy.bindings.extend(left)
            return True

        self._modify(resource, edit)

    def _revoke_on(self, resource: str, role: str, member: str, title: str) -> None:
        now = self._now()

        def edit(policy: policy_pb2.Policy) -> bool:
            kept: list[policy_pb2.Binding] = []
            changed = False
            for binding in policy.bindings:
                if _ours(binding) and _expired(binding, now):
                    changed = True  # left behind: Google ignores it, but it fills the policy
                    continue
                if (
                    _ours(binding)
                    and binding.role == role
                    and binding.condition.title == title
                    and _has(binding, member)
                ):
                    changed = True
                    if not _without(binding, member):
                        continue
                kept.append(binding)
            if changed:
                del policy.bindings[:]
                policy.bindings.extend(kept)
            return changed

        self._modify(resource, edit)

    def _modify(self, resource: str, edit: Callable[[policy_pb2.Policy], bool]) -> None:
        """Read the policy, let ``edit`` change it (it returns False for "nothing to do"),
        write it back with the etag read; on a concurrent change start over."""
        from google.iam.v1 import iam_policy_pb2
        from google.protobuf import field_mask_pb2

        client = self._clients.policies(resource)
        tries = self._calls.retry.start(self._calls.sleep)
        while True:
            policy = self._read(resource)
            if not edit(policy):
                return
            policy.version = POLICY_VERSION
            request = iam_policy_pb2.SetIamPolicyRequest(
                resource=resource,
                policy=policy,
                # Only bindings change; the etag makes the write conditional on them.
                update_mask=field_mask_pb2.FieldMask(paths=["bindings", "etag"]),
            )
            try:
                self._calls.call(resource, "setIamPolicy", client.set_iam_policy, request)
                return
            except _Stale:
                if not tries.again(why=f"{_label(resource)}: IAM policy changed under us"):
                    break
        raise ProviderError(
            f"{_label(resource)}: the IAM policy kept changing under the bot "
            f"({tries.attempt} attempts); try again",
            retryable=True,
        )

    def _read(self, resource: str) -> policy_pb2.Policy:
        from google.iam.v1 import iam_policy_pb2, options_pb2

        request = iam_policy_pb2.GetIamPolicyRequest(
            resource=resource,
            # Below version 3 Google hides conditions: writing that back would break them.
            options=options_pb2.GetPolicyOptions(requested_policy_version=POLICY_VERSION),
        )
        client = self._clients.policies(resource)
        policy: policy_pb2.Policy = self._calls.call(
            resource, "getIamPolicy", client.get_iam_policy, request
        )
        return policy

    # -------------------------------------------------------------- IAM admin

    def _role_info(self, name: str) -> iam_admin_v1.Role:
        def load() -> iam_admin_v1.Role:
            from google.cloud import iam_admin_v1

            iam = self._clients.iam()
            request = iam_admin_v1.GetRoleRequest(name=name)
            try:
                role: iam_admin_v1.Role = self._calls.call(name, "GetRole", iam.get_role, request)
            except _NotFound:
                raise ProviderError(f"role {name} does not exist") from None
            return role

        return self._roles.get(name, load)

    def _grantable_on(self, resource: str) -> set[str]:
        def load() -> set[str]:
            from google.cloud import iam_admin_v1

            iam = self._clients.iam()
            request = iam_admin_v1.QueryGrantableRolesRequest(
                full_resource_name=CRM_PREFIX + resource, page_size=1000
            )

            def collect(req: Any, **kwargs: Any) -> set[str]:
                return {role.name for role in iam.query_grantable_roles(req, **kwargs)}

            names: set[str] = self._calls.call(resource, "queryGrantableRoles", collect, request)
            return names

        return self._grantable.get(resource, load)

    def _missing_permissions(self, resource: str) -> list[str]:
        from google.iam.v1 import iam_policy_pb2

        kind = resource.split("/")[0]
        wanted = [f"resourcemanager.{kind}.getIamPolicy", f"resourcemanager.{kind}.setIamPolicy"]
        client = self._clients.policies(resource)
        request = iam_policy_pb2.TestIamPermissionsRequest(resource=resource, permissions=wanted)
        answer = self._calls.call(
            resource, "testIamPermissions", client.test_iam_permissions, request
        )
        return [p for p in wanted if p not in set(answer.permissions)]
