"""Azure for tests: one real HTTPS server on 127.0.0.1 that answers as Azure Resource
Manager (the Microsoft.Authorization endpoints jit-bot uses), Microsoft Graph (users) and
the Microsoft Entra ID token endpoints do, so the official ``AuthorizationManagementClient``
and azure-identity's credentials can be pointed at it unchanged.

Why HTTPS: azure-core's bearer-token policy refuses to send a token over plain http, and
that check is worth keeping. The server's certificate is issued at start-up by a throw-away
certificate authority; clients trust it through ``ca_bundle`` (``connection_verify`` in
process, ``REQUESTS_CA_BUNDLE`` for a child process).

Three origins, one server: ARM is ``https://127.0.0.1:<port>``, Graph is
``https://localhost:<port>`` and the authority is ``https://127.0.0.1:<port>/<tenant>``.
Tokens are issued per scope and each API accepts only tokens for its own audience, so a
provider asking for the wrong scope fails as it would against Azure.

Tokens are issued the ways ``DefaultAzureCredential`` asks for them (``environ(identity)``
sets each up): a service principal's client secret, a workload identity's federated token
(a client assertion read from ``AZURE_FEDERATED_TOKEN_FILE``), and managed identities
through the App Service endpoint (``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER``, as App
Service, Functions and Container Apps set them) and the instance metadata service (IMDS,
moved here with ``AZURE_POD_IDENTITY_AUTHORITY_HOST``). Every token issued is in
``token_requests``; every call records the bearer token it carried.

What the fake enforces, following the published REST contracts:
- role assignments: PUT 201, or 409 ``RoleAssignmentExists`` when the principal already has
  the role at that exact scope (under any assignment name, as ARM does); GET 200/404;
  DELETE 200 with the deleted assignment, or 204 when there was none; list with
  ``atScope()`` / ``principalId eq '…'`` filters;
- role definitions: list with ``roleName eq '…'`` (built-in roles everywhere, custom roles
  within their assignable scopes), GET by id, 404 ``RoleDefinitionDoesNotExist``;
- PIM: ``roleAssignmentScheduleRequests`` PUT with AdminAssign / AdminUpdate / AdminExtend /
  AdminRemove (400 ``RoleAssignmentExists`` / ``RoleAssignmentDoesNotExist``), GET, cancel,
  and ``roleAssignmentSchedules`` listing; an active PIM assignment is also a role
  assignment. AdminUpdate replaces the assignment with a new one; AdminExtend keeps the
  same assignment (its name and id) and moves its schedule's end;
- scopes that do not exist answer 404 ``SubscriptionNotFound`` / ``ResourceGroupNotFound``
  / ``ResourceNotFound``; unknown principals 400 ``PrincipalNotFound``;
- Graph ``/v1.0/users/{id|userPrincipalName}`` (404 ``Request_ResourceNotFound``) and
  ``/v1.0/users?$filter=mail eq '…'``;
- ``permissions`` (the caller's effective actions at a resource group or resource);
- the caller's rights: it may write and delete role assignments and PIM schedule requests
  only at or below the scopes it was given (``grant_rights``; ``reset`` gives it the
  subscription ``SUBSCRIPTION``, as a User Access Administrator there), elsewhere 403
  ``AuthorizationFailed`` in ARM's words;
- PIM's expiration rule for active assignments an administrator makes (the role
  management policy's ``Expiration_Admin_Assignment``; activations, the other rule, are
  not faked): a schedule request needs an expiration, lasting at least 5 minutes and at
  most the policy's maximum, by Azure's default 6 months (``set_maximum_duration``
  changes it per scope and role); otherwise 400
  ``RoleAssignmentRequestPolicyValidationFailed`` naming ``ExpirationRule``. A start more
  than ``START_SKEW`` in the past is refused (400 ``InvalidScheduleInfo``).

Exceptions in the fake's own handlers are answered 500 and kept in ``internal_errors``;
the fixtures that start the fake assert it is empty, so a bug in the fake fails the test.

Tests inject failures with ``fail_next`` (any status, ARM error body, optional
Retry-After; ``lose_answer`` does the work first, as when a gateway times out after the
backend acted), read every call in ``calls`` and the state through ``assignments()``,
``schedules()`` and ``schedule_requests()``, or one person's at a scope through
``assignments_at`` and ``schedules_at``; ``after_each_call`` lets a test look at the state
after every call the fake answers; ``expire(at)`` ends PIM schedules whose time is up, as
Azure does by itself.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import secrets
import shutil
import ssl
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from azure.identity import ClientSecretCredential
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from providers.azure import AzureClients

logger = logging.getLogger(__name__)

TENANT_ID = "72f988bf-0000-4000-8000-00000000aaaa"
CLIENT_ID = "0f0e0d0c-0000-4000-8000-00000000bbbb"
CLIENT_SECRET = "fake-azure-client-secret"  # a test value, not a credential
# What a Kubernetes projected service account token looks like; the fake authority trusts
# it as the app registration's federated credential. Test values, not credentials.
FEDERATED_TOKEN = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6ImZha2UifQ."
    "eyJpc3MiOiJodHRwczovL29pZGMuZmFrZS5leGFtcGxlIiwic3ViIjoic3lzdGVtOnNlcnZpY2VhY2NvdW50"
    "OmppdC1ib3Q6aml0LWJvdCIsImF1ZCI6ImFwaTovL0F6dXJlQURUb2tlbkV4Y2hhbmdlIn0."
    "ZmFrZS1zaWduYXR1cmU"
)
IDENTITY_HEADER = "fake-identity-header"  # the per-host secret App Service hands its app
# A user-assigned managed identity (chosen with AZURE_CLIENT_ID); without a client id the
# host's system-assigned identity answers.
MANAGED_IDENTITY_CLIENT_ID = "0f0e0d0c-0000-4000-8000-00000000cccc"
APP_SERVICE_TOKEN_PATH = "/msi/token"
IMDS_TOKEN_PATH = "/metadata/identity/oauth2/token"

SUBSCRIPTION = "00000000-0000-4000-8000-000000000001"
OTHER_SUBSCRIPTION = "00000000-0000-4000-8000-000000000002"

# Built-in roles with their real, well-known definition ids.
BUILT_IN_ROLES = {
    "acdd72a7-3385-48ef-bd42-f606fba81ae7": "Reader",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1": "Storage Blob Data Reader",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
}
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
USER_ACCESS_ADMINISTRATOR = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
# Their permissions, as Azure publishes them (Contributor's notActions abridged to the
# authorization ones that keep it from granting access).
BUILT_IN_PERMISSIONS: dict[str, list[dict[str, list[str]]]] = {
    READER: [{"actions": ["*/read"]}],
    CONTRIBUTOR: [
        {
            "actions": ["*"],
            "notActions": [
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
            ],
        }
    ],
    OWNER: [{"actions": ["*"]}],
    "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1": [
        {
            "actions": [
                "Microsoft.Storage/storageAccounts/blobServices/containers/read",
                "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
            ],
            "dataActions": ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"],
        }
    ],
    USER_ACCESS_ADMINISTRATOR: [
        {"actions": ["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"]}
    ],
}

_AUTHZ = "/providers/microsoft.authorization/"
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
_ACTIVE_PIM = ("Provisioned",)
_JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_SYSTEM_ASSIGNED_CLIENT_ID = "0f0e0d0c-0000-4000-8000-00000000dddd"
# The object id of the bot's service principal in the tenant, named in AuthorizationFailed.
CALLER_OBJECT_ID = "0f0e0d0c-0000-4000-8000-00000000eeee"

# PIM's limits for role assignment schedule requests (Azure resources). The shortest
# assignment PIM makes is 5 minutes; the longest is the role's management policy, whose
# default for an active assignment made by an administrator is 6 months. (An activation,
# an eligible user's own request, defaults to 8 hours; jit-bot makes none.)
SHORTEST_ASSIGNMENT = timedelta(minutes=5)
DEFAULT_MAXIMUM = timedelta(days=180)
# How far in the past a schedule's start may be (clocks of caller and Azure differ).
START_SKEW = timedelta(minutes=5)

Identity = Literal["service_principal", "workload_identity", "app_service", "imds_user_assigned"]


@dataclass(frozen=True)
class Call:
    """One request as the fake saw it, and the status it answered."""

    method: str
    host: str
    path: str
    query: dict[str, str]
    body: Any
    status: int
    bearer: str = ""  # the access token in its Authorization header


@dataclass
class _Fault:
    remaining: int
    status: int
    code: str
    message: str
    method: str | None
    path_contains: str | None
    retry_after: str | None
    lose_answer: bool = False

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method != method:
            return False
        return not self.path_contains or self.path_contains.lower() in path.lower()


@dataclass
class _Assignment:
    name: str
    scope: str
    role_guid: str
    principal_id: str
    principal_type: str
    description: str | None
    created_on: datetime
    schedule_request: str | None = None  # set when PIM made it


@dataclass
class _Schedule:
    name: str
    scope: str
    role_guid: str
    principal_id: str
    start: datetime
    end: datetime | None
    request_id: str
    assignment: str  # the role assignment's name


@dataclass
class _User:
    id: str
    user_principal_name: str
    mail: str | None
    display_name: str


@dataclass
class _Group:
    id: str
    display_name: str
    members: list[str]  # object ids of users and of nested groups


@dataclass(frozen=True)
class _ExpirationRule:
    """A role management policy's maximum duration at a scope (and below it)."""

    scope: str  # lower-case
    role_guid: str | None  # None: every role
    maximum: timedelta


@dataclass
class _State:
    scopes: set[str] = field(default_factory=set)  # lower-case
    # Scopes (lower-case) at and below which the caller may write role assignments.
    writable: set[str] = field(default_factory=set)
    expiration_rules: list[_ExpirationRule] = field(default_factory=list)
    custom_roles: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    permissions: dict[str, list[dict[str, list[str]]]] = field(default_factory=dict)  # custom
    # Subscriptions' display names and resource groups' names as created, by lower scope.
    names: dict[str, str] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)  # by lower scope
    groups: dict[str, _Group] = field(default_factory=dict)
    service_principals: dict[str, str] = field(default_factory=dict)  # object id → name
    page_size: int = 0  # ARM and Graph lists answer this many items a page; 0: all at once
    assignments: dict[str, _Assignment] = field(default_factory=dict)  # by lower name
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)  # by lower name
    schedules: dict[str, _Schedule] = field(default_factory=dict)
    users: dict[str, _User] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # token → scope
    token_requests: list[dict[str, str]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    faults: list[_Fault] = field(default_factory=list)
    observers: list[Callable[[Call], object]] = field(default_factory=list)
    pending_gets: int = 0  # PIM requests answer PendingProvisioning for this many GETs


class _ArmError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class FakeAzure:
    """Start with ``start()``; ``reset()`` between tests; ``stop()`` at the end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _State()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._dir: Path | None = None
        #: Exceptions raised inside the fake's handlers; each was answered 500.
        self.internal_errors: list[BaseException] = []
        #: The fake's clock for PIM schedules (when a request starts, when "now" is past a
        #: start); set it to the provider's clock when the test fixes that one.
        self.now: Callable[[], datetime] = _real_now

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> FakeAzure:
        self._dir = Path(tempfile.mkdtemp(prefix="fake-azure-"))
        context = _tls_context(self._dir)
        self._server = _Server(self, context)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-azure",
            daemon=True,
        )
        self._thread.start()
        self.reset()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._server = self._thread = self._dir = None

    def reset(self) -> None:
        """Forget everything; one subscription with resource groups ``prod`` and
        ``staging`` and a storage account in ``prod`` exist, and nobody holds anything."""
        with self._lock:
            tokens = self._state.tokens  # clients keep their cached tokens across resets
            self._state = _State(tokens=tokens)
            self.internal_errors.clear()
            self.now = _real_now
        self.grant_rights(f"/subscriptions/{SUBSCRIPTION}")
        self.add_scope(f"/subscriptions/{SUBSCRIPTION}/resourceGroups/prod")
        self.add_scope(f"/subscriptions/{SUBSCRIPTION}/resourceGroups/staging")
        self.add_scope(
            f"/subscriptions/{SUBSCRIPTION}/resourceGroups/prod/providers/"
            "Microsoft.Storage/storageAccounts/prodlogs"
        )

    @property
    def port(self) -> int:
        assert self._server is not None, "the fake is not started"
        return int(self._server.server_address[1])

    @property
    def arm_endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def graph_endpoint(self) -> str:
        return f"https://localhost:{self.port}"

    @property
    def authority(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_bundle(self) -> str:
        assert self._dir is not None, "the fake is not started"
        return str(self._dir / "ca.pem")

    # -- clients pointed at the fake ------------------------------------------------------

    def credential(self, secret: str = CLIENT_SECRET) -> ClientSecretCredential:
        """azure-identity's service-principal credential, talking to the fake authority."""
        return ClientSecretCredential(
            TENANT_ID,
            CLIENT_ID,
            secret,
            authority=self.authority,
            disable_instance_discovery=True,
            connection_verify=self.ca_bundle,
        )

    def clients(self) -> AzureClients:
        return AzureClients(
            self.credential(),
            arm_endpoint=self.arm_endpoint,
            graph_endpoint=self.graph_endpoint,
            connection_verify=self.ca_bundle,
        )

    def environ(self, identity: Identity = "service_principal") -> dict[str, str]:
        """What a bot process needs to reach this Azure through DefaultAzureCredential, with
        the variables each kind of host sets for its identity:

        - ``service_principal``: AZURE_* with a client secret (EnvironmentCredential);
        - ``workload_identity``: what the AKS workload identity webhook injects, the
          federated token file included (WorkloadIdentityCredential);
        - ``app_service``: IDENTITY_ENDPOINT and IDENTITY_HEADER, the system-assigned
          identity of App Service, Functions or Container Apps (ManagedIdentityCredential);
        - ``imds_user_assigned``: a VM's metadata service, with AZURE_CLIENT_ID choosing a
          user-assigned identity (ManagedIdentityCredential).
        """
        common = {
            "JIT_AZURE_DISABLE_INSTANCE_DISCOVERY": "true",
            "JIT_AZURE_ARM_ENDPOINT": self.arm_endpoint,
            "JIT_AZURE_GRAPH_ENDPOINT": self.graph_endpoint,
            "REQUESTS_CA_BUNDLE": self.ca_bundle,
        }
        if identity == "service_principal":
            return common | {
                "AZURE_TENANT_ID": TENANT_ID,
                "AZURE_CLIENT_ID": CLIENT_ID,
                "AZURE_CLIENT_SECRET": CLIENT_SECRET,
                "AZURE_AUTHORITY_HOST": self.authority,
            }
        if identity == "workload_identity":
            assert self._dir is not None, "the fake is not started"
            token_file = self._dir / "azure-identity-token"
            token_file.write_text(FEDERATED_TOKEN)
            return common | {
                "AZURE_TENANT_ID": TENANT_ID,
                "AZURE_CLIENT_ID": CLIENT_ID,
                "AZURE_FEDERATED_TOKEN_FILE": str(token_file),
                "AZURE_AUTHORITY_HOST": self.authority,
            }
        if identity == "app_service":
            return common | {
                "IDENTITY_ENDPOINT": f"{self.authority}{APP_SERVICE_TOKEN_PATH}",
                "IDENTITY_HEADER": IDENTITY_HEADER,
            }
        return common | {
            "AZURE_POD_IDENTITY_AUTHORITY_HOST": self.authority,
            "AZURE_CLIENT_ID": MANAGED_IDENTITY_CLIENT_ID,
        }

    # -- seeding -----------------------------------------------------------------------

    def add_scope(
        self, scope: str, *, name: str | None = None, tags: dict[str, str] | None = None
    ) -> None:
        """Make a subscription, resource group or resource exist (and its parents);
        ``name`` is a subscription's display name, ``tags`` the scope's own tags."""
        parts = scope.strip("/").split("/")
        with self._lock:
            for end in range(2, len(parts) + 1, 2):
                if end == 6:  # .../providers/<namespace> is not a scope of its own
                    continue
                key = "/" + "/".join(parts[:end]).lower()
                self._state.scopes.add(key)
                self._state.names.setdefault(key, parts[end - 1])
            key = "/" + "/".join(parts).lower()
            if name is not None:
                self._state.names[key] = name
            if tags is not None:
                self._state.tags[key] = dict(tags)

    def add_group(self, name: str, members: list[str]) -> str:
        """A Microsoft Entra ID security group; ``members`` are users (object id or user
        principal name) and groups (object id), nested groups included. Returns its id."""
        with self._lock:
            ids = []
            for member in members:
                ids.append(member if member in self._state.groups else self._user(member).id)
            group = _Group(str(uuid.uuid4()), name, ids)
            self._state.groups[group.id] = group
        return group.id

    def add_service_principal(self, name: str) -> str:
        """An application's or managed identity's service principal; returns its id."""
        object_id = str(uuid.uuid4())
        with self._lock:
            self._state.service_principals[object_id] = name
        return object_id

    def set_page_size(self, size: int) -> None:
        """Answer every ARM and Graph list this many items a page, with a next link."""
        with self._lock:
            self._state.page_size = size

    def grant_rights(self, scope: str) -> None:
        """Let the caller write and delete role assignments (and PIM requests) at ``scope``
        and below, as a User Access Administrator role assignment there would."""
        with self._lock:
            self._state.writable.add(scope.rstrip("/").lower())

    def revoke_rights(self, scope: str) -> None:
        """Take back what `grant_rights` gave at exactly ``scope``."""
        with self._lock:
            self._state.writable.discard(scope.rstrip("/").lower())

    def set_maximum_duration(
        self, scope: str, maximum: timedelta, *, role_guid: str | None = None
    ) -> None:
        """The longest active assignment PIM allows at ``scope`` and below (for
        ``role_guid``, or every role): that role management policy's expiration rule."""
        rule = _ExpirationRule(scope.rstrip("/").lower(), role_guid, maximum)
        with self._lock:
            self._state.expiration_rules.append(rule)

    def add_custom_role(
        self,
        name: str,
        assignable_scopes: list[str],
        permissions: list[dict[str, list[str]]] | None = None,
    ) -> str:
        """A custom role; ``permissions`` as ARM writes them (``actions``, ``notActions``,
        ``dataActions``, ``notDataActions``), by default reading everything."""
        guid = str(uuid.uuid4())
        with self._lock:
            self._state.custom_roles[guid] = (name, assignable_scopes)
            self._state.permissions[guid] = permissions or [{"actions": ["*/read"]}]
        return guid

    def add_user(self, upn: str, *, mail: str | None = None, name: str = "") -> str:
        """A Microsoft Entra ID user; returns its object id."""
        user = _User(str(uuid.uuid4()), upn, mail, name or upn.split("@")[0])
        with self._lock:
            self._state.users[user.id] = user
        return user.id

    def rename_user(self, object_id: str, *, upn: str, mail: str | None) -> None:
        with self._lock:
            user = self._state.users[object_id]
            user.user_principal_name, user.mail = upn, mail

    def assign(
        self, upn_or_id: str, role_guid: str, scope: str, *, description: str | None = None
    ) -> str:
        """A role assignment made outside jit-bot (standing access) to a user (object id
        or user principal name), a group or a service principal (object id); returns its
        name. Any other id is a principal of another tenant (``ForeignGroup``)."""
        with self._lock:
            if upn_or_id in self._state.groups:
                principal, kind = upn_or_id, "Group"
            elif upn_or_id in self._state.service_principals:
                principal, kind = upn_or_id, "ServicePrincipal"
            elif _GUID.match(upn_or_id) and upn_or_id not in self._state.users:
                principal, kind = upn_or_id, "ForeignGroup"
            else:
                principal, kind = self._user(upn_or_id).id, "User"
            name = str(uuid.uuid4())
            self._state.assignments[name] = _Assignment(
                name, scope, role_guid, principal, kind, description, self.now()
            )
            return name

    # -- fault injection ---------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        code: str = "InternalServerError",
        message: str = "injected failure",
        *,
        times: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
        retry_after: str | None = None,
        lose_answer: bool = False,
    ) -> None:
        """Answer the next ``times`` matching ARM/Graph calls with ``status`` and an error
        body in Azure's format (``{"error": {"code", "message"}}``). With ``lose_answer``
        the call is carried out first and only its answer is replaced."""
        with self._lock:
            self._state.faults.append(
                _Fault(
                    times, status, code, message, method, path_contains, retry_after, lose_answer
                )
            )

    def answer_pending(self, gets: int) -> None:
        """New PIM requests report PendingProvisioning until GET ``gets`` times."""
        with self._lock:
            self._state.pending_gets = gets

    # -- what tests look at ------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._state.calls)

    def calls_to(self, method: str, path_contains: str) -> list[Call]:
        return [
            c for c in self.calls if c.method == method and path_contains.lower() in c.path.lower()
        ]

    @property
    def token_requests(self) -> list[dict[str, str]]:
        """Every token asked for: ``via`` (client_secret, federated_token, app_service,
        imds), ``client_id`` ("" for a system-assigned identity), ``scope`` and the
        ``token`` issued ("" when refused)."""
        with self._lock:
            return list(self._state.token_requests)

    def assignments(self) -> set[tuple[str, str, str]]:
        """Every role assignment as (user principal name, scope, role name); a group is
        named ``group:<name>``, any other principal by its object id."""
        with self._lock:
            return {
                (self._principal_name(a.principal_id), a.scope, self._role_name(a.role_guid))
                for a in self._state.assignments.values()
            }

    def people_holding(self) -> set[tuple[str, str, str]]:
        """What each person holds: (mail or user principal name, scope, role name) for
        every assignment to a user or to a group (its users, nested groups included)."""
        with self._lock:
            found = set()
            for a in self._state.assignments.values():
                role = self._role_name(a.role_guid)
                for user in self._users_of(a.principal_id, set()):
                    email = (user.mail or user.user_principal_name).lower()
                    found.add((email, a.scope, role))
            return found

    def _users_of(self, object_id: str, seen: set[str]) -> list[_User]:
        if object_id in self._state.users:
            return [self._state.users[object_id]]
        group = self._state.groups.get(object_id)
        if group is None or object_id in seen:
            return []
        seen.add(object_id)
        return [u for member in group.members for u in self._users_of(member, seen)]

    def _principal_name(self, object_id: str) -> str:
        if object_id in self._state.users:
            return self._state.users[object_id].user_principal_name
        if object_id in self._state.groups:
            return f"group:{self._state.groups[object_id].display_name}"
        return object_id

    def assignment(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._state.assignments.get(name.lower())
            return None if found is None else _assignment_json(found)

    def schedules(self) -> list[dict[str, Any]]:
        """Active PIM schedules as (principal upn, scope, role name, start, end)."""
        with self._lock:
            return [
                {
                    "user": self._state.users[s.principal_id].user_principal_name,
                    "scope": s.scope,
                    "role": self._role_name(s.role_guid),
                    "start": s.start,
                    "end": s.end,
                    "request": s.request_id,
                }
                for s in self._state.schedules.values()
            ]

    def assignments_at(self, scope: str, user: str) -> list[str]:
        """The names of the role assignments ``user`` (user principal name or mail) holds
        at exactly ``scope``."""
        with self._lock:
            person = self._user(user).id
            return [
                a.name
                for a in self._state.assignments.values()
                if a.principal_id == person and a.scope.lower() == scope.lower()
            ]

    def schedules_at(self, scope: str, user: str) -> list[dict[str, Any]]:
        """``user``'s active PIM schedules at exactly ``scope``, each with the name of the
        role assignment it keeps (``assignment``)."""
        with self._lock:
            person = self._user(user).id
            return [
                {"assignment": s.assignment, "start": s.start, "end": s.end}
                for s in self._state.schedules.values()
                if s.principal_id == person and s.scope.lower() == scope.lower()
            ]

    def after_each_call(self, observer: Callable[[Call], object]) -> None:
        """Call ``observer`` with every call once the fake has answered it (and changed
        its state), until `reset`: for checking what holds at every step."""
        with self._lock:
            self._state.observers.append(observer)

    def schedule_requests(self) -> list[dict[str, Any]]:
        """Every roleAssignmentScheduleRequest PUT that was accepted, oldest first."""
        with self._lock:
            return [dict(r) for r in self._state.requests.values()]

    def expire(self, at: datetime) -> None:
        """End every PIM schedule whose end has come, as Azure does without being asked."""
        with self._lock:
            for key, schedule in list(self._state.schedules.items()):
                if schedule.end is not None and schedule.end <= at:
                    del self._state.schedules[key]
                    self._state.assignments.pop(schedule.assignment, None)

    # -- the server side ---------------------------------------------------------------

    def _handle(
        self, method: str, host: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        parts = urlsplit(raw_path)
        path = re.sub("/+", "/", unquote(parts.path))
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        payload: Any = None
        if body:
            if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                payload = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            else:
                try:
                    payload = json.loads(body)
                except ValueError:
                    return (
                        400,
                        {},
                        _error("InvalidRequestContent", "The request content is not valid JSON."),
                    )
        bearer = headers.get("authorization", "").removeprefix("Bearer ")
        with self._lock:
            status, extra, answer = self._route(method, host, path, query, headers, payload)
            call = Call(method, host, path, query, payload, status, bearer)
            self._state.calls.append(call)
            observers = list(self._state.observers)
        for observer in observers:  # outside the lock: observers read the state
            observer(call)
        return status, extra, answer

    def _route(
        self,
        method: str,
        host: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        payload: Any,
    ) -> tuple[int, dict[str, str], Any]:
        lower = path.lower()
        if lower.startswith(f"/{TENANT_ID}/"):
            return self._login(method, lower, payload)
        if lower in (APP_SERVICE_TOKEN_PATH, IMDS_TOKEN_PATH):
            return self._managed_identity(method, lower, query, headers)
        graph = lower.startswith("/v1.0/")
        audience = f"https://{'localhost' if graph else '127.0.0.1'}:{self.port}/.default"
        token = headers.get("authorization", "").removeprefix("Bearer ")
        if self._state.tokens.get(token) != audience:
            code = "InvalidAuthenticationToken"
            return 401, {}, _error(code, f"The access token is missing or not for {audience}.")
        fault = next(
            (f for f in self._state.faults if f.remaining > 0 and f.matches(method, path)), None
        )
        if fault is not None:
            fault.remaining -= 1
            if fault.lose_answer:
                self._serve(graph, method, path, query, payload)
            extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return fault.status, extra, _error(fault.code, fault.message)
        return self._serve(graph, method, path, query, payload)

    def _serve(
        self, graph: bool, method: str, path: str, query: dict[str, str], payload: Any
    ) -> tuple[int, dict[str, str], Any]:
        try:
            if graph:
                return 200, {}, self._graph(method, path, query)
            return self._arm(method, path, query, payload)
        except _ArmError as exc:
            return exc.status, {}, _error(exc.code, exc.message)

    # Microsoft Entra ID: OpenID discovery and the client-credentials token endpoint.
    def _login(self, method: str, path: str, payload: Any) -> tuple[int, dict[str, str], Any]:
        base = f"{self.authority}/{TENANT_ID}"
        if method == "GET" and path.endswith("/v2.0/.well-known/openid-configuration"):
            return (
                200,
                {},
                {
                    "issuer": f"{base}/v2.0",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                    "response_types_supported": ["code", "id_token", "token"],
                    "tenant_region_scope": "EU",
                },
            )
        if method == "POST" and path.endswith("/oauth2/v2.0/token"):
            form = payload or {}
            client_id, scope = form.get("client_id", ""), form.get("scope", "").split()[0]
            if "client_assertion" in form:
                via = "federated_token"
                if form.get("client_assertion_type") != _JWT_BEARER or (
                    form["client_assertion"] != FEDERATED_TOKEN
                ):
                    return self._refused(
                        via,
                        client_id,
                        scope,
                        "invalid_client",
                        "AADSTS70021: No matching federated identity record found for "
                        "presented assertion.",
                    )
            else:
                via = "client_secret"
                if form.get("client_secret") != CLIENT_SECRET:
                    return self._refused(
                        via,
                        client_id,
                        scope,
                        "invalid_client",
                        "AADSTS7000215: Invalid client secret provided.",
                    )
            if client_id != CLIENT_ID:
                return self._refused(
                    via,
                    client_id,
                    scope,
                    "unauthorized_client",
                    f"AADSTS700016: Application with identifier '{client_id}' was not found "
                    f"in the directory '{TENANT_ID}'.",
                )
            token = self._issue(via, client_id, scope)
            return 200, {}, {"token_type": "Bearer", "expires_in": 3599, "access_token": token}
        return 404, {}, {"error": "not_found"}

    # Managed identity: the App Service endpoint and the instance metadata service.
    def _managed_identity(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], Any]:
        app_service = path == APP_SERVICE_TOKEN_PATH
        via = "app_service" if app_service else "imds"
        client_id = query.get("client_id", "")
        resource = query.get("resource", "").rstrip("/")
        if method != "GET" or not resource:
            return 400, {}, {"error": "invalid_request", "error_description": "bad request"}
        if app_service and headers.get("x-identity-header") != IDENTITY_HEADER:
            # What App Service answers a caller without the host's secret.
            return 401, {}, {"statusCode": 401, "message": "Unauthorized"}
        if not app_service and headers.get("metadata") != "true":
            return (
                400,
                {},
                {
                    "error": "invalid_request",
                    "error_description": "Required metadata header not specified",
                },
            )
        if client_id not in ("", MANAGED_IDENTITY_CLIENT_ID):
            return self._refused(
                via,
                client_id,
                f"{resource}/.default",
                "invalid_request",
                "Identity not found",
                status=400,
            )
        # A managed identity asks for a resource; the token is for its .default scope.
        token = self._issue(via, client_id, f"{resource}/.default")
        expires_on = str(int(datetime.now(UTC).timestamp()) + 3599)
        answer = {
            "access_token": token,
            "expires_on": expires_on,
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id or _SYSTEM_ASSIGNED_CLIENT_ID,
        }
        if not app_service:
            answer |= {"expires_in": "3599", "refresh_token": "", "not_before": expires_on}
        return 200, {}, answer

    def _issue(self, via: str, client_id: str, scope: str) -> str:
        token = secrets.token_urlsafe(24)
        self._state.tokens[token] = scope
        self._state.token_requests.append(
            {"via": via, "client_id": client_id, "scope": scope, "token": token}
        )
        return token

    def _refused(
        self, via: str, client_id: str, scope: str, error: str, text: str, *, status: int = 401
    ) -> tuple[int, dict[str, str], Any]:
        self._state.token_requests.append(
            {"via": via, "client_id": client_id, "scope": scope, "token": ""}
        )
        return status, {}, {"error": error, "error_description": text}

    # Microsoft Graph: the users endpoint.
    def _graph(self, method: str, path: str, query: dict[str, str]) -> Any:
        if method != "GET":
            raise _ArmError(405, "Request_BadRequest", "Only GET is faked.")
        rest = path[len("/v1.0/") :]
        if rest.lower() == "users":
            match = re.match(r"^mail eq '(.*)'$", query.get("$filter", ""), re.I)
            if not match:
                raise _ArmError(400, "Request_UnsupportedQuery", "Unsupported query.")
            mail = match.group(1).replace("''", "'").lower()
            found = [u for u in self._state.users.values() if (u.mail or "").lower() == mail]
            return {"value": [_user_json(u) for u in found]}
        if rest.lower().startswith("groups/"):
            return self._graph_group(path, rest[len("groups/") :], query)
        if rest.lower().startswith("users/"):
            key = rest[len("users/") :]
            try:
                return _user_json(self._user(key))
            except KeyError:
                raise _ArmError(
                    404,
                    "Request_ResourceNotFound",
                    f"Resource '{key}' does not exist or one of its queried reference-property "
                    "objects are not present.",
                ) from None
        raise _ArmError(404, "Request_ResourceNotFound", f"No route {path}.")

    def _graph_group(self, path: str, rest: str, query: dict[str, str]) -> Any:
        """``/groups/{id}`` and ``/groups/{id}/transitiveMembers/microsoft.graph.user``:
        the users in the group and in every group nested in it, a page at a time."""
        key, _, member_path = rest.partition("/")
        group = self._state.groups.get(key.lower())
        if group is None:
            raise _ArmError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{key}' does not exist or one of its queried reference-property "
                "objects are not present.",
            )
        if not member_path:
            return {"id": group.id, "displayName": group.display_name}
        if member_path.lower() != "transitivemembers/microsoft.graph.user":
            raise _ArmError(400, "Request_BadRequest", f"No route {path}.")
        found: dict[str, _User] = {}
        pending, seen = list(group.members), {group.id}
        while pending:
            member = pending.pop()
            if member in self._state.users:
                found.setdefault(member, self._state.users[member])
            elif member in self._state.groups and member not in seen:
                seen.add(member)
                pending += self._state.groups[member].members
        users = [_user_json(u) for u in sorted(found.values(), key=lambda u: u.id)]
        return self._paged(self.graph_endpoint, path, query, users, "@odata.nextLink")

    def _paged(
        self, origin: str, path: str, query: dict[str, str], items: list[Any], link: str
    ) -> dict[str, Any]:
        """One page of a list, with the link to the next (``nextLink`` in ARM,
        ``@odata.nextLink`` in Graph) carrying the query and a ``$skiptoken``."""
        start = int(query.get("$skiptoken") or 0)
        size = self._state.page_size or max(len(items), 1)
        answer: dict[str, Any] = {"value": items[start : start + size]}
        if start + size < len(items):
            rest = {k: v for k, v in query.items() if k != "$skiptoken"}
            answer[link] = f"{origin}{path}?{urlencode({**rest, '$skiptoken': start + size})}"
        return answer

    # Azure Resource Manager: Microsoft.Resources (subscriptions, resource groups).
    def _resources(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        match = re.match(r"^/subscriptions/([^/]+)(/resourcegroups)?/?$", path, re.I)
        if match is None:
            raise _ArmError(404, "InvalidResourceType", f"No route {path}.")
        if not query.get("api-version"):
            raise _ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        scope = f"/subscriptions/{match.group(1)}".lower()
        self._check_scope(scope)
        if match.group(2) is None:
            return 200, {}, self._subscription_json(scope)
        groups = sorted(s for s in self._state.scopes if s.startswith(scope + "/resourcegroups/"))
        listed = [self._resource_group_json(g) for g in groups if g.count("/") == 4]
        return 200, {}, self._paged(self.arm_endpoint, path, query, listed, "nextLink")

    def _subscription_json(self, scope: str) -> dict[str, Any]:
        subscription = scope.rsplit("/", 1)[1]
        answer: dict[str, Any] = {
            "id": scope,
            "subscriptionId": subscription,
            "tenantId": TENANT_ID,
            "displayName": self._state.names.get(scope, subscription),
            "state": "Enabled",
            "authorizationSource": "RoleBased",
        }
        if self._state.tags.get(scope):
            answer["tags"] = self._state.tags[scope]
        return answer

    def _resource_group_json(self, scope: str) -> dict[str, Any]:
        subscription, name = scope.split("/")[2], self._state.names[scope]
        answer: dict[str, Any] = {
            "id": f"/subscriptions/{subscription}/resourceGroups/{name}",
            "name": name,
            "type": "Microsoft.Resources/resourceGroups",
            "location": "westeurope",
            "properties": {"provisioningState": "Succeeded"},
        }
        if self._state.tags.get(scope):
            answer["tags"] = self._state.tags[scope]
        return answer

    # Azure Resource Manager: Microsoft.Authorization.
    def _arm(
        self, method: str, path: str, query: dict[str, str], payload: Any
    ) -> tuple[int, dict[str, str], Any]:
        at = path.lower().rfind(_AUTHZ)
        if at < 0 and method == "GET":
            return self._resources(path, query)
        if at < 0:
            raise _ArmError(404, "InvalidResourceType", f"No route {path}.")
        scope, rest = path[:at], path[at + len(_AUTHZ) :]
        kind, _, name = rest.partition("/")
        kind = kind.lower()
        self._authorize(method, scope, kind, name, path)
        self._check_scope(scope)
        if kind == "roledefinitions":
            if method == "GET" and not name:
                found = self._role_definitions(scope, query.get("$filter"))
                return 200, {}, self._paged(self.arm_endpoint, path, query, found, "nextLink")
            if method == "GET":
                return 200, {}, self._role_definition(scope, name)
        if kind == "roleassignments":
            if method == "GET" and not name:
                found = self._list_assignments(scope, query.get("$filter"))
                return 200, {}, self._paged(self.arm_endpoint, path, query, found, "nextLink")
            if method == "GET":
                found = self._state.assignments.get(name.lower())
                if found is None or found.scope.lower() != scope.lower():
                    raise _ArmError(
                        404, "RoleAssignmentNotFound", "The role assignment does not exist."
                    )
                return 200, {}, _assignment_json(found)
            if method == "PUT":
                return 201, {}, self._create_assignment(scope, name, payload)
            if method == "DELETE":
                found = self._state.assignments.get(name.lower())
                if found is None or found.scope.lower() != scope.lower():
                    return 204, {}, None
                del self._state.assignments[name.lower()]
                return 200, {}, _assignment_json(found)
        if kind == "roleassignmentschedulerequests":
            if method == "PUT":
                return 201, {}, self._schedule_request(scope, name, payload)
            if method == "GET" and name:
                return 200, {}, self._get_schedule_request(name)
            if method == "POST" and name.lower().endswith("/cancel"):
                request = self._get_schedule_request(name.rsplit("/", 1)[0])
                request["properties"]["status"] = "Canceled"
                return 200, {}, None
        if kind == "permissions" and method == "GET" and not name:
            return 200, {}, {"value": [self._permissions_at(scope)]}
        if kind == "roleassignmentschedules" and method == "GET" and not name:
            return 200, {}, {"value": self._list_schedules(scope, query.get("$filter"))}
        raise _ArmError(404, "InvalidResourceType", f"No route {method} {path}.")

    def _authorize(self, method: str, scope: str, kind: str, name: str, path: str) -> None:
        """ARM's role check: writes to role assignments and PIM requests need the right at
        the scope or above it; reads are open (the caller is a Reader everywhere). Done
        before the scope's existence is checked, as ARM does ("or the scope is invalid")."""
        action = None
        if kind == "roleassignments" and method in ("PUT", "DELETE"):
            action = "roleAssignments/" + ("write" if method == "PUT" else "delete")
        elif kind == "roleassignmentschedulerequests" and method == "PUT":
            action = "roleAssignmentScheduleRequests/write"
        elif kind == "roleassignmentschedulerequests" and method == "POST":
            action = "roleAssignmentScheduleRequests/cancel/action"
        if action is None or any(_within(scope, w) for w in self._state.writable):
            return
        raise _ArmError(
            403,
            "AuthorizationFailed",
            f"The client '{CLIENT_ID}' with object id '{CALLER_OBJECT_ID}' does not have "
            f"authorization to perform action 'Microsoft.Authorization/{action}' over scope "
            f"'{path}' or the scope is invalid. If access was recently granted, please "
            "refresh your credentials.",
        )

    def _permissions_at(self, scope: str) -> dict[str, list[str]]:
        """The caller's effective permissions, as the permissions API lists them: a
        Reader everywhere, plus writing role assignments where it was given the right."""
        actions = ["*/read"]
        if any(_within(scope, w) for w in self._state.writable):
            actions.append("Microsoft.Authorization/*")
        return {"actions": actions, "notActions": [], "dataActions": [], "notDataActions": []}

    def _check_scope(self, scope: str) -> None:
        parts = scope.strip("/").split("/")
        for end in range(2, len(parts) + 1, 2):
            if end == 6:
                continue
            prefix = "/" + "/".join(parts[:end])
            if prefix.lower() in self._state.scopes:
                continue
            if end == 2:
                raise _ArmError(
                    404,
                    "SubscriptionNotFound",
                    f"The subscription '{parts[1]}' could not be found.",
                )
            if end == 4:
                raise _ArmError(
                    404, "ResourceGroupNotFound", f"Resource group '{parts[3]}' could not be found."
                )
            raise _ArmError(
                404,
                "ResourceNotFound",
                f"The Resource '{'/'.join(parts[5:end])}' under resource group '{parts[3]}' "
                "was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            )

    def _roles_at(self, scope: str) -> dict[str, str]:
        roles = dict(BUILT_IN_ROLES)
        for guid, (name, assignable) in self._state.custom_roles.items():
            if any(_within(scope, a) for a in assignable):
                roles[guid] = name
        return roles

    def _role_definitions(self, scope: str, filter_: str | None) -> list[dict[str, Any]]:
        roles = self._roles_at(scope)
        if filter_:
            match = re.match(r"^roleName eq '(.*)'$", filter_, re.I)
            if not match:
                raise _ArmError(400, "InvalidFilter", f"Unsupported filter {filter_}.")
            wanted = match.group(1).replace("''", "'").lower()
            roles = {g: n for g, n in roles.items() if n.lower() == wanted}
        return [self._definition_json(scope, guid, name) for guid, name in roles.items()]

    def _role_definition(self, scope: str, guid: str) -> dict[str, Any]:
        name = self._roles_at(scope).get(guid.lower())
        if name is None:
            raise _ArmError(
                404,
                "RoleDefinitionDoesNotExist",
                f"The specified role definition with ID '{guid}' does not exist.",
            )
        return self._definition_json(scope, guid.lower(), name)

    def _definition_json(self, scope: str, guid: str, name: str) -> dict[str, Any]:
        subscription = scope.strip("/").split("/")[1]
        builtin = guid in BUILT_IN_ROLES
        return {
            "id": f"/subscriptions/{subscription}/providers/Microsoft.Authorization/"
            f"roleDefinitions/{guid}",
            "name": guid,
            "type": "Microsoft.Authorization/roleDefinitions",
            "properties": {
                "roleName": name,
                "type": "BuiltInRole" if builtin else "CustomRole",
                "description": f"{name} (fake)",
                "assignableScopes": ["/"] if builtin else self._state.custom_roles[guid][1],
                "permissions": [
                    {
                        key: list(block.get(key, []))
                        for key in ("actions", "notActions", "dataActions", "notDataActions")
                    }
                    for block in (
                        BUILT_IN_PERMISSIONS.get(guid, [{"actions": ["*/read"]}])
                        if builtin
                        else self._state.permissions[guid]
                    )
                ],
            },
        }

    def _role_guid(self, scope: str, role_definition_id: str) -> str:
        guid = role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower()
        if not _GUID.match(guid) or guid not in self._roles_at(scope):
            raise _ArmError(
                400,
                "RoleDefinitionDoesNotExist",
                f"The specified role definition with ID '{guid}' does not exist.",
            )
        return guid

    def _principal(self, principal_id: str) -> _User:
        user = self._state.users.get(str(principal_id).lower())
        if user is None:
            raise _ArmError(
                400,
                "PrincipalNotFound",
                f"Principal {principal_id} does not exist in the directory {TENANT_ID}. Check "
                "that you have the correct principal ID.",
            )
        return user

    def _holding(self, scope: str, role_guid: str, principal_id: str) -> _Assignment | None:
        return next(
            (
                a
                for a in self._state.assignments.values()
                if a.scope.lower() == scope.lower()
                and a.role_guid == role_guid
                and a.principal_id == principal_id
            ),
            None,
        )

    def _create_assignment(self, scope: str, name: str, payload: Any) -> dict[str, Any]:
        if not _GUID.match(name):
            raise _ArmError(
                400, "InvalidRoleAssignmentId", f"The role assignment ID '{name}' is not valid."
            )
        props = (payload or {}).get("properties") or {}
        guid = self._role_guid(scope, props.get("roleDefinitionId", ""))
        user = self._principal(props.get("principalId", ""))
        if self._holding(scope, guid, user.id) is not None:
            raise _ArmError(409, "RoleAssignmentExists", "The role assignment already exists.")
        if name.lower() in self._state.assignments:
            raise _ArmError(
                409,
                "RoleAssignmentUpdateNotPermitted",
                "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
            )
        assignment = _Assignment(
            name.lower(),
            scope,
            guid,
            user.id,
            props.get("principalType") or "User",
            props.get("description"),
            self.now(),
        )
        self._state.assignments[name.lower()] = assignment
        return _assignment_json(assignment)

    def _list_assignments(self, scope: str, filter_: str | None) -> list[dict[str, Any]]:
        principal = None
        above_only = False
        if filter_:
            match = re.match(r"^principalId eq '([^']*)'$", filter_, re.I)
            if match:
                principal = match.group(1).lower()
            elif filter_.strip().lower() == "atscope()":
                above_only = True
            else:
                raise _ArmError(400, "InvalidFilter", f"Unsupported filter {filter_}.")
        found = []
        for a in self._state.assignments.values():
            related = _within(scope, a.scope) or (not above_only and _within(a.scope, scope))
            if related and (principal is None or a.principal_id == principal):
                found.append(_assignment_json(a))
        return found

    def _list_schedules(self, scope: str, filter_: str | None) -> list[dict[str, Any]]:
        match = re.match(r"^principalId eq '([^']*)'$", filter_ or "", re.I)
        if not match:
            raise _ArmError(400, "InvalidFilter", f"Unsupported filter {filter_}.")
        principal = match.group(1).lower()
        by_assignment = {s.assignment: s for s in self._state.schedules.values()}
        found = []
        for a in self._state.assignments.values():
            if a.principal_id != principal or not (
                _within(scope, a.scope) or _within(a.scope, scope)
            ):
                continue
            # Direct (non-PIM) assignments show up as permanent schedules, as in PIM.
            schedule = by_assignment.get(a.name) or _Schedule(
                a.name, a.scope, a.role_guid, a.principal_id, a.created_on, None, "", a.name
            )
            found.append(self._schedule_json(schedule))
        return found

    def _schedule_json(self, s: _Schedule) -> dict[str, Any]:
        subscription = s.scope.strip("/").split("/")[1]
        return {
            "id": f"{s.scope}/providers/Microsoft.Authorization/roleAssignmentSchedules/{s.name}",
            "name": s.name,
            "type": "Microsoft.Authorization/roleAssignmentSchedules",
            "properties": {
                "scope": s.scope,
                "roleDefinitionId": f"/subscriptions/{subscription}/providers/"
                f"Microsoft.Authorization/roleDefinitions/{s.role_guid}",
                "principalId": s.principal_id,
                "principalType": "User",
                "roleAssignmentScheduleRequestId": (
                    f"{s.scope}/providers/Microsoft.Authorization/"
                    f"roleAssignmentScheduleRequests/{s.request_id}"
                    if s.request_id
                    else None
                ),
                "assignmentType": "Assigned",
                "memberType": "Direct",
                "status": "Provisioned",
                "startDateTime": _iso(s.start),
                "endDateTime": _iso(s.end) if s.end else None,
                "createdOn": _iso(s.start),
            },
        }

    def _get_schedule_request(self, name: str) -> dict[str, Any]:
        request = self._state.requests.get(name.lower())
        if request is None:
            raise _ArmError(
                404,
                "RoleAssignmentScheduleRequestNotFound",
                f"The role assignment schedule request '{name}' does not exist.",
            )
        props = request["properties"]
        if props["status"] == "PendingProvisioning":
            if request["_pending"] > 0:
                request["_pending"] -= 1
            else:
                props["status"] = "Provisioned"
        return {k: v for k, v in request.items() if not k.startswith("_")}

    def _schedule_request(self, scope: str, name: str, payload: Any) -> dict[str, Any]:
        if not _GUID.match(name):
            raise _ArmError(400, "InvalidRequest", f"The request name '{name}' is not a GUID.")
        if name.lower() in self._state.requests:
            # The service refuses to reuse a request name.
            raise _ArmError(
                409,
                "RoleAssignmentRequestExists",
                f"A role assignment request with Id: {name} already exists",
            )
        props = dict((payload or {}).get("properties") or {})
        guid = self._role_guid(scope, props.get("roleDefinitionId", ""))
        user = self._principal(props.get("principalId", ""))
        kind = props.get("requestType")
        held = self._holding(scope, guid, user.id)
        now = self.now()
        if kind in ("AdminAssign", "AdminUpdate"):
            start, end = _schedule_window(props.get("scheduleInfo") or {}, now)
            self._check_expiration(scope, guid, start, end, now)
            if kind == "AdminAssign" and held is not None:
                raise _ArmError(400, "RoleAssignmentExists", "The Role assignment already exists.")
            if kind == "AdminUpdate":
                if held is None:
                    raise _ArmError(
                        400, "RoleAssignmentDoesNotExist", "The Role assignment does not exist."
                    )
                self._drop_schedule_of(held.name)
                del self._state.assignments[held.name]
            assignment = _Assignment(
                str(uuid.uuid4()), scope, guid, user.id, "User", None, now, name.lower()
            )
            self._state.assignments[assignment.name] = assignment
            schedule_name = str(uuid.uuid4())
            self._state.schedules[schedule_name] = _Schedule(
                schedule_name, scope, guid, user.id, start, end, name.lower(), assignment.name
            )
            status = "PendingProvisioning" if self._state.pending_gets else "Provisioned"
        elif kind == "AdminExtend":
            status = self._extend(scope, guid, held, props, name, now)
        elif kind == "AdminRemove":
            if held is None:
                raise _ArmError(
                    400, "RoleAssignmentDoesNotExist", "The Role assignment does not exist."
                )
            self._drop_schedule_of(held.name)
            del self._state.assignments[held.name]
            status = "Revoked"
        else:
            raise _ArmError(400, "InvalidRequestType", f"Request type {kind} is not faked.")
        subscription = scope.strip("/").split("/")[1]
        request = {
            "id": f"{scope}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/"
            f"{name}",
            "name": name,
            "type": "Microsoft.Authorization/RoleAssignmentScheduleRequests",
            "properties": {
                **props,
                "scope": scope,
                "roleDefinitionId": f"/subscriptions/{subscription}/providers/"
                f"Microsoft.Authorization/roleDefinitions/{guid}",
                "principalType": "User",
                "status": status,
                "createdOn": _iso(now),
                "requestorId": CLIENT_ID,
            },
            "_pending": self._state.pending_gets,
        }
        self._state.requests[name.lower()] = request
        return {k: v for k, v in request.items() if not k.startswith("_")}

    def _extend(
        self,
        scope: str,
        role_guid: str,
        held: _Assignment | None,
        props: dict[str, Any],
        name: str,
        now: datetime,
    ) -> str:
        """AdminExtend: the assignment stays the same one; its schedule ends later."""
        if held is None:
            raise _ArmError(
                400, "RoleAssignmentDoesNotExist", "The Role assignment does not exist."
            )
        start, end = _schedule_window(props.get("scheduleInfo") or {}, now)
        self._check_expiration(scope, role_guid, start, end, now)
        schedule = next(
            (s for s in self._state.schedules.values() if s.assignment == held.name), None
        )
        if schedule is None:
            # A direct (permanent) assignment has no end to move. (The fake's words.)
            raise _ArmError(400, "InvalidScheduleInfo", "The role assignment has no end to extend.")
        schedule.end = end
        schedule.request_id = name.lower()
        return "PendingProvisioning" if self._state.pending_gets else "Provisioned"

    def _check_expiration(
        self,
        scope: str,
        role_guid: str,
        start: datetime,
        end: datetime | None,
        now: datetime,
    ) -> None:
        """PIM's schedule rules: a start not in the past, an end, and a length within the
        role management policy's bounds."""
        if start < now - START_SKEW:
            raise _ArmError(
                400,
                "InvalidScheduleInfo",
                f"The start time {_iso(start)} of the schedule is in the past.",
            )
        maximum = self._maximum(scope, role_guid)
        if end is None or not SHORTEST_ASSIGNMENT <= end - start <= maximum:
            raise _ArmError(
                400,
                "RoleAssignmentRequestPolicyValidationFailed",
                'The following policy rules failed: ["ExpirationRule"]',
            )

    def _maximum(self, scope: str, role_guid: str) -> timedelta:
        """The policy of the nearest scope that has one for this role (a rule naming the
        role wins over one for every role at the same scope); Azure's default otherwise."""
        rules = [
            r
            for r in self._state.expiration_rules
            if r.role_guid in (None, role_guid) and _within(scope, r.scope)
        ]
        if not rules:
            return DEFAULT_MAXIMUM
        nearest = max(rules, key=lambda r: (len(r.scope), r.role_guid is not None))
        return nearest.maximum

    def _drop_schedule_of(self, assignment: str) -> None:
        for key, schedule in list(self._state.schedules.items()):
            if schedule.assignment == assignment:
                del self._state.schedules[key]

    def _user(self, key: str) -> _User:
        key = key.lower()
        for user in self._state.users.values():
            if key in (user.id, user.user_principal_name.lower()):
                return user
        raise KeyError(key)

    def _role_name(self, guid: str) -> str:
        if guid in BUILT_IN_ROLES:
            return BUILT_IN_ROLES[guid]
        return self._state.custom_roles[guid][0]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeAzure, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake
        # The handshake happens in the handler's thread (on first read), so one slow client
        # cannot stall the accept loop.
        self.socket = context.wrap_socket(
            self.socket, server_side=True, do_handshake_on_connect=False
        )


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        host = headers.get("host", "").rsplit(":", 1)[0]
        try:
            status, extra, answer = self.server.fake._handle(
                self.command, host, self.path, headers, body
            )
        except Exception as exc:  # a bug in the fake must show up as a 500, not a hung client
            logger.exception("fake azure failed on %s %s", self.command, self.path)
            self.server.fake.internal_errors.append(exc)
            status, extra, answer = 500, {}, _error("FakeAzureBug", "see the test log")
        data = b"" if answer is None else json.dumps(answer).encode()
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        if status != 204:
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        self.end_headers()
        if status != 204:
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug(format, *args)


def _real_now() -> datetime:
    return datetime.now(UTC)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _assignment_json(a: _Assignment) -> dict[str, Any]:
    subscription = a.scope.strip("/").split("/")[1]
    return {
        "id": f"{a.scope}/providers/Microsoft.Authorization/roleAssignments/{a.name}",
        "name": a.name,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "scope": a.scope,
            "roleDefinitionId": f"/subscriptions/{subscription}/providers/"
            f"Microsoft.Authorization/roleDefinitions/{a.role_guid}",
            "principalId": a.principal_id,
            "principalType": a.principal_type,
            "description": a.description,
            "createdOn": _iso(a.created_on),
            "updatedOn": _iso(a.created_on),
            "createdBy": CLIENT_ID,
        },
    }


def _user_json(user: _User) -> dict[str, Any]:
    return {
        "id": user.id,
        "userPrincipalName": user.user_principal_name,
        "mail": user.mail,
        "displayName": user.display_name,
    }


def _within(inner: str, outer: str) -> bool:
    """Whether ``inner`` is ``outer`` or below it."""
    inner, outer = inner.lower().rstrip("/"), outer.lower().rstrip("/")
    return outer in ("", "/") or inner == outer or inner.startswith(outer + "/")


def _schedule_window(info: dict[str, Any], now: datetime) -> tuple[datetime, datetime | None]:
    start = _parse_time(info["startDateTime"]) if info.get("startDateTime") else now
    expiration = info.get("expiration") or {}
    kind = expiration.get("type")
    if kind == "AfterDuration":
        match = _DURATION.match(expiration.get("duration") or "")
        if not match or not any(match.groups()):
            raise _ArmError(400, "InvalidDuration", "The expiration duration is not valid.")
        days, hours, minutes, seconds = match.groups()
        length = timedelta(
            days=int(days or 0),
            hours=int(hours or 0),
            minutes=int(minutes or 0),
            seconds=float(seconds or 0),
        )
        return start, start + length
    if kind == "AfterDateTime":
        return start, _parse_time(expiration["endDateTime"])
    if kind == "NoExpiration":
        return start, None
    raise _ArmError(400, "InvalidExpirationType", f"Expiration type {kind} is not valid.")


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _tls_context(directory: Path, names: tuple[str, ...] = ("localhost",)) -> ssl.SSLContext:
    """A certificate authority and a server certificate for 127.0.0.1 and ``names``
    (localhost unless told), valid for a day; the CA goes to ``ca.pem`` for clients to
    trust."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jit-bot test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake azure")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name) for name in names]
                + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (directory / "server.pem").write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "server.pem")
    return context
