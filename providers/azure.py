"""The ``azure`` provider: an Azure role (built-in or custom) on subscriptions, resource
groups or single resources, for as long as a request lasts.

Two ways to grant, chosen per target with ``mode``:

- ``pim`` (the default): a Privileged Identity Management *role assignment schedule
  request* (``AdminAssign``, expiring ``AfterDuration`` = the time granted, justification
  naming the request). Azure ends the assignment by itself, so access ends on time even
  when jit-bot is down: the cloud is the second line of defence. Ending early (or at
  expiry, again) sends ``AdminRemove``. Needs Microsoft Entra ID P2 (or ID Governance)
  licences and a PIM role setting that allows active assignments of that length without
  MFA or approval for the bot's identity.
- ``rbac``: a plain role assignment named by a GUID derived from the request, scope and
  role, so a repeated grant is idempotent. Azure never ends it: the bot's revocation is the
  only line, as with AWS. For tenants without PIM licences.

Either way the requester's Slack email is resolved to a Microsoft Entra ID object id
through Microsoft Graph (``/users/{userPrincipalName}``, then a ``mail`` filter).
Credentials come from ``DefaultAzureCredential`` (workload identity, managed identity, or a
service principal in ``AZURE_*``): nothing runs inside the subscriptions.

Azure answers that mean "already done" are success: 409 ``RoleAssignmentExists`` on a
grant, 204/404 on a delete, ``RoleAssignmentDoesNotExist`` on ``AdminRemove``, and
``RoleAssignmentRequestExists`` on resending a PIM grant whose first answer was lost. 408,
429 and 500/502/503/504 (and no answer) are retried, honouring ``Retry-After``; every other
error fails with Azure's code and message, which the requester sees.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote, urlsplit

from azure.core import PipelineClient
from azure.core.credentials import AccessToken, AccessTokenInfo, TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
)
from azure.core.pipeline.policies import (
    BearerTokenCredentialPolicy,
    HeadersPolicy,
    HttpLoggingPolicy,
    UserAgentPolicy,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest, HttpResponse
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.v2020_10_01.models import (
    RoleAssignmentScheduleRequest,
    RoleAssignmentScheduleRequestPropertiesScheduleInfo,
    RoleAssignmentScheduleRequestPropertiesScheduleInfoExpiration,
    RoleAssignmentScheduleRequestPropertiesTicketInfo,
)
from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters
from azure.profiles import ProfileDefinition
from pydantic import AfterValidator, Field, model_validator

from providers import azure_rights
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

ARM_ENDPOINT = "https://management.azure.com"
GRAPH_ENDPOINT = "https://graph.microsoft.com"
# What every assignment description and PIM justification starts with: how the bot tells
# its own grants from standing access someone else set up.
MARKER = "jit-bot"
RETRY_AFTER_CAP_SECONDS = 120.0

# Names of role assignments and PIM requests are uuid5 in this namespace; changing it
# would make retried grants of requests in flight create second assignments.
_NAMESPACE = uuid.UUID("5b0e3c52-4a1f-4c55-9a57-6a1f0d7b0f3e")
# Pinned API versions: role assignments and definitions 2022-04-01, PIM 2020-10-01.
_PROFILE = ProfileDefinition(
    {
        "azure.mgmt.authorization.AuthorizationManagementClient": {
            None: "2022-04-01",
            "role_assignment_schedule_requests": "2020-10-01",
            "role_assignment_schedules": "2020-10-01",
        }
    },
    "jit-bot",
)
_RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# PIM's shortest assignment, and the soonest it lets one be removed.
_PIM_SHORTEST = timedelta(minutes=5)
_MAX_TEXT = 450  # PIM justifications and assignment descriptions are short fields

# PIM request statuses: effective, still moving, or waiting for a human.
_PIM_EFFECTIVE = frozenset({"Provisioned"})
_PIM_MOVING = frozenset(
    {
        "Accepted",
        "PendingEvaluation",
        "Granted",
        "PendingProvisioning",
        "ProvisioningStarted",
        "PendingScheduleCreation",
        "ScheduleCreated",
        "PendingExternalProvisioning",
        "AdminApproved",
    }
)
_PIM_WAITING = frozenset({"PendingApproval", "PendingApprovalProvisioning", "PendingAdminDecision"})

_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_SUBSCRIPTION = re.compile(rf"^/subscriptions/({_GUID})", re.IGNORECASE)
# A resource group name: up to 90 letters, digits, underscores, hyphens, periods and
# parentheses, not ending in a period.
_RESOURCE_GROUP = r"[-\w.()]{0,89}[-\w()]"
# /providers/<Namespace>/<type>/<name>[/<type>/<name>…]
_RESOURCE = r"/providers/[A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z0-9]+)+(?:/[A-Za-z][\w-]*/[^/\s?#`]+)+"
_SCOPE = re.compile(
    rf"^/subscriptions/({_GUID})(?:/resourceGroups/({_RESOURCE_GROUP})({_RESOURCE})?)?$",
    re.IGNORECASE,
)
_ROLE_ID = re.compile(
    rf"^(?:(?:/subscriptions/{_GUID})?/providers/Microsoft\.Authorization/roleDefinitions/)?"
    rf"({_GUID})$",
    re.IGNORECASE,
)

T = TypeVar("T")


def _scope(value: str) -> str:
    match = _SCOPE.match(value)
    if not match:
        raise ValueError(
            f"'{value}' is not an Azure scope; expected /subscriptions/<subscription id>, "
            "/subscriptions/<id>/resourceGroups/<name> or a resource id "
            "/subscriptions/<id>/resourceGroups/<name>/providers/<Namespace>/<type>/<name>"
        )
    subscription, group, resource = match.groups()
    # The fixed words are written as Azure writes them, so one scope has one spelling.
    canonical = f"/subscriptions/{subscription.lower()}"
    if group:
        canonical += f"/resourceGroups/{group}"
    if resource:
        canonical += "/providers/" + resource[len("/providers/") :]
    return canonical


def _role(value: str) -> str:
    if value != value.strip() or not value or not value.isprintable() or "`" in value:
        raise ValueError(
            "expected a role name such as Reader or a role definition id, on one line "
            "without backticks"
        )
    return value


Scope = Annotated[str, AfterValidator(_scope)]


class AzureTarget(TargetSpec):
    """One azure entry of a role's environment in roles.yaml.

    ``role`` is a built-in or custom role name (``Reader``) or a role definition id (the
    GUID, or ``/providers/Microsoft.Authorization/roleDefinitions/<GUID>``); names are
    resolved at each scope. ``mode`` chooses PIM schedules (Azure ends them itself) or
    plain RBAC assignments (only the bot ends them).
    """

    provider: Literal["azure"] = "azure"
    role: Annotated[str, Field(max_length=512), AfterValidator(_role)]
    scopes: Annotated[list[Scope], Field(min_length=1)]
    mode: Literal["pim", "rbac"] = "pim"

    def shortest_grant(self) -> tuple[timedelta, str] | None:
        if self.mode != "pim":
            return None
        # PIM refuses to end an assignment sooner (ActiveDurationTooShort): the bot's
        # revocation would fail and the access would last until PIM's own end.
        return _PIM_SHORTEST, "Azure PIM cannot end access sooner than 5m"

    @model_validator(mode="after")
    def _distinct(self) -> AzureTarget:
        seen = [s.lower() for s in self.scopes]
        if len(set(seen)) != len(seen):
            raise ValueError("a scope is listed twice")
        return self


class AzureClients:
    """Builds the Azure clients: one ``AuthorizationManagementClient`` per subscription
    and a small Microsoft Graph client, sharing one credential. The SDK's own retries are
    off; the provider retries, so that waiting can be observed and bounded."""

    def __init__(
        self,
        credential: TokenCredential,
        *,
        arm_endpoint: str = ARM_ENDPOINT,
        graph_endpoint: str = GRAPH_ENDPOINT,
        connection_verify: bool | str = True,
        timeout: float = 30.0,
    ) -> None:
        self.credential = credential
        self.arm_endpoint = arm_endpoint.rstrip("/")
        self.graph_endpoint = graph_endpoint.rstrip("/")
        self._transport: dict[str, Any] = {
            "connection_verify": connection_verify,
            "connection_timeout": 10,
            "read_timeout": timeout,
        }
        self._lock = threading.Lock()
        self._authorization: dict[str, AuthorizationManagementClient] = {}
        self._graph: PipelineClient[HttpRequest, HttpResponse] | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> AzureClients:
        """``DefaultAzureCredential`` reads its own ``AZURE_*`` variables (tenant, client
        id, secret or federated token file, ``AZURE_AUTHORITY_HOST``). The endpoints can be
        moved for sovereign clouds: ``JIT_AZURE_ARM_ENDPOINT``, ``JIT_AZURE_GRAPH_ENDPOINT``.
        ``JIT_AZURE_DISABLE_INSTANCE_DISCOVERY=true`` is for an authority Microsoft does not
        know (Azure Stack Hub, ADFS, a local test authority)."""
        options: dict[str, Any] = {}
        if environ.get("JIT_AZURE_DISABLE_INSTANCE_DISCOVERY", "").lower() in ("1", "true"):
            options["disable_instance_discovery"] = True
        return cls(
            _OnFirstUse(options),
            arm_endpoint=environ.get("JIT_AZURE_ARM_ENDPOINT") or ARM_ENDPOINT,
            graph_endpoint=environ.get("JIT_AZURE_GRAPH_ENDPOINT") or GRAPH_ENDPOINT,
        )

    def authorization(self, subscription_id: str) -> AuthorizationManagementClient:
        with self._lock:
            client = self._authorization.get(subscription_id)
            if client is None:
                client = AuthorizationManagementClient(
                    self.credential,
                    subscription_id,
                    base_url=self.arm_endpoint,
                    profile=_PROFILE,
                    credential_scopes=[f"{_origin(self.arm_endpoint)}/.default"],
                    retry_total=0,
                    user_agent="jit-bot",
                    # One INFO line per header of every call otherwise; the provider logs
                    # what matters itself.
                    http_logging_level=logging.DEBUG,
                    **self._transport,
                )
                self._authorization[subscription_id] = client
            return client

    def graph(self) -> PipelineClient[HttpRequest, HttpResponse]:
        with self._lock:
            if self._graph is None:
                self._graph = PipelineClient(
                    base_url=self.graph_endpoint,
                    policies=[
                        HeadersPolicy({"Accept": "application/json"}),
                        UserAgentPolicy("jit-bot"),
                        BearerTokenCredentialPolicy(
                            self.credential, f"{_origin(self.graph_endpoint)}/.default"
                        ),
                        HttpLoggingPolicy(http_logging_level=logging.DEBUG),
                    ],
                    transport=RequestsTransport(**self._transport),
                )
            return self._graph


class _OnFirstUse:
    """``DefaultAzureCredential``, built when a token is first needed. Building it logs
    which sources it found; ``jit-bot check`` without ``--live``, and bots without azure
    targets, should neither hear that nor pay for it."""

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        self._lock = threading.Lock()
        self._credential: Any = None

    def _built(self) -> Any:
        with self._lock:
            if self._credential is None:
                from azure.identity import DefaultAzureCredential

                try:
                    self._credential = DefaultAzureCredential(
                        **self._options, http_logging_level=logging.DEBUG
                    )
                except ValueError as exc:  # e.g. AZURE_CLIENT_SECRET set but empty
                    raise ProviderError(f"Azure credentials are misconfigured: {exc}") from None
            return self._credential

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        token: AccessToken = self._built().get_token(*scopes, **kwargs)
        return token

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        token: AccessTokenInfo = self._built().get_token_info(*scopes, options=options)
        return token


@dataclass(frozen=True)
class _RoleDefinition:
    id: str  # as ARM writes it at the scope, for request bodies
    guid: str  # lower case, for comparing
    name: str


@dataclass(frozen=True)
class _Assigned:
    name: str
    scope: str
    role_guid: str
    principal_id: str
    principal_type: str
    description: str


class AzureFailure(ProviderError):
    """An error answer from Azure: its HTTP status, Azure's error code and message."""

    def __init__(
        self,
        what: str,
        status: int | None,
        code: str,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        text = f"Azure {what}: {code}: {message}" if message else f"Azure {what}: {code}"
        super().__init__(text, retryable=retryable)
        self.status = status
        self.code = code
        self.azure_message = message
        self.retry_after = retry_after


class UnknownUser(ProviderError):
    """No Microsoft Entra ID user has the requester's email."""


# What to give the bot's identity when the live check finds it may not write (README, Azure).
_RIGHTS_ADVICE: dict[str, str] = {
    # Role Based Access Control Administrator lacks roleAssignmentScheduleRequests/write.
    "pim": "give its identity User Access Administrator, or the custom role in the README, "
    "at this scope",
    "rbac": "give its identity Role Based Access Control Administrator (or User Access "
    "Administrator) at this scope",
}


class AzureProvider(Provider):
    name = "azure"
    target_model = AzureTarget

    def __init__(
        self,
        clients: AzureClients,
        *,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        attempts: int = 6,
        deadline: float = 120.0,
        cache_ttl: float = 900.0,
    ) -> None:
        self._clients = clients
        self._sleep = sleep
        self._now = now or (lambda: datetime.now(UTC))
        self._monotonic = monotonic
        self._attempts = attempts
        self._deadline = deadline
        self._cache_ttl = cache_ttl
        self._cache: dict[tuple[str, ...], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    # -------------------------------------------------------------- interface

    def validate(self, target: TargetSpec, *, live: bool = False) -> list[str]:
        """With ``live``: every scope exists, the role resolves at each of them, and the
        bot may write there what granting and revoking write (where Azure can say)."""
        azure = _as_azure(target)
        if live:
            for scope in azure.scopes:
                try:
                    self._role(azure.role, scope)
                    self._check_rights(scope, azure.mode)
                except ProviderError as exc:
                    raise ProviderError(f"{scope}: {exc}", retryable=exc.retryable) from None
        return []

    def _check_rights(self, scope: str, mode: Literal["pim", "rbac"]) -> None:
        client = self._client(scope)
        held = self._arm(
            f"reading the bot's permissions at {scope}",
            lambda: azure_rights.permissions_at(client, scope),
        )
        if held is None:
            return  # a subscription: Azure's permissions API does not answer there
        lacking = azure_rights.missing(held, azure_rights.NEEDED[mode])
        if lacking:
            raise ProviderError(
                f"the bot may not {', '.join(lacking)} here; {_RIGHTS_ADVICE[mode]}"
            )

    def expand(self, target: TargetSpec) -> list[TargetSpec]:
        azure = _as_azure(target)
        return [azure.model_copy(update={"scopes": [scope]}) for scope in azure.scopes]

    def describe(self, target: TargetSpec) -> str:
        azure = _as_azure(target)
        name = azure.role
        if _ROLE_ID.match(azure.role):
            try:
                name = self._role(azure.role, azure.scopes[0]).name
            except ProviderError as exc:
                # Only the display suffers; granting resolves the role again and fails loudly.
                log.warning("cannot name Azure role %s: %s", azure.role, exc)
        how = "PIM, ends by itself" if azure.mode == "pim" else "RBAC, removed by jit-bot"
        return f"Azure {', '.join(azure.scopes)}: role `{name}` ({how})"

    def grant(
        self, principal: Principal, target: TargetSpec, context: GrantContext
    ) -> GrantOutcome:
        azure = _as_azure(target)
        object_id = self._object_id(principal.email)
        outcomes = []
        for scope in azure.scopes:
            role = self._role(azure.role, scope)
            if azure.mode == "pim":
                outcomes.append(self._grant_pim(scope, role, object_id, context))
            else:
                outcomes.append(self._grant_rbac(scope, role, object_id, context))
        who = f"Entra ID object {object_id}"
        if all(o.preexisting for o in outcomes):
            return GrantOutcome(
                preexisting=True, detail="; ".join(o.detail for o in outcomes), principal=who
            )
        return GrantOutcome(detail="; ".join(o.detail for o in outcomes if o.detail), principal=who)

    def revoke(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        azure = _as_azure(target)
        object_id: str | None
        try:
            object_id = self._object_id(principal.email)
        except UnknownUser:
            if azure.mode == "pim":  # AdminRemove must name the principal
                raise
            # Their mail may have changed since the grant: our assignment's name does not.
            object_id = None
        for scope in azure.scopes:
            role = self._role(azure.role, scope)
            if object_id is None:
                self._revoke_rbac(scope, role, None, context)
            elif azure.mode == "pim":
                self._revoke_pim(scope, role, object_id, context)
            else:
                self._revoke_rbac(scope, role, object_id, context)

    def is_granted(self, principal: Principal, target: TargetSpec) -> bool | None:
        azure = _as_azure(target)
        object_id = self._object_id(principal.email)
        return all(
            self._held(scope, self._role(azure.role, scope), object_id) for scope in azure.scopes
        )

    def inventory(self, target: TargetSpec) -> list[Holding] | None:
        """Every user holding the target's role at exactly each of its scopes."""
        found = []
        for unit in self.expand(target):
            azure = _as_azure(unit)
            scope = azure.scopes[0]
            role = self._role(azure.role, scope)
            for item in self._at_scope(scope):
                if (
                    _same_scope(item.scope, scope)
                    and item.role_guid == role.guid
                    and item.principal_type == "User"
                ):
                    found.append(Holding(email=self._email_of(item.principal_id), unit=unit))
        return found

    def refresh(self) -> None:
        with self._lock:
            self._cache.clear()

    # -------------------------------------------------------------- names

    @staticmethod
    def assignment_name(request_id: str, scope: str, role_guid: str) -> str:
        """The rbac role assignment's name: the same for every attempt of one request."""
        return str(uuid.uuid5(_NAMESPACE, f"rbac|{request_id}|{scope.lower()}|{role_guid}"))

    @staticmethod
    def schedule_request_name(
        request_id: str, scope: str, role_guid: str, principal_id: str
    ) -> str:
        """The PIM AdminAssign request's name: the same for every attempt of one request."""
        return str(
            uuid.uuid5(
                _NAMESPACE, f"pim|{request_id}|{scope.lower()}|{role_guid}|{principal_id.lower()}"
            )
        )

    # -------------------------------------------------------------- rbac

    def _grant_rbac(
        self, scope: str, role: _RoleDefinition, object_id: str, context: GrantContext
    ) -> GrantOutcome:
        name = self.assignment_name(context.request_id, scope, role.guid)
        client = self._client(scope)
        parameters = RoleAssignmentCreateParameters(
            role_definition_id=role.id,
            principal_id=object_id,
            principal_type="User",
            description=_note(context),
        )
        try:
            self._arm(
                f"assigning `{role.name}` at {scope}",
                lambda: client.role_assignments.create(_path(scope), name, parameters),
            )
        except AzureFailure as failure:
            if failure.code != "RoleAssignmentExists":
                raise
            # The principal has the role here already: our earlier attempt, another
            # jit-bot grant, or standing access. Only the last is left alone at the end.
            return self._existing(scope, role, object_id, ours={name})
        return GrantOutcome()

    def _revoke_rbac(
        self, scope: str, role: _RoleDefinition, object_id: str | None, context: GrantContext
    ) -> None:
        client = self._client(scope)
        # By name first: a fresh assignment may not be listed yet. Then whatever else gives
        # this principal this role here (another request's assignment that this grant
        # relied on; the domain only revokes when no other active grant needs it).
        names = [self.assignment_name(context.request_id, scope, role.guid)]
        if object_id is not None:
            names += [a.name for a in self._held(scope, role, object_id)]
        for name in dict.fromkeys(names):
            try:
                self._arm(
                    f"removing the assignment of `{role.name}` at {scope}",
                    partial(client.role_assignments.delete, _path(scope), name),
                )
            except AzureFailure as failure:
                if failure.status != 404:
                    raise

    # -------------------------------------------------------------- pim

    def _grant_pim(
        self, scope: str, role: _RoleDefinition, object_id: str, context: GrantContext
    ) -> GrantOutcome:
        client = self._client(scope)
        name = self.schedule_request_name(context.request_id, scope, role.guid, object_id)
        what = f"PIM assignment of `{role.name}` at {scope}"
        read = partial(client.role_assignment_schedule_requests.get, _path(scope), name)
        # A retried grant finds its own request (request names cannot be reused).
        try:
            earlier = self._arm(f"reading the {what}", read)
        except AzureFailure as failure:
            if failure.status != 404:
                raise
        else:
            self._settle(client, scope, name, str(earlier.status), what)
            return GrantOutcome()
        start = self._now()
        remaining = _whole_minutes(context.expires_at - start)
        request = RoleAssignmentScheduleRequest(
            principal_id=object_id,
            role_definition_id=role.id,
            request_type="AdminAssign",
            justification=_note(context),
            ticket_info=RoleAssignmentScheduleRequestPropertiesTicketInfo(
                ticket_number=context.request_id, ticket_system=MARKER
            ),
            schedule_info=RoleAssignmentScheduleRequestPropertiesScheduleInfo(
                start_date_time=start,
                expiration=RoleAssignmentScheduleRequestPropertiesScheduleInfoExpiration(
                    type="AfterDuration", duration=_iso_duration(remaining)
                ),
            ),
        )
        try:
            created = self._arm(
                f"creating the {what}",
                lambda: client.role_assignment_schedule_requests.create(
                    _path(scope), name, request
                ),
            )
        except AzureFailure as failure:
            if failure.code == "RoleAssignmentRequestExists":
                # A resent PUT whose first answer was lost (a timeout, a 5xx after PIM took
                # it): the request of this name is ours.
                created = self._arm(f"reading the {what}", read)
            elif failure.code == "RoleAssignmentExists":
                return self._existing(scope, role, object_id, ours=set(), until=context.expires_at)
            else:
                raise
        self._settle(client, scope, name, str(created.status), what)
        return GrantOutcome(detail=f"PIM ends it after {_iso_duration(remaining)}")

    def _settle(
        self, client: AuthorizationManagementClient, scope: str, name: str, status: str, what: str
    ) -> None:
        """Wait until PIM reports the request provisioned; fail on any other end."""
        started = self._monotonic()
        delay = 1.0
        while status in _PIM_MOVING:
            if self._monotonic() - started > self._deadline:
                raise ProviderError(
                    f"Azure {what}: still {status} after {self._deadline:.0f}s", retryable=True
                )
            self._sleep(delay)
            delay = min(delay * 2, 10.0)
            status = str(
                self._arm(
                    f"reading the {what}",
                    lambda: client.role_assignment_schedule_requests.get(_path(scope), name),
                ).status
            )
        if status in _PIM_EFFECTIVE:
            return
        if status in _PIM_WAITING:
            # jit-bot's approvers have decided; a second approval in PIM would leave the
            # request hanging. Withdraw it and say what to change.
            self._arm(
                f"cancelling the {what}",
                lambda: client.role_assignment_schedule_requests.cancel(_path(scope), name),
            )
            raise ProviderError(
                f"Azure {what}: PIM asks for approval ({status}); turn off approval on active "
                "assignment in this role's PIM settings, or use mode: rbac"
            )
        raise ProviderError(f"Azure {what}: PIM answered {status}")

    def _revoke_pim(
        self, scope: str, role: _RoleDefinition, object_id: str, context: GrantContext
    ) -> None:
        client = self._client(scope)
        request = RoleAssignmentScheduleRequest(
            principal_id=object_id,
            role_definition_id=role.id,
            request_type="AdminRemove",
            justification=_note(context, ending=True),
            ticket_info=RoleAssignmentScheduleRequestPropertiesTicketInfo(
                ticket_number=context.request_id, ticket_system=MARKER
            ),
        )
        # A fresh name for every attempt: a removal is idempotent by its answer, not by its
        # name (a resend whose first answer was lost is told RoleAssignmentDoesNotExist).
        try:
            self._arm(
                f"removing the PIM assignment of `{role.name}` at {scope}",
                lambda: client.role_assignment_schedule_requests.create(
                    _path(scope), str(uuid.uuid4()), request
                ),
            )
        except AzureFailure as failure:
            if failure.status == 404 or failure.code == "RoleAssignmentDoesNotExist":
                return  # ended already: by Azure at its expiry, or never granted
            if failure.code == "ActiveDurationTooShort":
                # PIM refuses removals within minutes of the assignment; the sweeper retries.
                raise ProviderError(str(failure), retryable=True) from None
            raise

    def _extend(
        self,
        scope: str,
        role: _RoleDefinition,
        object_id: str,
        until: datetime,
    ) -> None:
        """Make a jit-bot PIM assignment last until ``until``: another request of the same
        person relies on it for longer than the request that created it."""
        client = self._client(scope)
        start = self._now()
        request = RoleAssignmentScheduleRequest(
            principal_id=object_id,
            role_definition_id=role.id,
            request_type="AdminUpdate",
            justification=f"{MARKER}: extended for a later request until {until:%Y-%m-%d %H:%M}Z",
            schedule_info=RoleAssignmentScheduleRequestPropertiesScheduleInfo(
                start_date_time=start,
                expiration=RoleAssignmentScheduleRequestPropertiesScheduleInfoExpiration(
                    type="AfterDuration", duration=_iso_duration(_whole_minutes(until - start))
                ),
            ),
        )
        self._arm(
            f"extending the PIM assignment of `{role.name}` at {scope}",
            lambda: client.role_assignment_schedule_requests.create(
                _path(scope), str(uuid.uuid4()), request
            ),
        )

    # -------------------------------------------------------------- standing access

    def _existing(
        self,
        scope: str,
        role: _RoleDefinition,
        object_id: str,
        *,
        ours: set[str],
        until: datetime | None = None,
    ) -> GrantOutcome:
        """Azure says the principal holds the role here already: find out whether jit-bot
        made that assignment (then it is ours to end) or not (standing access)."""
        held = self._held(scope, role, object_id)
        if not held:
            # Azure's lists lag its writes by seconds: the assignment is too new to be
            # standing access, so it is the one an earlier attempt of ours made.
            return GrantOutcome(detail="Azure reports the assignment exists (not listed yet)")
        for assignment in held:
            if assignment.name in ours or assignment.description.startswith(MARKER):
                return GrantOutcome(detail="jit-bot's assignment was already in place")
        if until is not None:  # PIM: was it jit-bot's schedule request that made it?
            schedule = self._schedule(scope, role, object_id)
            if schedule is not None and schedule["end"] is not None and schedule["jit"]:
                if schedule["end"] < until:
                    self._extend(scope, role, object_id, until)
                    return GrantOutcome(detail="extended jit-bot's PIM assignment")
                return GrantOutcome(detail="jit-bot's PIM assignment was already in place")
        return GrantOutcome(
            preexisting=True,
            detail=f"the user already held `{role.name}` at {scope} outside jit-bot",
        )

    def _schedule(self, scope: str, role: _RoleDefinition, object_id: str) -> dict[str, Any] | None:
        client = self._client(scope)
        schedules = self._arm(
            f"listing PIM schedules at {scope}",
            lambda: list(
                client.role_assignment_schedules.list_for_scope(
                    _path(scope), filter=f"principalId eq '{object_id}'"
                )
            ),
        )
        for schedule in schedules:
            if not _same_scope(str(schedule.scope), scope):
                continue
            if _guid_of(str(schedule.role_definition_id)) != role.guid:
                continue
            jit = False
            request_id = schedule.role_assignment_schedule_request_id
            if request_id:
                request_name = str(request_id).rstrip("/").rsplit("/", 1)[-1]
                try:
                    request = self._arm(
                        f"reading PIM request {request_name}",
                        partial(
                            client.role_assignment_schedule_requests.get,
                            _path(scope),
                            request_name,
                        ),
                    )
                except AzureFailure as failure:
                    if failure.status != 404:
                        raise
                else:
                    jit = str(request.justification or "").startswith(MARKER)
            return {"end": schedule.end_date_time, "jit": jit}
        return None

    def _at_scope(self, scope: str) -> list[_Assigned]:
        """Every role assignment at this scope or above it."""
        client = self._client(scope)
        listed = self._arm(
            f"listing role assignments at {scope}",
            lambda: list(client.role_assignments.list_for_scope(_path(scope), filter="atScope()")),
        )
        return [_assigned(item) for item in listed]

    def _held(self, scope: str, role: _RoleDefinition, object_id: str) -> list[_Assigned]:
        """The principal's assignments of this role at exactly this scope."""
        client = self._client(scope)
        listed = self._arm(
            f"listing role assignments at {scope}",
            lambda: list(
                client.role_assignments.list_for_scope(
                    _path(scope), filter=f"principalId eq '{object_id}'"
                )
            ),
        )
        return [
            a
            for a in map(_assigned, listed)
            if _same_scope(a.scope, scope)
            and a.role_guid == role.guid
            and a.principal_id.lower() == object_id.lower()
        ]

    # -------------------------------------------------------------- lookups

    def _client(self, scope: str) -> AuthorizationManagementClient:
        return self._clients.authorization(_subscription_of(scope))

    def _role(self, role: str, scope: str) -> _RoleDefinition:
        """A role name or id resolved at a scope (custom roles exist only where they are
        assignable; ids are written relative to the scope's subscription)."""

        def load() -> _RoleDefinition:
            client = self._client(scope)
            by_id = _ROLE_ID.match(role)
            if by_id:
                guid = by_id.group(1).lower()
                try:
                    found = self._arm(
                        f"reading role definition {guid} at {scope}",
                        lambda: client.role_definitions.get(_path(scope), guid),
                    )
                except AzureFailure as failure:
                    if failure.status != 404:
                        raise
                    raise ProviderError(
                        f"no Azure role definition {guid} is assignable at {scope}"
                    ) from None
                return _RoleDefinition(str(found.id), guid, str(found.role_name))
            escaped = role.replace("'", "''")
            listed = self._arm(
                f"looking up role `{role}` at {scope}",
                lambda: list(
                    client.role_definitions.list(_path(scope), filter=f"roleName eq '{escaped}'")
                ),
            )
            matches = [d for d in listed if str(d.role_name).lower() == role.lower()]
            if not matches:
                raise ProviderError(
                    f"no Azure role named `{role}` is assignable at {scope}; check the name "
                    "(Access control (IAM) → Roles) or that the custom role's assignable "
                    "scopes include this scope"
                )
            if len(matches) > 1:
                raise ProviderError(
                    f"{len(matches)} Azure roles are named `{role}` at {scope}; use the role "
                    "definition id instead"
                )
            found = matches[0]
            return _RoleDefinition(str(found.id), _guid_of(str(found.id)), str(found.role_name))

        result: _RoleDefinition = self._cached(("role", scope.lower(), role.lower()), load)
        return result

    def _object_id(self, email: str) -> str:
        """The Microsoft Entra ID user with this user principal name, else this mail."""

        def load() -> str:
            answer = self._graph(
                f"looking up {email}",
                "GET",
                f"/v1.0/users/{quote(email, safe='@')}",
                {"$select": "id,userPrincipalName,mail"},
                missing_ok=True,
            )
            if answer is not None:
                return str(answer["id"])
            escaped = email.replace("'", "''")
            found = self._graph(
                f"looking up {email}",
                "GET",
                "/v1.0/users",
                {"$filter": f"mail eq '{escaped}'", "$select": "id,userPrincipalName,mail"},
            )
            users = (found or {}).get("value") or []
            if not users:
                raise UnknownUser(
                    f"no Microsoft Entra ID user has the user principal name or mail {email}; "
                    "the Slack email must match one of them. Nothing was granted."
                )
            if len(users) > 1:
                raise ProviderError(
                    f"{len(users)} Microsoft Entra ID users have the mail {email}; fix the "
                    "directory so it names one person. Nothing was granted."
                )
            return str(users[0]["id"])

        result: str = self._cached(("user", email.lower()), load)
        return result

    def _email_of(self, object_id: str) -> str:
        def load() -> str:
            user = self._graph(
                f"looking up user {object_id}",
                "GET",
                f"/v1.0/users/{object_id}",
                {"$select": "id,userPrincipalName,mail"},
                missing_ok=True,
            )
            if user is None:
                return f"unknown-user:{object_id}"
            return str(user.get("mail") or user.get("userPrincipalName") or object_id).lower()

        result: str = self._cached(("email", object_id.lower()), load)
        return result

    # -------------------------------------------------------------- mechanics

    def _arm(self, what: str, operation: Callable[[], T]) -> T:
        """One ARM operation (a listing is read whole), retried while Azure says "later"."""
        for attempt in range(1, self._attempts + 1):
            try:
                return operation()
            except ClientAuthenticationError as exc:
                if exc.response is None:  # the credential found no token, nothing was sent
                    # azure-identity has retried its own calls; what is left is set-up.
                    raise ProviderError(f"Azure sign-in for {what} failed: {exc.message}") from None
                failure = _failure(what, exc)
            except HttpResponseError as exc:
                failure = _failure(what, exc)
            except AzureError as exc:  # no answer: connection refused, reset, timed out
                failure = AzureFailure(what, None, type(exc).__name__, str(exc), retryable=True)
            self._wait_or_raise(failure, attempt)
        raise AssertionError("unreachable")

    def _graph(
        self,
        what: str,
        method: str,
        path: str,
        params: dict[str, str],
        *,
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        """One Microsoft Graph call; None for a 404 when ``missing_ok``."""
        client = self._clients.graph()
        for attempt in range(1, self._attempts + 1):
            request = HttpRequest(method, f"{self._clients.graph_endpoint}{path}", params=params)
            try:
                response = client.send_request(request)
            except ClientAuthenticationError as exc:
                raise ProviderError(
                    f"Microsoft Graph sign-in for {what} failed: {exc.message}"
                ) from None
            except AzureError as exc:
                failure = AzureFailure(
                    f"Graph {what}", None, type(exc).__name__, str(exc), retryable=True
                )
            else:
                if 200 <= response.status_code < 300:
                    body: dict[str, Any] = response.json()
                    return body
                if response.status_code == 404 and missing_ok:
                    return None
                code, message = _error_of(response)
                failure = AzureFailure(
                    f"Graph {what}",
                    response.status_code,
                    code,
                    message,
                    retryable=response.status_code in _RETRYABLE_STATUSES,
                    retry_after=_retry_after(response.headers.get("Retry-After")),
                )
            self._wait_or_raise(failure, attempt)
        raise AssertionError("unreachable")

    def _wait_or_raise(self, failure: AzureFailure, attempt: int) -> None:
        if not failure.retryable or attempt == self._attempts:
            raise failure
        delay = failure.retry_after
        if delay is None:
            ceiling = min(0.5 * 2**attempt, 30.0)
            delay = random.uniform(ceiling / 2, ceiling)
        log.info("%s; retrying in %.1fs (attempt %d/%d)", failure, delay, attempt, self._attempts)
        self._sleep(delay)

    def _cached(self, key: tuple[str, ...], load: Callable[[], Any]) -> Any:
        now = self._monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit and now - hit[0] < self._cache_ttl:
                return hit[1]
        value = load()
        with self._lock:
            self._cache[key] = (now, value)
        return value


def _failure(what: str, exc: HttpResponseError) -> AzureFailure:
    status = exc.status_code
    code, message = "", ""
    if exc.error is not None:
        code, message = str(exc.error.code or ""), str(exc.error.message or "")
    elif exc.response is not None:
        code, message = _error_of(exc.response)
    response: Any = exc.response
    headers = response.headers if response is not None else {}
    return AzureFailure(
        what,
        status,
        code or f"HTTP {status}",
        message or str(exc.reason or ""),
        retryable=status in _RETRYABLE_STATUSES,
        retry_after=_retry_after(headers.get("Retry-After")),
    )


def _error_of(response: Any) -> tuple[str, str]:
    """Azure's error body: ``{"error": {"code": …, "message": …}}``."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return f"HTTP {response.status_code}", ""
    return str(error.get("code") or f"HTTP {response.status_code}"), str(error.get("message", ""))


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), capped."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_SECONDS)


def _assigned(item: Any) -> _Assigned:
    return _Assigned(
        name=str(item.name),
        scope=str(item.scope or ""),
        role_guid=_guid_of(str(item.role_definition_id or "")),
        principal_id=str(item.principal_id or ""),
        principal_type=str(item.principal_type or ""),
        description=str(item.description or ""),
    )


def _note(context: GrantContext, *, ending: bool = False) -> str:
    """The PIM justification / assignment description: names the request, so Azure's own
    audit shows why access exists."""
    verb = "ends" if ending else "grants"
    text = (
        f"{MARKER} {context.request_id} {verb} {context.role} in {context.environment} "
        f"until {context.expires_at.astimezone(UTC):%Y-%m-%d %H:%M}Z: {context.reason}"
    )
    return " ".join(text.split())[:_MAX_TEXT]


def _whole_minutes(value: timedelta) -> timedelta:
    """Rounded up to the minute, at least five (PIM's shortest assignment): the bot itself
    revokes on the second, Azure's own end is the backstop."""
    minutes = max(_PIM_SHORTEST // timedelta(minutes=1), -(-int(value.total_seconds()) // 60))
    return timedelta(minutes=minutes)


def _iso_duration(value: timedelta) -> str:
    """ISO-8601 duration, e.g. PT2H, PT1H30M, P1DT4H."""
    days, rest = divmod(int(value.total_seconds()), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    date = f"{days}D" if days else ""
    time_ = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    if not date and not time_:
        return "PT0S"
    return f"P{date}" + (f"T{time_}" if time_ else "")


def _guid_of(role_definition_id: str) -> str:
    return role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower()


def _same_scope(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def _subscription_of(scope: str) -> str:
    match = _SUBSCRIPTION.match(scope)
    if not match:
        raise ProviderError(f"'{scope}' is not under a subscription")
    return match.group(1).lower()


def _path(scope: str) -> str:
    """The SDK puts scopes into "/{scope}/providers/…" itself."""
    return scope.lstrip("/")


def _origin(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


def _as_azure(target: TargetSpec) -> AzureTarget:
    if not isinstance(target, AzureTarget):
        raise TypeError(f"the azure provider cannot handle {target.provider} targets")
    return target
