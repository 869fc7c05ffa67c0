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
revocation is the first line, the condition the second.

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

import logging
import random
import re
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol
from urllib.parse import urlsplit

import google.auth
import google.auth.exceptions
import grpc
import requests
from google.api_core import exceptions as api
from google.auth import impersonated_credentials
from google.auth.credentials import Credentials
from google.auth.transport.grpc import secure_authorized_channel
from google.auth.transport.requests import Request
from google.cloud import iam_admin_v1, resourcemanager_v3
from google.cloud.iam_admin_v1.services.iam.transports.grpc import IAMGrpcTransport
from google.iam.v1 import iam_policy_pb2, options_pb2, policy_pb2
from google.protobuf import field_mask_pb2
from google.type import expr_pb2
from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from providers.base import (
    GrantContext,
    GrantOutcome,
    Holding,
    Principal,
    Provider,
    ProviderError,
    TargetSpec,
)

log = logging.getLogger(__name__)

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
# Every binding jit-bot writes has a condition titled "jit-bot <request id>"; nothing
# else is ever removed by the bot.
TITLE_PREFIX = "jit-bot "
POLICY_VERSION = 3  # the only version that carries conditions
BASIC_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})
CRM_PREFIX = "//cloudresourcemanager.googleapis.com/"

_PREDEFINED_ROLE = re.compile(r"^roles/[A-Za-z0-9_.]{1,128}$")
_CUSTOM_ROLE = re.compile(r"^(projects|organizations)/([a-z0-9-]{1,64})/roles/[A-Za-z0-9_.]{3,64}$")
_PROJECT = re.compile(r"^([a-z][a-z0-9-]{4,28}[a-z0-9]|\d{1,20})$")
_NUMERIC = re.compile(r"^\d{1,20}$")
_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
_EXPIRY = re.compile(r'^request\.time\s*<\s*timestamp\(\s*"([^"]+)"\s*\)$')

# Where each kind of resource lives in the API, how people name it, and the predefined
# role that lets the bot change its policy (for error messages and the README).
_KINDS = {
    "projects": ("project", "roles/resourcemanager.projectIamAdmin"),
    "folders": ("folder", "roles/resourcemanager.folderIamAdmin"),
    "organizations": ("organization", "roles/resourcemanager.organizationAdmin"),
}
_RETRYABLE = (
    api.TooManyRequests,
    api.ServerError,  # 500, 502, 503, 504
    api.DeadlineExceeded,
    api.ResourceExhausted,
    api.ServiceUnavailable,
)


# ---------------------------------------------------------------------- the target


def _role(value: str) -> str:
    if value in BASIC_ROLES:
        raise ValueError(
            f"basic role {value} cannot carry IAM conditions, so its access could not "
            "expire by itself; use a predefined role (roles/logging.viewer …) or a custom role"
        )
    if not (_PREDEFINED_ROLE.match(value) or _CUSTOM_ROLE.match(value)):
        raise ValueError(
            f"'{value}' is not an IAM role; expected roles/<name>, "
            "projects/<project>/roles/<id> or organizations/<org id>/roles/<id>"
        )
    return value


def _strip(kind: str) -> Callable[[Any], Any]:
    """Accept ``folders/123`` as well as ``123``: the form the console copies."""

    def strip(value: Any) -> Any:
        return value.removeprefix(f"{kind}/") if isinstance(value, str) else value

    return strip


def _project(value: str) -> str:
    if not _PROJECT.match(value):
        raise ValueError(
            f"'{value}' is not a GCP project id; expected 6–30 lower-case letters, digits "
            "and hyphens starting with a letter (acme-prod), or a project number"
        )
    return value


def _numeric(what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not _NUMERIC.match(value):
            raise ValueError(f"'{value}' is not a {what} id; expected its number (123456789012)")
        return value

    return check


ProjectId = Annotated[str, BeforeValidator(_strip("projects")), AfterValidator(_project)]
FolderId = Annotated[str, BeforeValidator(_strip("folders")), AfterValidator(_numeric("folder"))]
OrganizationId = Annotated[
    str, BeforeValidator(_strip("organizations")), AfterValidator(_numeric("organization"))
]


class GcpTarget(TargetSpec):
    """``provider: gcp`` in roles.yaml: ``role`` on every listed resource."""

    provider: Literal["gcp"] = "gcp"
    role: Annotated[str, AfterValidator(_role)]
    projects: list[ProjectId] = Field(default_factory=list)
    folders: list[FolderId] = Field(default_factory=list)
    organization: OrganizationId | None = None

    @model_validator(mode="after")
    def _somewhere(self) -> GcpTarget:
        if not (self.projects or self.folders or self.organization):
            raise ValueError("expected 'projects', 'folders' and/or 'organization' to grant on")
        custom = _CUSTOM_ROLE.match(self.role)
        if custom and custom.group(1) == "projects":
            owner = custom.group(2)
            if self.folders or self.organization or set(self.projects) != {owner}:
                raise ValueError(
                    f"the custom role {self.role} exists only in project {owner} and can be "
                    f"granted there only; expected projects: [{owner}]"
                )
        return self

    def resources(self) -> list[str]:
        """The resource names the API uses: projects/…, folders/…, organizations/…."""
        names = [f"projects/{p}" for p in self.projects]
        names += [f"folders/{f}" for f in self.folders]
        if self.organization:
            names.append(f"organizations/{self.organization}")
        return list(dict.fromkeys(names))


# ---------------------------------------------------------------------- identity


@dataclass(frozen=True)
class DomainMap:
    """How Slack emails become Google accounts: ``example.org=example.com`` turns
    alice@example.org into alice@example.com. Domains not mapped stay as they are."""

    pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> DomainMap:
        """``JIT_GCP_DOMAIN_MAP``: comma-separated ``slack-domain=google-domain`` pairs."""
        pairs: list[tuple[str, str]] = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            source, sep, target = (s.strip().lower() for s in item.partition("="))
            if not sep or not _DOMAIN.match(source) or not _DOMAIN.match(target):
                raise ValueError(
                    f"JIT_GCP_DOMAIN_MAP: '{item}' is not a domain pair; expected "
                    "slack-domain=google-domain, for example example.org=example.com"
                )
            if source in dict(pairs):
                raise ValueError(f"JIT_GCP_DOMAIN_MAP: {source} is mapped twice")
            pairs.append((source, target))
        return cls(tuple(pairs))

    def to_google(self, email: str) -> str:
        local, _, domain = email.lower().rpartition("@")
        return f"{local}@{dict(self.pairs).get(domain, domain)}"

    def to_slack(self, email: str) -> list[str]:
        """Every Slack email that may stand for this Google account: those whose domain
        maps to its domain, then the email itself (unmapped Slack domains stay as they
        are, so alice@example.com in Google may be alice@example.com in Slack too)."""
        email = email.lower()
        local, _, domain = email.rpartition("@")
        mapped = [f"{local}@{source}" for source, target in self.pairs if target == domain]
        return [*mapped, email] if email not in mapped else mapped

    def slack_email(self, email: str) -> str:
        """The one Slack email a Google account stands for when the map says so; the
        email itself when no, or more than one, Slack domain maps to its domain."""
        candidates = self.to_slack(email)
        return candidates[0] if len(candidates) == 2 else email.lower()


class CredentialsSource(Protocol):
    """google.auth.default's shape: credentials (and a project id) for some scopes."""

    def __call__(self, *, scopes: Sequence[str]) -> tuple[Credentials, str | None]: ...


class GoogleAuth:
    """Where every Google credential of the bot comes from, in one place.

    Application Default Credentials (a key file named by GOOGLE_APPLICATION_CREDENTIALS,
    gcloud's user credentials, or the metadata server on GCP); with ``impersonate`` those
    only mint short-lived tokens for that service account (needs
    roles/iam.serviceAccountTokenCreator on it), which is then what acts. ``subject`` asks
    for domain-wide delegation (the Admin SDK reads groups as that Workspace user).
    """

    def __init__(
        self,
        *,
        impersonate: str | None = None,
        source: CredentialsSource | None = None,
        iam_credentials_endpoint: str | None = None,
        lifetime: int = 3600,
    ) -> None:
        self.impersonate = impersonate
        self._source = source or _default_source
        self._iam_credentials_endpoint = iam_credentials_endpoint
        self._lifetime = lifetime
        self._cache: dict[tuple[tuple[str, ...], str | None], Credentials] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> GoogleAuth:
        key_file = environ.get("GOOGLE_APPLICATION_CREDENTIALS") or None
        return cls(
            impersonate=environ.get("JIT_GCP_IMPERSONATE_SERVICE_ACCOUNT") or None,
            source=_file_source(key_file) if key_file else None,
        )

    def credentials(self, scopes: Sequence[str], *, subject: str | None = None) -> Credentials:
        """Credentials for ``scopes`` (built once; google-auth refreshes their tokens)."""
        key = (tuple(scopes), subject)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        built = self._build(list(scopes), subject)
        with self._lock:
            return self._cache.setdefault(key, built)

    def _build(self, scopes: list[str], subject: str | None) -> Credentials:
        # Impersonation needs only cloud-platform on the source: the IAM Credentials API
        # mints the token for the target scopes.
        source_scopes = [CLOUD_PLATFORM] if self.impersonate else scopes
        try:
            source, _ = self._source(scopes=source_scopes)
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise ProviderError(
                f"no Google credentials: {exc} Set up Application Default Credentials "
                "(README, 'GCP') for the bot's service account."
            ) from None
        if self.impersonate:
            extra = {}
            if self._iam_credentials_endpoint:
                extra["iam_endpoint_override"] = (
                    f"{self._iam_credentials_endpoint.rstrip('/')}/v1/projects/-/"
                    f"serviceAccounts/{self.impersonate}:generateAccessToken"
                )
            return impersonated_credentials.Credentials(
                source_credentials=source,
                target_principal=self.impersonate,
                target_scopes=scopes,
                subject=subject,
                lifetime=self._lifetime,
                **extra,
            )
        if subject:
            with_subject = getattr(source, "with_subject", None)
            if with_subject is None:
                raise ProviderError(
                    f"domain-wide delegation (acting as {subject}) needs a service account: "
                    "set JIT_GCP_IMPERSONATE_SERVICE_ACCOUNT, or point "
                    "GOOGLE_APPLICATION_CREDENTIALS at a service-account key; the current "
                    f"credentials ({type(source).__name__}) cannot sign for a user"
                )
            return with_subject(subject)  # type: ignore[no-any-return]
        return source


def _default_source(*, scopes: Sequence[str]) -> tuple[Credentials, str | None]:
    credentials, project = google.auth.default(scopes=scopes)
    return credentials, project


def _file_source(path: str) -> CredentialsSource:
    """ADC from a named key file: what google.auth.default does with the variable, but
    read from the environment the composition root was given."""

    def load(*, scopes: Sequence[str]) -> tuple[Credentials, str | None]:
        with warnings.catch_warnings():
            # The generic loader warns about files from untrusted sources; this one is the
            # operator's own, and google.auth.default silences the warning the same way.
            warnings.simplefilter("ignore", DeprecationWarning)
            credentials, project = google.auth.load_credentials_from_file(path, scopes=scopes)
        return credentials, project

    return load


# ---------------------------------------------------------------------- clients


class GcpClients:
    """Builds the Google clients on first use, with the given credentials (a Credentials
    object, or a function returning one, so nothing asks for credentials until a GCP
    target is used). ``api_endpoint`` points Resource Manager elsewhere (tests, emulators);
    ``iam_endpoint`` does the same for IAM admin, where ``http://host:port`` means a
    plaintext gRPC endpoint on this machine."""

    def __init__(
        self,
        credentials: Credentials | Callable[[], Credentials],
        *,
        api_endpoint: str | None = None,
        iam_endpoint: str | None = None,
    ) -> None:
        self._credentials = credentials
        self._api_endpoint = api_endpoint
        self._iam_endpoint = iam_endpoint
        self._built: dict[str, Any] = {}
        self._lock = threading.Lock()

    def policies(self, resource: str) -> Any:
        """The Resource Manager client for a projects/…, folders/… or organizations/… name."""
        kind = resource.split("/")[0]
        factory = {
            "projects": resourcemanager_v3.ProjectsClient,
            "folders": resourcemanager_v3.FoldersClient,
            "organizations": resourcemanager_v3.OrganizationsClient,
        }[kind]
        return self._get(
            kind,
            lambda: factory(
                credentials=self._creds(),
                transport="rest",
                client_options={"api_endpoint": self._api_endpoint} if self._api_endpoint else None,
            ),
        )

    def iam(self) -> iam_admin_v1.IAMClient:
        client: iam_admin_v1.IAMClient = self._get("iam", self._build_iam)
        return client

    def _build_iam(self) -> iam_admin_v1.IAMClient:
        endpoint = self._iam_endpoint
        if endpoint and endpoint.startswith("http://"):
            channel = secure_authorized_channel(
                self._creds(),
                Request(),
                urlsplit(endpoint).netloc,
                ssl_credentials=grpc.local_channel_credentials(),
            )
            return iam_admin_v1.IAMClient(transport=IAMGrpcTransport(channel=channel))
        options = {"api_endpoint": endpoint.removeprefix("https://")} if endpoint else None
        return iam_admin_v1.IAMClient(credentials=self._creds(), client_options=options)

    def _creds(self) -> Credentials:
        if isinstance(self._credentials, Credentials):
            return self._credentials
        return self._credentials()

    def _get(self, key: str, build: Callable[[], Any]) -> Any:
        with self._lock:
            if key not in self._built:
                self._built[key] = build()
            return self._built[key]


# ---------------------------------------------------------------------- the provider


class _Stale(Exception):
    """setIamPolicy refused our etag: someone changed the policy since we read it."""


class _NotFound(ProviderError):
    """Google answered 404."""


class GcpProvider(Provider):
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
        attempts: int = 8,
        timeout: float = 30.0,
    ) -> None:
        self._clients = clients
        self._domains = domain_map or DomainMap()
        self._sleep = sleep
        self._now = now or (lambda: datetime.now(UTC))
        self._attempts = attempts
        self._timeout = timeout
        self._roles: dict[str, iam_admin_v1.Role] = {}
        self._grantable: dict[str, set[str]] = {}
        self._lock = threading.Lock()

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
        with self._lock:
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
            standing = any(
                b.role == role and not b.HasField("condition") and _has(b, member)
                for b in policy.bindings
            )
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
                    others = [m for m in binding.members if m.lower() != member.lower()]
                    if not others:
                        continue
                    del binding.members[:]
                    binding.members.extend(others)
                kept.append(binding)
            if changed:
                del policy.bindings[:]
                policy.bindings.extend(kept)
            return changed

        self._modify(resource, edit)

    def _modify(self, resource: str, edit: Callable[[policy_pb2.Policy], bool]) -> None:
        """Read the policy, let ``edit`` change it (it returns False for "nothing to do"),
        write it back with the etag read; on a concurrent change start over."""
        client = self._clients.policies(resource)
        for attempt in range(1, self._attempts + 1):
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
                self._call(resource, "setIamPolicy", client.set_iam_policy, request)
                return
            except _Stale:
                if attempt == self._attempts:
                    break
                log.info("%s: IAM policy changed under us; retrying", _label(resource))
                self._backoff(attempt)
        raise ProviderError(
            f"{_label(resource)}: the IAM policy kept changing under the bot "
            f"({self._attempts} attempts); try again",
            retryable=True,
        )

    def _read(self, resource: str) -> policy_pb2.Policy:
        request = iam_policy_pb2.GetIamPolicyRequest(
            resource=resource,
            # Below version 3 Google hides conditions: writing that back would break them.
            options=options_pb2.GetPolicyOptions(requested_policy_version=POLICY_VERSION),
        )
        client = self._clients.policies(resource)
        policy: policy_pb2.Policy = self._call(
            resource, "getIamPolicy", client.get_iam_policy, request
        )
        return policy

    # -------------------------------------------------------------- IAM admin

    def _role_info(self, name: str) -> iam_admin_v1.Role:
        with self._lock:
            if name in self._roles:
                return self._roles[name]
        iam = self._clients.iam()
        request = iam_admin_v1.GetRoleRequest(name=name)
        try:
            role: iam_admin_v1.Role = self._call(name, "GetRole", iam.get_role, request)
        except _NotFound:
            raise ProviderError(f"role {name} does not exist") from None
        with self._lock:
            self._roles[name] = role
        return role

    def _grantable_on(self, resource: str) -> set[str]:
        with self._lock:
            if resource in self._grantable:
                return self._grantable[resource]
        iam = self._clients.iam()
        request = iam_admin_v1.QueryGrantableRolesRequest(
            full_resource_name=CRM_PREFIX + resource, page_size=1000
        )

        def collect(req: Any, **kwargs: Any) -> set[str]:
            return {role.name for role in iam.query_grantable_roles(req, **kwargs)}

        names: set[str] = self._call(resource, "queryGrantableRoles", collect, request)
        with self._lock:
            self._grantable[resource] = names
        return names

    def _missing_permissions(self, resource: str) -> list[str]:
        kind = resource.split("/")[0]
        wanted = [f"resourcemanager.{kind}.getIamPolicy", f"resourcemanager.{kind}.setIamPolicy"]
        client = self._clients.policies(resource)
        request = iam_policy_pb2.TestIamPermissionsRequest(resource=resource, permissions=wanted)
        answer = self._call(resource, "testIamPermissions", client.test_iam_permissions, request)
        return [p for p in wanted if p not in set(answer.permissions)]

    # -------------------------------------------------------------- mechanics

    def _call(self, subject: str, operation: str, method: Callable[..., Any], request: Any) -> Any:
        """One API call, retried with backoff while Google says "later"; a stale etag
        raises _Stale; anything else becomes a ProviderError naming the resource."""
        label = _label(subject)
        for attempt in range(1, self._attempts + 1):
            try:
                # The clients' own retry settings would sleep where tests cannot see it.
                return method(request, retry=None, timeout=self._timeout)
            except api.NotFound as exc:
                raise _NotFound(f"{label}: {operation}: {_message(exc)}") from None
            except api.Conflict as exc:
                if operation == "setIamPolicy":
                    raise _Stale() from None
                raise ProviderError(f"{label}: {operation}: {_message(exc)}") from None
            except _RETRYABLE as exc:
                error = ProviderError(
                    f"{label}: {operation} failed ({_status(exc)}): {_message(exc)}",
                    retryable=True,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                error = ProviderError(
                    f"{label}: {operation}: Google unreachable: {exc}", retryable=True
                )
            except (
                api.PermissionDenied,
                api.Forbidden,
                api.Unauthenticated,
                api.Unauthorized,
            ) as exc:
                raise ProviderError(
                    f"{label}: {operation} refused ({_status(exc)}): {_message(exc)}"
                    f"{_permission_hint(subject)}"
                ) from None
            except api.GoogleAPICallError as exc:
                raise ProviderError(
                    f"{label}: {operation} failed ({_status(exc)}): {_message(exc)}"
                ) from None
            except google.auth.exceptions.GoogleAuthError as exc:
                retryable = isinstance(exc, google.auth.exceptions.TransportError)
                error = ProviderError(
                    f"{label}: cannot get Google credentials: {exc}", retryable=retryable
                )
                if not retryable:
                    raise error from None
            if attempt == self._attempts:
                raise error
            log.info("%s; retrying", error)
            self._backoff(attempt)
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> None:
        ceiling = min(0.5 * 2 ** (attempt - 1), 16.0)
        self._sleep(random.uniform(ceiling / 2, ceiling))


# ---------------------------------------------------------------------- helpers


def _as_gcp(target: TargetSpec) -> GcpTarget:
    if not isinstance(target, GcpTarget):
        raise TypeError(f"the gcp provider cannot handle {target.provider} targets")
    return target


def _label(resource: str) -> str:
    """projects/acme-prod → "project acme-prod"; role names are left as they are."""
    kind, _, ident = resource.partition("/")
    if kind in _KINDS and "/" not in ident:
        return f"{_KINDS[kind][0]} {ident}"
    return resource


def _timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC, to the second (truncating moves expiry earlier, never later)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition_title(request_id: str) -> str:
    return f"{TITLE_PREFIX}{request_id}"[:100]


def _condition(member: str, role: str, context: GrantContext) -> expr_pb2.Expr:
    description = (
        f"jit-bot request {context.request_id}: {member.removeprefix('user:')} as "
        f"{context.role} in {context.environment} ({role})"
    )
    return expr_pb2.Expr(
        title=condition_title(context.request_id),
        description=description[:256],
        expression=f'request.time < timestamp("{_timestamp(context.expires_at)}")',
    )


def _ours(binding: policy_pb2.Binding) -> bool:
    return binding.HasField("condition") and binding.condition.title.startswith(TITLE_PREFIX)


def _has(binding: policy_pb2.Binding, member: str) -> bool:
    return member.lower() in (m.lower() for m in binding.members)


def expiry_of(binding: policy_pb2.Binding) -> datetime | None:
    """When a binding's ``request.time < timestamp(…)`` condition ends it, if it has one."""
    match = _EXPIRY.match(binding.condition.expression.strip())
    if not match:
        return None
    try:
        return datetime.fromisoformat(match.group(1))
    except ValueError:
        return None


def _expired(binding: policy_pb2.Binding, now: datetime) -> bool:
    expiry = expiry_of(binding)
    return expiry is not None and expiry <= now


def _holds(policy: policy_pb2.Policy, role: str, member: str, now: datetime) -> bool:
    """Unconditionally, or through a jit-bot binding that has not expired. Other
    conditions cannot be evaluated here and count as not holding."""
    return any(
        b.role == role
        and _has(b, member)
        and (not b.HasField("condition") or (_ours(b) and not _expired(b, now)))
        for b in policy.bindings
    )


def _status(exc: api.GoogleAPICallError) -> str:
    """ "403 PERMISSION_DENIED": the HTTP code and Google's canonical status name."""
    grpc_code = getattr(exc, "grpc_status_code", None)
    name = grpc_code.name if grpc_code is not None else ""
    if not name and exc.response is not None:
        try:  # REST answers carry the status name in their JSON error
            name = str(exc.response.json()["error"]["status"])
        except (ValueError, KeyError, TypeError, AttributeError):
            name = ""
    return f"{exc.code or ''} {name}".strip() or type(exc).__name__


def _message(exc: api.GoogleAPICallError) -> str:
    # REST errors start with "POST http://…?$alt=json: "; the URL says nothing new.
    return re.sub(r"^[A-Z]+ \S+: ", "", str(exc.message)).strip().rstrip(".")


def _permission_hint(subject: str) -> str:
    kind = subject.split("/")[0]
    if kind in _KINDS and subject.count("/") == 1:
        return (
            f"; the {_KINDS[kind][0]} may not exist, or the bot's service account needs "
            f"{_KINDS[kind][1]} on it"
        )
    return "; the bot's service account needs roles/iam.roleViewer to read roles"
