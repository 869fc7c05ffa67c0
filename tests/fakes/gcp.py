"""Google Cloud for tests: local servers that follow Google's published API contracts, so
the official clients reach them exactly as they reach Google.

One `FakeGoogle` runs two real servers on 127.0.0.1, each on an OS-chosen port:

- an HTTP/1.1 server (stdlib ``ThreadingHTTPServer``) for the REST APIs:
  Cloud Resource Manager v3 ``POST /v3/{projects|folders|organizations}/{id}:getIamPolicy``,
  ``:setIamPolicy`` and ``:testIamPermissions``, and ``GET /v3/{kind}/{id}`` and
  ``GET /v3/{folders|projects}?parent=…`` (get, and list by parent, paged); the Admin SDK
  Directory API
  ``GET /admin/directory/v1/groups/{groupKey}/members``; the OAuth 2.0 token endpoint a
  service-account key's ``token_uri`` names (``POST /token``, the JWT-bearer grant used
  for domain-wide delegation); and IAM Credentials ``generateAccessToken`` (impersonation);
- a gRPC server for IAM admin v1 (``google.iam.admin.v1.IAM/GetRole``, ``ListRoles``
  and ``QueryGrantableRoles``, roles with their included permissions): google-cloud-iam
  ships ``iam_admin_v1`` with a gRPC transport only, so that is the wire the bot uses and
  the one faked here.

Behaviour follows the published contracts where the bot depends on it: IAM policies with
an etag that changes on every write and ``409 ABORTED`` for a stale one; conditional
bindings only in version 3 policies (read at a lower ``requestedPolicyVersion`` they come
back as ``<role>_withcond_<hash>`` without their condition, as Google does); no conditions
on basic roles; ``403 PERMISSION_DENIED`` for a resource that does not exist or is not
visible; errors in Google's JSON error format (``{"error": {"code", "message", "status"}}``,
and the older ``errors[].reason`` form for the Directory API); page tokens on every list.

Authentication is checked as Google checks it, always (``require_auth``, on by default):
the token endpoint accepts only a JWT-bearer assertion signed (RS256) by a service-account
key the fake issued (`service_account_key`, `service_account_info`, `credentials`) for its
``iss``, addressed to ``https://oauth2.googleapis.com/token``, at most an hour long, current
within ``CLOCK_SKEW`` and with a scope; anything else gets Google's OAuth error (HTTP 400,
``{"error": "invalid_grant" | "invalid_scope", "error_description"}``). Every API call,
``generateAccessToken`` included, needs a token the fake minted or a self-signed JWT of a
key it issued (what the official clients send with ``always_use_jwt_access``), otherwise
``401 UNAUTHENTICATED``. Exceptions inside the fake's handlers (HTTP or gRPC) are answered
500 / INTERNAL and kept in ``internal_errors`` for the fixtures to assert empty.

Tests seed and read state through methods (`add_project`, `policy`, `set_policy`,
`add_group`, `live_bindings` …), inject faults (`fail_next`, `before_next`, or `chaos`
for a seeded random share of the IAM policy calls) and read `calls`, one record per
request received, and `policy_writes`, every policy setIamPolicy stored.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import random
import re
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import grpc
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from google.auth.credentials import Credentials
from google.cloud import iam_admin_v1
from google.oauth2 import service_account
from google.protobuf import json_format

Policy = dict[str, Any]

SERVICE_ACCOUNT = "jit-bot@acme-admin.iam.gserviceaccount.com"
KEY_ID = "0123456789abcdef"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
# Bindings of other people and tools, for tests to seed a project's policy with: every
# change the bot makes must carry them over exactly as they are.
THEIRS: list[dict[str, Any]] = [
    {"role": "roles/owner", "members": ["group:platform@example.com"]},
    {
        "role": "roles/logging.viewer",
        "members": ["group:oncall@example.com"],
        "condition": {
            "title": "business hours",
            "expression": "request.time.getHours('Europe/Berlin') >= 9",
        },
    },
]
# How far an assertion's iat may be ahead of the fake's clock, or its exp behind it.
CLOCK_SKEW = 300
CRM = "//cloudresourcemanager.googleapis.com/"
BASIC_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})

# A small predefined-role catalogue: name → the resource kinds it can be granted on.
ALL_LEVELS = frozenset({"projects", "folders", "organizations"})
PREDEFINED_ROLES: dict[str, tuple[str, frozenset[str]]] = {
    "roles/owner": ("Owner", ALL_LEVELS),
    "roles/editor": ("Editor", ALL_LEVELS),
    "roles/viewer": ("Viewer", ALL_LEVELS),
    "roles/browser": ("Browser", ALL_LEVELS),
    "roles/logging.viewer": ("Logs Viewer", ALL_LEVELS),
    "roles/compute.viewer": ("Compute Viewer", ALL_LEVELS),
    "roles/cloudsql.client": ("Cloud SQL Client", ALL_LEVELS),
    "roles/bigquery.dataViewer": ("BigQuery Data Viewer", ALL_LEVELS),
    "roles/iam.securityReviewer": ("Security Reviewer", ALL_LEVELS),
    "roles/resourcemanager.folderAdmin": ("Folder Admin", frozenset({"folders", "organizations"})),
    "roles/resourcemanager.organizationAdmin": (
        "Organization Administrator",
        frozenset({"organizations"}),
    ),
}
# What each predefined role includes: an excerpt of Google's catalogue (the real roles
# include many more), enough for the tests' estates. Basic roles overlap the others as
# they do at Google; only the admin roles may change IAM policies.
PREDEFINED_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "roles/owner": (
        "compute.instances.list",
        "compute.instances.start",
        "logging.logEntries.list",
        "resourcemanager.projects.get",
        "resourcemanager.projects.getIamPolicy",
        "resourcemanager.projects.setIamPolicy",
    ),
    "roles/editor": (
        "compute.instances.list",
        "compute.instances.start",
        "logging.logEntries.list",
        "resourcemanager.projects.get",
    ),
    "roles/viewer": (
        "compute.instances.list",
        "logging.logEntries.list",
        "resourcemanager.projects.get",
    ),
    "roles/browser": (
        "resourcemanager.folders.get",
        "resourcemanager.folders.list",
        "resourcemanager.projects.get",
        "resourcemanager.projects.list",
    ),
    "roles/logging.viewer": ("logging.logEntries.list", "logging.logs.list"),
    "roles/compute.viewer": ("compute.instances.get", "compute.instances.list"),
    "roles/cloudsql.client": ("cloudsql.instances.connect", "cloudsql.instances.get"),
    "roles/bigquery.dataViewer": ("bigquery.tables.getData", "bigquery.tables.list"),
    "roles/iam.securityReviewer": (
        "iam.roles.get",
        "iam.roles.list",
        "resourcemanager.projects.getIamPolicy",
    ),
    "roles/resourcemanager.folderAdmin": (
        "resourcemanager.folders.get",
        "resourcemanager.folders.getIamPolicy",
        "resourcemanager.folders.setIamPolicy",
    ),
    "roles/resourcemanager.organizationAdmin": (
        "resourcemanager.organizations.get",
        "resourcemanager.organizations.getIamPolicy",
        "resourcemanager.organizations.setIamPolicy",
    ),
}

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_GRPC_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
}
# Directory API (the older discovery-based style) names its error reasons differently.
_DIRECTORY_REASONS = {400: "invalid", 401: "authError", 403: "forbidden", 404: "notFound"}


@dataclass(frozen=True)
class GoogleCall:
    """One request a fake server received. ``operation`` is the API method
    (``setIamPolicy``, ``GetRole``, ``members.list``, ``token`` …)."""

    operation: str
    path: str
    body: dict[str, Any]
    authorization: str
    status: int


class GoogleError(Exception):
    """Raised inside the fake to answer a Google error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class OAuthError(GoogleError):
    """The token endpoint's refusal: HTTP 400 with an RFC 6749 error code."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(400, message)
        self.error = error


@dataclass
class _Fault:
    operation: str
    remaining: int
    status: int
    message: str


@dataclass
class _Chaos:
    """`FakeGoogle.chaos`: which calls it may fail, how often, and its dice."""

    operations: frozenset[str]
    rate: float
    permanent_rate: float
    rng: random.Random


# What Google answers when it says "later", by kind (the Counter key of `chaos_injected`
# is "<operation>: <kind>").
_TEMPORARY = {
    "429 RESOURCE_EXHAUSTED": (
        429,
        "Quota exceeded for quota metric '{rw} requests' and limit '{rw} requests per "
        "minute' of service 'cloudresourcemanager.googleapis.com'.",
    ),
    "503 UNAVAILABLE": (503, "The service is currently unavailable."),
    "500 INTERNAL": (500, "Internal error encountered."),
}
CONFLICT = "409 ABORTED (etag changed by a concurrent write)"
APPLIED_LOST = "503 UNAVAILABLE after applying the write"
PERMANENT = "403 PERMISSION_DENIED"
PERMANENT_MESSAGE = "The caller does not have permission"


@dataclass
class _Resource:
    policy: Policy
    etag: int
    denied: bool = False
    # Permissions testIamPermissions says the caller holds; None means all asked for.
    caller_permissions: set[str] | None = None
    not_grantable: set[str] = field(default_factory=set)
    # What Resource Manager's get and list answer about it (folders and projects name
    # their parent; projects have a number, labels and an id that names them here).
    display_name: str = ""
    parent: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class _Role:
    name: str
    title: str
    levels: frozenset[str]
    stage: str = "GA"
    deleted: bool = False
    permissions: frozenset[str] = frozenset()
    description: str = ""


class FakeGoogle:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._http: _HttpServer | None = None
        self._grpc: grpc.Server | None = None
        self._grpc_port = 0
        self._etags = itertools.count(1)
        self._tokens = itertools.count(1)
        self.page_size = 3  # small, so every list is paged
        # Every access token this fake minted, kept across `reset`: a client keeps using
        # the token it cached, as it would with Google between two tests' worth of calls.
        self._issued: set[str] = set()
        # Service-account keys Google knows: (client email, key id) → the public key the
        # token endpoint checks an assertion's signature with.
        self._keys: dict[tuple[str, str], rsa.RSAPublicKey] = {}
        self.require_auth = True
        self.internal_errors: list[BaseException] = []
        self.reset()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeGoogle:
        self._http = _HttpServer(self)
        threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="FakeGoogle-http",
            daemon=True,
        ).start()
        server = grpc.server(ThreadPoolExecutor(max_workers=8, thread_name_prefix="FakeGoogle"))
        server.add_generic_rpc_handlers((self._iam_handlers(),))
        # Local credentials: plaintext on loopback, yet call credentials (the bearer token)
        # still travel, as they do to Google over TLS.
        self._grpc_port = server.add_secure_port(
            "127.0.0.1:0", grpc.local_server_credentials(grpc.LocalConnectionType.LOCAL_TCP)
        )
        server.start()
        self._grpc = server
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._grpc is not None:
            self._grpc.stop(grace=None)
            self._grpc = None

    def reset(self) -> None:
        """Forget every resource, role, group, fault and call."""
        with self._lock:
            self._resources: dict[str, _Resource] = {}
            self._roles: dict[str, _Role] = {
                name: _Role(
                    name, title, levels, permissions=frozenset(PREDEFINED_PERMISSIONS[name])
                )
                for name, (title, levels) in PREDEFINED_ROLES.items()
            }
            self._groups: dict[str, list[dict[str, str]]] = {}
            self.directory_denied = False
            # Google accounts that exist; None accepts any. Google refuses a policy that
            # adds a user: member without an account.
            self.known_users: set[str] | None = None
            self._faults: list[_Fault] = []
            self._hooks: list[tuple[str, Callable[[], object]]] = []
            self._chaos: _Chaos | None = None
            #: What `chaos` injected: "<operation>: <kind>" → how many times.
            self.chaos_injected: Counter[str] = Counter()
            self.calls: list[GoogleCall] = []
            #: (resource, policy stored) for every setIamPolicy that was applied, in the
            #: order they landed: the whole history, for invariants over time.
            self.policy_writes: list[tuple[str, Policy]] = []
            self.token_grants: dict[str, dict[str, Any]] = {}  # access token → JWT claims
            self.impersonations: list[dict[str, Any]] = []
            self.require_auth = True
            self.internal_errors.clear()

    @property
    def url(self) -> str:
        """Base URL of the REST APIs: ``JIT_GCP_ENDPOINT`` / ``JIT_GOOGLE_DIRECTORY_ENDPOINT``."""
        assert self._http is not None, "FakeGoogle is not started"
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    @property
    def iam_endpoint(self) -> str:
        """Where IAM admin (gRPC) listens: ``JIT_GCP_IAM_ENDPOINT``."""
        assert self._grpc is not None, "FakeGoogle is not started"
        return f"http://127.0.0.1:{self._grpc_port}"

    def environ(self, key_file: Path | None = None) -> dict[str, str]:
        """What a bot process needs to reach this Google."""
        env = {
            "JIT_GCP_ENDPOINT": self.url,
            "JIT_GCP_IAM_ENDPOINT": self.iam_endpoint,
            "JIT_GOOGLE_DIRECTORY_ENDPOINT": self.url,
        }
        if key_file is not None:
            env["GOOGLE_APPLICATION_CREDENTIALS"] = str(key_file)
        return env

    def service_account_key(self, path: Path, email: str = SERVICE_ACCOUNT) -> Path:
        """Write a service-account key file whose token_uri is this fake, for Application
        Default Credentials (GOOGLE_APPLICATION_CREDENTIALS)."""
        path.write_text(json.dumps(self.service_account_info(email)))
        return path

    def service_account_info(
        self, email: str = SERVICE_ACCOUNT, *, key_id: str = KEY_ID, known: bool = True
    ) -> dict[str, str]:
        """A service-account key (the JSON Google hands out) whose token_uri is this fake.
        Google knows its public key, so assertions it signs are accepted, unless ``known``
        is False: a key Google never issued (or has deleted)."""
        pem = _private_key_pem() if known else _other_private_key_pem()
        if known:
            private = serialization.load_pem_private_key(pem.encode(), password=None)
            assert isinstance(private, rsa.RSAPrivateKey)
            with self._lock:
                self._keys[(email, key_id)] = private.public_key()
        return {
            "type": "service_account",
            "project_id": email.split("@")[1].split(".")[0],
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": email,
            "client_id": "100000000000000000001",
            "auth_uri": f"{self.url}/auth",
            "token_uri": f"{self.url}/token",
        }

    def credentials(self, scopes: Iterable[str] = (CLOUD_PLATFORM,)) -> Credentials:
        """google-auth service-account credentials of a key this fake issued: what the
        official clients use in tests, so every call carries a token the fake minted."""
        return service_account.Credentials.from_service_account_info(
            self.service_account_info(), scopes=list(scopes)
        )

    # ------------------------------------------------------------------ seeding

    def add_project(
        self,
        project: str,
        policy: Policy | None = None,
        *,
        parent: str | None = None,
        display_name: str = "",
        labels: dict[str, str] | None = None,
    ) -> str:
        """A project by its id; ``parent`` is ``folders/N`` or ``organizations/N``."""
        return self._add(f"projects/{project}", policy, parent, display_name, labels)

    def add_folder(
        self,
        folder: str,
        policy: Policy | None = None,
        *,
        parent: str | None = None,
        display_name: str = "",
    ) -> str:
        return self._add(f"folders/{folder}", policy, parent, display_name)

    def add_organization(
        self, organization: str, policy: Policy | None = None, *, display_name: str = ""
    ) -> str:
        return self._add(f"organizations/{organization}", policy, None, display_name)

    def _add(
        self,
        resource: str,
        policy: Policy | None,
        parent: str | None = None,
        display_name: str = "",
        labels: dict[str, str] | None = None,
    ) -> str:
        with self._lock:
            self._resources[resource] = _Resource(
                policy=_normalised(policy or {}),
                etag=next(self._etags),
                display_name=display_name or resource.partition("/")[2],
                parent=parent,
                labels=dict(labels or {}),
            )
        return resource

    def deny(self, resource: str) -> None:
        """Answer every call on ``resource`` with 403, as Google does without access."""
        with self._lock:
            self._resources[resource].denied = True

    def limit_permissions(self, resource: str, permissions: Iterable[str]) -> None:
        """What testIamPermissions says the caller holds on ``resource``."""
        with self._lock:
            self._resources[resource].caller_permissions = set(permissions)

    def not_grantable(self, resource: str, role: str) -> None:
        """Leave ``role`` out of queryGrantableRoles for ``resource``."""
        with self._lock:
            self._resources[resource].not_grantable.add(role)

    def add_role(
        self,
        name: str,
        *,
        title: str = "Custom role",
        stage: str = "GA",
        deleted: bool = False,
        levels: frozenset[str] = ALL_LEVELS,
        permissions: Iterable[str] = (),
        description: str = "",
    ) -> None:
        """A custom role (``projects/p/roles/x``, ``organizations/o/roles/x``) or a change
        to a predefined one; ``permissions`` are its includedPermissions."""
        with self._lock:
            self._roles[name] = _Role(
                name, title, levels, stage, deleted, frozenset(permissions), description
            )

    def add_group(self, email: str, members: Iterable[str | tuple[str, str]]) -> None:
        """A Google group; members are emails (type USER) or (email, type) pairs."""
        listed = []
        for member in members:
            address, kind = (member, "USER") if isinstance(member, str) else member
            listed.append(_member(address, kind))
        with self._lock:
            self._groups[email.lower()] = listed

    def remove_member(self, group: str, email: str) -> None:
        with self._lock:
            self._groups[group.lower()] = [
                m for m in self._groups[group.lower()] if m["email"] != email.lower()
            ]

    def set_member_status(self, group: str, email: str, status: str) -> None:
        with self._lock:
            for member in self._groups[group.lower()]:
                if member["email"] == email.lower():
                    member["status"] = status

    # ------------------------------------------------------------------ reading

    def policy(self, resource: str) -> Policy:
        """The stored policy of ``resource`` (version 3 view, with its etag)."""
        with self._lock:
            stored = self._resources[resource]
            return {**copy.deepcopy(stored.policy), "etag": _etag(stored.etag)}

    def set_policy(self, resource: str, policy: Policy) -> Policy:
        """Write a policy as another administrator would (the etag changes)."""
        with self._lock:
            stored = self._resources[resource]
            stored.policy = _normalised({k: v for k, v in policy.items() if k != "etag"})
            stored.etag = next(self._etags)
        return self.policy(resource)

    def add_binding(
        self,
        resource: str,
        role: str,
        members: list[str],
        condition: dict[str, str] | None = None,
    ) -> Policy:
        policy = self.policy(resource)
        binding: dict[str, Any] = {"role": role, "members": list(members)}
        if condition is not None:
            binding["condition"] = dict(condition)
            policy["version"] = 3
        policy.setdefault("bindings", []).append(binding)
        return self.set_policy(resource, policy)

    def resources(self) -> list[str]:
        with self._lock:
            return list(self._resources)

    @staticmethod
    def expiry(condition: dict[str, str]) -> datetime | None:
        """When a ``request.time < timestamp("…")`` condition stops granting; None for
        any other condition. Written out here rather than imported from the provider, so
        a parsing bug cannot hide by being mirrored."""
        match = re.fullmatch(
            r'request\.time < timestamp\("(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"\)',
            condition.get("expression", "").strip(),
        )
        if match is None:
            return None
        return datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)

    def live_bindings(
        self, resource: str, member: str, *, at: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The jit-bot bindings (condition titled ``jit-bot …``) that give ``member``
        something on ``resource`` at ``at`` (now by default): not yet expired."""
        return self.live_bindings_in(self.policy(resource), member, at=at)

    @classmethod
    def live_bindings_in(
        cls, policy: Policy, member: str, *, at: datetime | None = None
    ) -> list[dict[str, Any]]:
        """`live_bindings` of a policy as written (one of `policy_writes`, say)."""
        moment = at or datetime.now(UTC)
        found = []
        for binding in policy.get("bindings", []):
            condition = binding.get("condition") or {}
            if not str(condition.get("title", "")).startswith("jit-bot "):
                continue
            if member.lower() not in (m.lower() for m in binding["members"]):
                continue
            expiry = cls.expiry(condition)
            if expiry is not None and expiry > moment:
                found.append(copy.deepcopy(binding))
        return found

    def calls_to(self, operation: str) -> list[GoogleCall]:
        with self._lock:
            return [c for c in self.calls if c.operation == operation]

    # ------------------------------------------------------------------ faults

    def fail_next(
        self, operation: str, *, times: int = 1, status: int = 503, message: str = ""
    ) -> None:
        """Answer the next ``times`` calls of ``operation`` with ``status`` instead."""
        with self._lock:
            self._faults.append(_Fault(operation, times, status, message or f"injected {status}"))

    def before_next(self, operation: str, hook: Callable[[], object]) -> None:
        """Run ``hook`` when the next ``operation`` call arrives, before it is served (for
        example another administrator writing the policy between our read and write)."""
        with self._lock:
            self._hooks.append((operation, hook))

    def chaos(
        self,
        *,
        rate: float = 0.30,
        permanent_rate: float = 0.01,
        seed: int = 0,
        operations: Iterable[str] = ("getIamPolicy", "setIamPolicy"),
    ) -> None:
        """From now on answer a random share of ``operations`` (dice seeded by ``seed``)
        with the faults Google answers. ``rate`` of the calls get a temporary fault, of
        one kind chosen evenly among those the operation can meet: 429 RESOURCE_EXHAUSTED,
        503 UNAVAILABLE, 500 INTERNAL, and for setIamPolicy also a concurrent write that
        changes the etag first (so the call meets Google's own ``409 ABORTED``) and a
        write that is applied but answered 503 (the answer lost). ``permanent_rate`` of
        the calls are refused with 403 PERMISSION_DENIED, as for a role taken away.
        Faults from `fail_next` come first; `calm` ends the chaos."""
        with self._lock:
            self._chaos = _Chaos(frozenset(operations), rate, permanent_rate, random.Random(seed))

    def calm(self) -> None:
        """End `chaos`; `chaos_injected` keeps its count."""
        with self._lock:
            self._chaos = None

    def _roll(self, operation: str) -> str | None:
        """The fault chaos picks for this call, if any (called with the lock held)."""
        chaos = self._chaos
        if chaos is None or operation not in chaos.operations:
            return None
        dice = chaos.rng.random()
        if dice < chaos.permanent_rate:
            return PERMANENT
        if dice >= chaos.permanent_rate + chaos.rate:
            return None
        kinds = list(_TEMPORARY)
        if operation == "setIamPolicy":
            kinds += [CONFLICT, APPLIED_LOST]
        return chaos.rng.choice(kinds)

    def _serve_chaos(
        self, kind: str, operation: str, path: str, body: dict[str, Any], serve: Any
    ) -> tuple[int, Any]:
        """Answer one call as ``kind`` says (called with the lock held)."""
        if kind == PERMANENT:
            return 403, GoogleError(403, PERMANENT_MESSAGE)
        if kind in _TEMPORARY:
            status, message = _TEMPORARY[kind]
            rw = "Read" if operation == "getIamPolicy" else "Write"
            return status, GoogleError(status, message.format(rw=rw))
        if kind == CONFLICT:
            # Another administrator wrote the policy between our read and our write.
            resource = path.removeprefix("/v3/").rpartition(":")[0]
            if resource in self._resources:
                self._resources[resource].etag = next(self._etags)
        try:
            status, answer = 200, serve(body)
        except GoogleError as exc:
            return exc.status, exc
        if kind == APPLIED_LOST:
            return 503, GoogleError(503, "The service is currently unavailable.")
        return status, answer

    # ------------------------------------------------------------------ dispatch

    def _serve(
        self, operation: str, path: str, body: dict[str, Any], authorization: str, serve: Any
    ) -> tuple[int, Any]:
        """Run one operation with fault injection and recording; returns (status, answer),
        the answer being a GoogleError for failures."""
        with self._lock:
            hooks = [h for op, h in self._hooks if op == operation]
            self._hooks = [(op, h) for op, h in self._hooks if op != operation]
        for hook in hooks:
            hook()
        status: int
        answer: Any
        with self._lock:
            fault = next(
                (f for f in self._faults if f.operation == operation and f.remaining > 0), None
            )
            if fault is not None:
                fault.remaining -= 1
                status, answer = fault.status, GoogleError(fault.status, fault.message)
            elif (
                self.require_auth
                and operation != "token"  # the token endpoint is where bearers come from
                and (refusal := self._refuse_bearer(authorization)) is not None
            ):
                answer, status = refusal, 401
            elif (kind := self._roll(operation)) is not None:
                status, answer = self._serve_chaos(kind, operation, path, body, serve)
                # A conflict or lost answer that did not come out as one (a write without
                # an etag, a refusal) is what Google would have answered anyway.
                shown = {CONFLICT: 409, APPLIED_LOST: 503}.get(kind, status)
                if status == shown:
                    self.chaos_injected[f"{operation}: {kind}"] += 1
            else:
                try:
                    status, answer = 200, serve(body)
                except GoogleError as exc:
                    status, answer = exc.status, exc
            self.calls.append(GoogleCall(operation, path, body, authorization, status))
        return status, answer

    def _refuse_bearer(self, authorization: str) -> GoogleError | None:
        """Google's 401 for a call without a token, or with one it did not mint."""
        if not authorization.startswith("Bearer "):
            return GoogleError(
                401,
                "Request is missing required authentication credential. Expected OAuth 2 "
                "access token, login cookie or other valid authentication credential.",
            )
        token = authorization.removeprefix("Bearer ")
        if token in self._issued:
            return None
        # A self-signed JWT is a bearer Google accepts too: the official clients send one
        # instead of asking the token endpoint (always_use_jwt_access) for service accounts.
        try:
            claims = self._signed_claims(token)
        except OAuthError:
            claims = None
        if claims is None or not (claims.get("scope") or claims.get("aud")):
            return GoogleError(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
            )
        return None

    # ------------------------------------------------------------------ Resource Manager

    def _resource(self, name: str) -> _Resource:
        stored = self._resources.get(name)
        if stored is None or stored.denied:
            kind, _, ident = name.partition("/")
            raise GoogleError(
                403,
                f"Permission denied on resource {kind.rstrip('s')} {ident} (or it may not exist).",
            )
        return stored

    def _get_iam_policy(self, resource: str, body: dict[str, Any]) -> Policy:
        stored = self._resource(resource)
        requested = int((body.get("options") or {}).get("requestedPolicyVersion") or 0)
        if requested not in (0, 1, 3):
            raise GoogleError(400, f"Invalid requested policy version {requested}.")
        policy = copy.deepcopy(stored.policy)
        if requested < 3 and any("condition" in b for b in policy.get("bindings", [])):
            # What Google answers a client that did not ask for version 3: conditional
            # bindings lose their condition and their role is renamed, so a client that
            # wrote this back would change them.
            for binding in policy["bindings"]:
                condition = binding.pop("condition", None)
                if condition is not None:
                    digest = hashlib.sha256(json.dumps(condition).encode()).hexdigest()[:20]
                    binding["role"] = f"{binding['role']}_withcond_{digest}"
            policy["version"] = 1
        return {**policy, "etag": _etag(stored.etag)}

    def _set_iam_policy(self, resource: str, body: dict[str, Any]) -> Policy:
        stored = self._resource(resource)
        policy = body.get("policy")
        if not isinstance(policy, dict):
            raise GoogleError(400, "Request contains an invalid argument: policy is required.")
        etag = policy.get("etag")
        if etag and etag != _etag(stored.etag):
            raise GoogleError(
                409,
                "There were concurrent policy changes. Please retry the whole "
                "read-modify-write with exponential backoff.",
            )
        mask = [p.strip() for p in str(body.get("updateMask") or "bindings,etag").split(",")]
        version = int(policy.get("version") or 0)
        if version not in (0, 1, 3):
            raise GoogleError(400, f"Invalid policy version {version}.")
        updated = copy.deepcopy(stored.policy)
        if "bindings" in mask:
            bindings = copy.deepcopy(policy.get("bindings") or [])
            _check_bindings(bindings, version)
            self._check_new_users(stored.policy, bindings)
            updated["bindings"] = bindings
        if "auditConfigs" in mask or "audit_configs" in mask:
            updated["auditConfigs"] = copy.deepcopy(policy.get("auditConfigs") or [])
        has_conditions = any("condition" in b for b in updated.get("bindings", []))
        updated["version"] = 3 if has_conditions else max(version, 1)
        stored.policy = _normalised(updated)
        stored.etag = next(self._etags)
        self.policy_writes.append((resource, copy.deepcopy(stored.policy)))
        return {**copy.deepcopy(stored.policy), "etag": _etag(stored.etag)}

    def _check_new_users(self, old: Policy, bindings: list[dict[str, Any]]) -> None:
        if self.known_users is None:
            return
        present = {m for b in old.get("bindings", []) for m in b["members"]}
        for binding in bindings:
            for member in binding["members"]:
                email = str(member).removeprefix("user:")
                new = member.startswith("user:") and member not in present
                if new and email.lower() not in self.known_users:
                    raise GoogleError(400, f"User {email} does not exist.")

    def _test_iam_permissions(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        stored = self._resource(resource)
        asked = list(body.get("permissions") or [])
        held = stored.caller_permissions
        granted = [p for p in asked if held is None or p in held]
        return {"permissions": granted} if granted else {}

    def _route_resource_manager(
        self, rest: str, query: dict[str, str]
    ) -> tuple[str, Callable[[dict[str, Any]], Any]] | None:
        """``GET /v3/folders?parent=…``, ``GET /v3/projects?parent=…`` (folders.list,
        projects.list) and ``GET /v3/{projects|folders|organizations}/{id}`` (get)."""
        if rest in ("folders", "projects"):
            operation = "listFolders" if rest == "folders" else "listProjects"
            return operation, lambda _: self._list_children(rest, query)
        kind, _, ident = rest.partition("/")
        if kind in ALL_LEVELS and ident and "/" not in ident and ":" not in ident:
            operation = {
                "projects": "getProject",
                "folders": "getFolder",
                "organizations": "getOrganization",
            }[kind]
            return operation, lambda _: self._described(kind, ident)
        return None

    def _described(self, kind: str, ident: str) -> dict[str, Any]:
        """What get answers: a project by its id or its number."""
        name = f"{kind}/{ident}"
        if kind == "projects" and name not in self._resources:
            name = next(
                (n for n in self._resources if n.startswith("projects/") and _number(n) == ident),
                name,
            )
        return self._node(name, self._resource(name))

    def _list_children(self, kind: str, query: dict[str, str]) -> dict[str, Any]:
        """The folders or projects directly under ``parent`` (which must be visible to
        the caller), a page at a time, as Resource Manager v3 lists them."""
        parent = query.get("parent", "")
        if not parent:
            raise GoogleError(400, "Request contains an invalid argument: parent is required.")
        if parent.split("/")[0] not in ("folders", "organizations") or parent.count("/") != 1:
            raise GoogleError(400, f"Request contains an invalid argument: parent {parent}.")
        self._resource(parent)
        names = sorted(
            n for n, r in self._resources.items() if n.startswith(f"{kind}/") and r.parent == parent
        )
        start = self._offset(query.get("pageToken", ""))
        size = min(int(query.get("pageSize") or self.page_size), self.page_size)
        answer: dict[str, Any] = {}
        if names[start : start + size]:
            answer[kind] = [self._node(n, self._resources[n]) for n in names[start : start + size]]
        if start + size < len(names):
            answer["nextPageToken"] = str(start + size)
        return answer

    @staticmethod
    def _node(name: str, stored: _Resource) -> dict[str, Any]:
        """A Project, Folder or Organization resource as v3 answers it (a project is
        named by its number there, its id in projectId)."""
        kind, _, ident = name.partition("/")
        node: dict[str, Any] = {"name": name, "displayName": stored.display_name}
        node["state"] = "ACTIVE"
        if kind == "projects":
            node.update(name=f"projects/{_number(name)}", projectId=ident)
            if stored.labels:
                node["labels"] = dict(stored.labels)
        if kind == "organizations":
            node["directoryCustomerId"] = "C0fake00"
        if stored.parent and kind != "organizations":
            node["parent"] = stored.parent
        return node

    # ------------------------------------------------------------------ IAM admin (gRPC)

    def _get_role(self, name: str) -> iam_admin_v1.Role:
        role = self._roles.get(name)
        if role is None:
            raise GoogleError(404, f"The role named {name} was not found.")
        return self._role_message(role, full=True)

    @staticmethod
    def _role_message(role: _Role, *, full: bool) -> iam_admin_v1.Role:
        """A Role as IAM answers it; ``full`` (GetRole, or ListRoles with view FULL)
        includes its permissions."""
        return iam_admin_v1.Role(
            name=role.name,
            title=role.title,
            description=role.description,
            included_permissions=sorted(role.permissions) if full else [],
            stage=getattr(iam_admin_v1.Role.RoleLaunchStage, role.stage),
            deleted=role.deleted,
        )

    def _list_roles(self, request: iam_admin_v1.ListRolesRequest) -> Any:
        """IAM ListRoles: the predefined roles (no parent) or the custom roles defined in
        a project or organization (which must be visible), deleted ones only when asked."""
        parent = request.parent
        if parent:
            if parent.split("/")[0] not in ("projects", "organizations") or parent.count("/") != 1:
                raise GoogleError(400, f"Invalid parent {parent}.")
            self._resource(parent)
            prefix = f"{parent}/roles/"
        else:
            prefix = "roles/"
        names = sorted(
            n
            for n, role in self._roles.items()
            if n.startswith(prefix) and (request.show_deleted or not role.deleted)
        )
        start = self._offset(request.page_token)
        size = min(request.page_size or self.page_size, self.page_size)
        full = request.view == iam_admin_v1.RoleView.FULL
        token = str(start + size) if start + size < len(names) else ""
        return iam_admin_v1.ListRolesResponse(
            roles=[
                self._role_message(self._roles[n], full=full) for n in names[start : start + size]
            ],
            next_page_token=token,
        )

    @staticmethod
    def _offset(token: str) -> int:
        try:
            return int(token or 0)
        except ValueError:
            raise GoogleError(400, "Request contains an invalid argument: page token.") from None

    def _grantable(self, full_name: str) -> list[str]:
        if not full_name.startswith(CRM):
            raise GoogleError(400, f"Invalid full resource name {full_name}.")
        resource = full_name.removeprefix(CRM)
        stored = self._resource(resource)
        kind = resource.split("/")[0]
        names = []
        for role in self._roles.values():
            if role.deleted or role.name in stored.not_grantable:
                continue
            if role.name.startswith("roles/") and kind not in role.levels:
                continue
            if role.name.startswith("projects/") and not role.name.startswith(f"{resource}/"):
                continue  # a project's custom roles are grantable on that project only
            names.append(role.name)
        return sorted(names)

    def _iam_handlers(self) -> grpc.GenericRpcHandler:
        def unary(
            operation: str,
            request_type: Any,
            response_type: Any,
            serve: Callable[[Any], Any],
        ) -> grpc.RpcMethodHandler:
            def handle(request: Any, context: grpc.ServicerContext) -> Any:
                try:
                    metadata = dict(context.invocation_metadata())
                    body = json_format.MessageToDict(type(request).pb(request))
                    status, answer = self._serve(
                        operation,
                        f"/google.iam.admin.v1.IAM/{operation}",
                        body,
                        str(metadata.get("authorization", "")),
                        lambda _: serve(request),
                    )
                except Exception as exc:
                    # A bug in the fake must fail the test, not pass as a gRPC error.
                    self.internal_errors.append(exc)
                    context.abort(grpc.StatusCode.INTERNAL, f"fake internal error: {exc}")
                if isinstance(answer, GoogleError):
                    context.abort(_GRPC_CODES.get(status, grpc.StatusCode.UNKNOWN), answer.message)
                return answer

            return grpc.unary_unary_rpc_method_handler(
                handle,
                request_deserializer=request_type.deserialize,
                response_serializer=response_type.serialize,
            )

        def query(request: iam_admin_v1.QueryGrantableRolesRequest) -> Any:
            names = self._grantable(request.full_resource_name)
            start = int(request.page_token or 0)
            size = min(request.page_size or self.page_size, self.page_size)
            page = names[start : start + size]
            token = str(start + size) if start + size < len(names) else ""
            return iam_admin_v1.QueryGrantableRolesResponse(
                roles=[self._get_role(n) for n in page], next_page_token=token
            )

        return grpc.method_handlers_generic_handler(
            "google.iam.admin.v1.IAM",
            {
                "GetRole": unary(
                    "GetRole",
                    iam_admin_v1.GetRoleRequest,
                    iam_admin_v1.Role,
                    lambda request: self._get_role(request.name),
                ),
                "ListRoles": unary(
                    "ListRoles",
                    iam_admin_v1.ListRolesRequest,
                    iam_admin_v1.ListRolesResponse,
                    self._list_roles,
                ),
                "QueryGrantableRoles": unary(
                    "QueryGrantableRoles",
                    iam_admin_v1.QueryGrantableRolesRequest,
                    iam_admin_v1.QueryGrantableRolesResponse,
                    query,
                ),
            },
        )

    # ------------------------------------------------------------------ Directory API

    def _list_members(self, group: str, query: dict[str, str]) -> dict[str, Any]:
        if self.directory_denied:
            raise GoogleError(403, "Not Authorized to access this resource/api")
        key = group.lower()
        if key not in self._groups:
            raise GoogleError(404, "Resource Not Found: groupKey")
        members = list(self._groups[key])
        if query.get("includeDerivedMembership") == "true":
            members = self._derived(key, set())
        try:
            start = int(base64.urlsafe_b64decode(query["pageToken"])) if "pageToken" in query else 0
        except ValueError:
            raise GoogleError(400, "Invalid Input: pageToken") from None
        size = min(int(query.get("maxResults") or 200), 200, self.page_size)
        page = members[start : start + size]
        answer: dict[str, Any] = {"kind": "admin#directory#members", "etag": '"fake"'}
        if page:
            answer["members"] = copy.deepcopy(page)
        if start + size < len(members):
            answer["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        return answer

    def _derived(self, group: str, seen: set[str]) -> list[dict[str, str]]:
        """Direct members, then the members of nested groups, each once."""
        seen.add(group)
        found: list[dict[str, str]] = []
        for member in self._groups.get(group, []):
            found.append(member)
            if member["type"] == "GROUP" and member["email"] not in seen:
                found += self._derived(member["email"], seen)
        unique: dict[str, dict[str, str]] = {}
        for member in found:
            unique.setdefault(member["email"], member)
        return list(unique.values())

    # ------------------------------------------------------------------ OAuth / IAM Credentials

    def _token(self, form: dict[str, str]) -> dict[str, Any]:
        """The JWT-bearer grant: the assertion must be signed (RS256) by a key Google
        issued to its ``iss``, be addressed to Google's token URI, be short-lived and current,
        and ask for scopes; otherwise Google's OAuth error."""
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            raise OAuthError("unsupported_grant_type", "Invalid grant_type: ")
        claims = self._verified_claims(form.get("assertion", ""))
        token = f"ya29.fake-{next(self._tokens)}"
        self.token_grants[token] = claims
        self._issued.add(token)
        return {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}

    def _verified_claims(self, assertion: str) -> dict[str, Any]:
        """The claims of a grant assertion, or the OAuth error Google answers for it."""
        claims = self._signed_claims(assertion)
        # The audience is Google's token URI wherever the request is sent (google-auth
        # writes it so even when a key's token_uri points elsewhere, as here).
        if claims.get("aud") != GOOGLE_TOKEN_URI:
            raise OAuthError(
                "invalid_grant",
                f"Invalid JWT: Failed audience check. The right audience is {GOOGLE_TOKEN_URI}",
            )
        if not str(claims.get("scope", "")).strip():
            raise OAuthError("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        return claims

    def _signed_claims(self, jwt: str) -> dict[str, Any]:
        """The claims of a JWT signed (RS256) by a key Google issued to its ``iss``, short-
        lived and current; otherwise OAuthError with Google's ``invalid_grant`` text."""
        try:
            header_b64, payload_b64, signature_b64 = jwt.split(".")
            header = json.loads(_unb64(header_b64))
            claims = json.loads(_unb64(payload_b64))
            signature = _unb64(signature_b64)
        except ValueError:
            raise OAuthError("invalid_grant", "Invalid JWT: Malformed assertion.") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise OAuthError("invalid_grant", "Invalid JWT: Malformed assertion.")
        if header.get("alg") != "RS256":
            raise OAuthError("invalid_grant", "Invalid JWT Signature.")
        account = str(claims.get("iss", ""))
        public = self._keys.get((account, str(header.get("kid", ""))))
        if public is None:
            # Google's answer for a key it does not hold for that account (never issued,
            # or deleted): the signature cannot be checked, so it is not valid.
            if not any(email == account for email, _ in self._keys):
                raise OAuthError("invalid_grant", "Invalid grant: account not found")
            raise OAuthError("invalid_grant", "Invalid JWT Signature.")
        try:
            public.verify(
                signature,
                f"{header_b64}.{payload_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            raise OAuthError("invalid_grant", "Invalid JWT Signature.") from None
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if (
            not isinstance(iat, int | float)
            or not isinstance(exp, int | float)
            or iat > now + CLOCK_SKEW
            or exp <= now - CLOCK_SKEW
            or exp <= iat
            or exp - iat > 3600
        ):
            raise OAuthError(
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                "reasonable timeframe. Check your iat and exp values in the JWT claim.",
            )
        return claims

    def _generate_access_token(self, account: str, body: dict[str, Any]) -> dict[str, Any]:
        if not body.get("scope"):
            raise GoogleError(400, "Request contains an invalid argument: scope is required.")
        token = f"ya29.impersonated-{next(self._tokens)}"
        self._issued.add(token)
        self.impersonations.append({"account": account, "token": token, **body})
        return {"accessToken": token, "expireTime": "2099-01-01T00:00:00Z"}

    # ------------------------------------------------------------------ HTTP routing

    def _handle_http(
        self, method: str, raw_path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        authorization = headers.get("authorization", "")
        directory = path.startswith("/admin/directory/v1/")
        if method == "POST" and path == "/token":
            form = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
            status, answer = self._serve("token", path, form, "", lambda b: self._token(b))
            if isinstance(answer, OAuthError):  # OAuth's own error shape (RFC 6749 5.2)
                return status, {"error": answer.error, "error_description": answer.message}
            if isinstance(answer, GoogleError):  # an injected fault
                return status, {"error": "internal_failure", "error_description": answer.message}
            return status, answer
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return 400, _google_error(400, "Invalid JSON payload received.", directory)
        route = self._route(method, path, query)
        if route is None:
            return 404, _google_error(404, f"No such method: {method} {path}", directory)
        operation, serve = route
        status, answer = self._serve(operation, path, body, authorization, serve)
        if isinstance(answer, GoogleError):
            return status, _google_error(status, answer.message, directory)
        return status, answer

    def _route(
        self, method: str, path: str, query: dict[str, str]
    ) -> tuple[str, Callable[[dict[str, Any]], Any]] | None:
        if method == "POST" and path.startswith("/v3/") and ":" in path:
            resource, _, verb = path.removeprefix("/v3/").rpartition(":")
            if resource.split("/")[0] in ALL_LEVELS and resource.count("/") == 1:
                serve = {
                    "getIamPolicy": self._get_iam_policy,
                    "setIamPolicy": self._set_iam_policy,
                    "testIamPermissions": self._test_iam_permissions,
                }.get(verb)
                if serve is not None:
                    return verb, lambda body: serve(resource, body)
        if method == "GET" and path.startswith("/v3/"):
            found = self._route_resource_manager(path.removeprefix("/v3/"), query)
            if found is not None:
                return found
        prefix, suffix = "/admin/directory/v1/groups/", "/members"
        if method == "GET" and path.startswith(prefix) and path.endswith(suffix):
            group = path[len(prefix) : -len(suffix)]
            return "members.list", lambda _: self._list_members(group, query)
        credentials = "/v1/projects/-/serviceAccounts/"
        if (
            method == "POST"
            and path.startswith(credentials)
            and path.endswith(":generateAccessToken")
        ):
            account = path[len(credentials) :].removesuffix(":generateAccessToken")
            return "generateAccessToken", lambda body: self._generate_access_token(account, body)
        return None


# ---------------------------------------------------------------------- helpers


def _number(project: str) -> str:
    """A project's number: twelve digits Google gives it, here made from its id."""
    digest = hashlib.sha256(project.encode()).hexdigest()
    return str(100_000_000_000 + int(digest, 16) % 900_000_000_000)


def _etag(counter: int) -> str:
    return base64.b64encode(struct.pack(">Q", counter)).decode()


def _normalised(policy: Policy) -> Policy:
    """The stored form: no etag, empty fields left out as Google leaves them out."""
    out = {k: copy.deepcopy(v) for k, v in policy.items() if k != "etag" and v not in ([], None)}
    if any("condition" in b for b in out.get("bindings", [])):
        out["version"] = 3
    out.setdefault("version", 1)
    return out


def _member(email: str, kind: str = "USER", status: str = "ACTIVE") -> dict[str, str]:
    member = {
        "kind": "admin#directory#member",
        "etag": '"fake"',
        "id": hashlib.sha256(email.lower().encode()).hexdigest()[:21],
        "email": email.lower(),
        "role": "MEMBER",
        "type": kind,
    }
    if kind == "USER":
        member["status"] = status
    return member


def _check_bindings(bindings: list[dict[str, Any]], version: int) -> None:
    for binding in bindings:
        role = binding.get("role")
        if not role:
            raise GoogleError(400, "Request contains an invalid argument: binding without role.")
        members = binding.get("members") or []
        if not members:
            raise GoogleError(400, f"Request contains an invalid argument: {role} has no members.")
        for member in members:
            kind, _, rest = str(member).partition(":")
            if kind in ("user", "group", "serviceAccount", "domain") and not rest:
                raise GoogleError(400, f"Invalid member {member}.")
            if kind == "user" and "@" not in rest:
                raise GoogleError(400, f"Invalid member {member}.")
        condition = binding.get("condition")
        if condition is None:
            continue
        if version != 3:
            raise GoogleError(
                400,
                "Request contains an invalid argument: a policy with conditional role "
                "bindings must have version 3.",
            )
        if role in BASIC_ROLES:
            raise GoogleError(
                400,
                f"Request contains an invalid argument: conditions are not supported for "
                f"basic role {role}.",
            )
        if not condition.get("expression"):
            raise GoogleError(400, "Request contains an invalid argument: condition expression.")
        if not condition.get("title") or len(condition["title"]) > 100:
            raise GoogleError(400, "Request contains an invalid argument: condition title.")
        if len(condition.get("description", "")) > 256:
            raise GoogleError(400, "Request contains an invalid argument: condition description.")


def _google_error(status: int, message: str, directory: bool) -> dict[str, Any]:
    if directory:
        reason = _DIRECTORY_REASONS.get(status, "backendError")
        return {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"message": message, "domain": "global", "reason": reason}],
            }
        }
    return {
        "error": {
            "code": status,
            "message": message,
            "status": _STATUS_NAMES.get(status, "UNKNOWN"),
        }
    }


_KEY_PEMS: dict[str, str] = {}


def _private_key_pem() -> str:
    """The private key of every service account the fake issues a key to (made once per
    run: RSA key generation is slow)."""
    return _generated("issued")


def _other_private_key_pem() -> str:
    """A key Google never issued: assertions signed with it must be refused."""
    return _generated("unknown")


def _generated(name: str) -> str:
    if name not in _KEY_PEMS:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _KEY_PEMS[name] = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    return _KEY_PEMS[name]


def _unb64(text: str) -> bytes:
    """base64url without padding, as JWTs carry it."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, fake: FakeGoogle) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; with Nagle on, a kept-alive connection
    # waits for the client's delayed ACK (~40 ms) between them on every call.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        fake = self.server.fake
        try:
            status, answer = fake._handle_http(method, self.path, headers, raw)
        except Exception as exc:
            # A bug in the fake must fail the test, not hang or reset the connection.
            fake.internal_errors.append(exc)
            status, answer = 500, _google_error(500, f"fake internal error: {exc}", False)
        body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # FakeGoogle.calls is the log
