"""A Kubernetes API server for tests: a local HTTPS server that follows the published API
contract for what jit-bot uses, so the official ``kubernetes`` client reaches it exactly as
it reaches a cluster.

What it serves (JSON only, as the client speaks it):

- ``core/v1`` namespaces: ``GET /api/v1/namespaces[/{name}]``;
- ``rbac.authorization.k8s.io/v1`` RoleBindings (``/apis/rbac…/v1/namespaces/{ns}/
  rolebindings[/{name}]``), ClusterRoleBindings (``/apis/rbac…/v1/clusterrolebindings
  [/{name}]``): list (with ``labelSelector``), create (``dryRun=All``: checked, answered,
  not stored), read, patch (by its Content-Type: merge, strategic merge or JSON Patch;
  415 for others), delete (with ``preconditions.uid``); ClusterRoles: list and read;
- ``authorization.k8s.io/v1`` ``POST selfsubjectaccessreviews``: allowed unless a test
  said `deny` for that verb, API group, resource and namespace (and object name, where
  it named one). RBAC's escalation prevention on create: a binding of a ClusterRole the
  bot does not fully hold (`withhold`) needs ``bind`` on it in that namespace.

As the API server does, it answers errors as ``Status`` objects (``404 NotFound``, ``409
AlreadyExists`` / ``Conflict``, ``422 Invalid`` for a name that is not a path segment,
``401 Unauthorized``), sets ``uid``, ``resourceVersion`` and ``creationTimestamp`` on what
it stores, keeps an object with finalizers when it is deleted (marked with a
``deletionTimestamp``, gone once its last finalizer is), refuses a namespaced object in a
namespace that does not exist (a list there is empty), and checks the
bearer token on every request (``token``, or one ``authenticator`` accepts, as an EKS
cluster accepts an STS-presigned token). Label selectors take the equality, set and
existence forms (``a=b``, ``a!=b``, ``a in (b,c)``, ``a notin (b)``, ``a``, ``!a``).

Tests seed and read state through methods (`add_namespace`, `add_cluster_role`,
`role_bindings`, `add_role_binding` …), inject faults (`fail_next` with a status and a
Retry-After, `unreachable` for a cluster that does not answer at all) and read `calls`.
Exceptions inside the handlers are answered 500 and kept in ``internal_errors``.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import re
import secrets
import socket
import ssl
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.fakes.azure import _tls_context

Obj = dict[str, Any]

RBAC = "rbac.authorization.k8s.io"
MANAGED_BY = "app.kubernetes.io/managed-by"

_REASONS = {
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "AlreadyExists",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}
# Kinds as the API names them: path segment → (kind, list kind).
_KINDS = {
    "rolebindings": ("RoleBinding", "RoleBindingList"),
    "clusterrolebindings": ("ClusterRoleBinding", "ClusterRoleBindingList"),
    "clusterroles": ("ClusterRole", "ClusterRoleList"),
    "namespaces": ("Namespace", "NamespaceList"),
}
# The ClusterRoles every cluster has (an excerpt of their rules).
DEFAULT_CLUSTER_ROLES: dict[str, list[Obj]] = {
    "cluster-admin": [
        {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
        {"nonResourceURLs": ["*"], "verbs": ["*"]},
    ],
    "admin": [
        {"apiGroups": [""], "resources": ["pods", "services", "secrets"], "verbs": ["*"]},
        {"apiGroups": [RBAC], "resources": ["rolebindings", "roles"], "verbs": ["*"]},
    ],
    "edit": [
        {"apiGroups": ["", "apps"], "resources": ["pods", "deployments"], "verbs": ["*"]},
    ],
    "view": [
        {
            "apiGroups": ["", "apps"],
            "resources": ["pods", "deployments"],
            "verbs": ["get", "list", "watch"],
        }
    ],
}


class ApiError(Exception):
    """Raised inside the fake to answer a ``Status`` failure."""

    def __init__(self, code: int, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or _REASONS.get(code, "Unknown")


@dataclass(frozen=True)
class KubeCall:
    """One request the fake received."""

    method: str
    path: str
    query: str
    body: Obj | None
    status: int


@dataclass
class _Fault:
    method: str
    resource: str
    remaining: int
    code: int
    retry_after: str | None
    applied: bool = False


class FakeKubernetes:
    """The API server. ``start()`` listens on 127.0.0.1 over HTTPS (a CA of its own, whose
    certificate is `ca_pem`); `kubeconfig` writes a file the official client loads."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._dir = Path(tempfile.mkdtemp(prefix="fake-kubernetes-"))
        self._server: ThreadingHTTPServer | None = None
        self._context: ssl.SSLContext | None = None
        self._port = 0
        self._versions = itertools.count(1)
        self.token = "fake-token-" + secrets.token_hex(8)
        #: Accepts other bearer tokens too where it says so (an EKS token's check).
        self.authenticator: Callable[[str], bool] | None = None
        self.internal_errors: list[BaseException] = []
        self.reset()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeKubernetes:
        if self._context is None:  # one CA for the fake's life: clients keep trusting it
            self._context = _tls_context(self._dir)
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.fake = self
        server.socket = self._context.wrap_socket(server.socket, server_side=True)
        self._port = server.server_address[1]
        self._server = server
        threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="FakeKubernetes",
            daemon=True,
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @contextmanager
    def unreachable(self) -> Iterator[None]:
        """Nothing listens on the fake's port inside the block (connections are refused,
        as by a cluster that is down); afterwards it answers again on the same port."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def reset(self) -> None:
        """Only the default ClusterRoles and namespaces; no bindings, faults or calls."""
        with self._lock:
            self._namespaces: dict[str, Obj] = {}
            self._cluster_roles: dict[str, Obj] = {}
            self._role_bindings: dict[tuple[str, str], Obj] = {}
            self._cluster_role_bindings: dict[str, Obj] = {}
            self._denied: set[tuple[str, str, str, str, str]] = set()
            self._withheld: set[str] = set()
            self._faults: list[_Fault] = []
            self.calls: list[KubeCall] = []
            self.tokens: list[str] = []  # every bearer token received, in order
            self.authenticator = None
            self.internal_errors.clear()
            for name in ("default", "kube-system"):
                self.add_namespace(name)
            for name, rules in DEFAULT_CLUSTER_ROLES.items():
                self.add_cluster_role(name, rules)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._port}"

    @property
    def ca_path(self) -> Path:
        """Where the certificate of the CA that issued the server's is kept."""
        return self._dir / "ca.pem"

    @property
    def ca_pem(self) -> bytes:
        """The certificate of the CA that issued the server's: what a client trusts."""
        return self.ca_path.read_bytes()

    def kubeconfig(self, path: Path, *, context: str = "fake", token: str | None = None) -> Path:
        """A kubeconfig with one context, ``context``, that reaches this server with the
        bot's bearer token (or ``token``) and trusts its CA."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "fake-cluster",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority": str(self._dir / "ca.pem"),
                    },
                }
            ],
            "users": [{"name": "jit-bot", "user": {"token": token or self.token}}],
            "contexts": [
                {"name": context, "context": {"cluster": "fake-cluster", "user": "jit-bot"}}
            ],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(config))
        return path

    # ------------------------------------------------------------------ seeding

    def add_namespace(self, name: str) -> None:
        with self._lock:
            self._namespaces[name] = self._stored(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            )

    def add_cluster_role(self, name: str, rules: list[Obj]) -> None:
        with self._lock:
            self._cluster_roles[name] = self._stored(
                {
                    "apiVersion": f"{RBAC}/v1",
                    "kind": "ClusterRole",
                    "metadata": {"name": name},
                    "rules": rules,
                }
            )

    def add_role_binding(self, namespace: str, binding: Obj) -> Obj:
        """Store a RoleBinding as if someone had created it (by hand, by Terraform)."""
        with self._lock:
            stored = self._stored({"apiVersion": f"{RBAC}/v1", "kind": "RoleBinding", **binding})
            stored["metadata"]["namespace"] = namespace
            self._role_bindings[(namespace, stored["metadata"]["name"])] = stored
            return copy.deepcopy(stored)

    def edit_role_binding(self, namespace: str, name: str, patch: Obj) -> None:
        """Change a RoleBinding as someone with kubectl would (a JSON merge patch): a
        label or finalizer added or taken away."""
        with self._lock:
            self._patch(_InNamespace(self._role_bindings, namespace), name, patch)

    def remove_role_binding(self, namespace: str, name: str) -> None:
        with self._lock:
            del self._role_bindings[(namespace, name)]

    def deny(
        self, verb: str, resource: str, namespace: str = "", *, name: str = "", group: str = RBAC
    ) -> None:
        """SelfSubjectAccessReviews for ``verb`` on ``resource`` of API ``group`` in
        ``namespace`` ("" for cluster scope) answer "not allowed" from now on: for the
        object ``name``, or without a name for every one."""
        with self._lock:
            self._denied.add((verb, group, resource, namespace, name))

    def withhold(self, cluster_role: str) -> None:
        """The bot does not hold every permission of ``cluster_role`` from now on: a
        binding of it is refused (403) unless the bot may ``bind`` it there (`deny`)."""
        with self._lock:
            self._withheld.add(cluster_role)

    def fail_next(
        self,
        method: str,
        resource: str,
        *,
        times: int = 1,
        code: int = 503,
        retry_after: float | None = None,
        applied: bool = False,
    ) -> None:
        """Answer the next ``times`` ``method`` requests on ``resource`` (``rolebindings``,
        ``clusterroles`` …) with ``code`` and nothing applied; with ``applied``, the request
        is carried out and only its answer is lost (a timeout after the write landed)."""
        with self._lock:
            after = None if retry_after is None else str(retry_after)
            self._faults.append(_Fault(method, resource, times, code, after, applied))

    # ------------------------------------------------------------------ reading

    def role_bindings(self, namespace: str) -> list[Obj]:
        with self._lock:
            found = [b for (ns, _), b in sorted(self._role_bindings.items()) if ns == namespace]
            return copy.deepcopy(found)

    def cluster_role_bindings(self) -> list[Obj]:
        with self._lock:
            return copy.deepcopy([b for _, b in sorted(self._cluster_role_bindings.items())])

    def managed(self, namespace: str | None = None) -> list[Obj]:
        """The bindings labelled as managed by jit-bot: a namespace's RoleBindings, or the
        ClusterRoleBindings when ``namespace`` is None."""
        found = self.role_bindings(namespace) if namespace else self.cluster_role_bindings()
        return [b for b in found if b["metadata"].get("labels", {}).get(MANAGED_BY) == "jit-bot"]

    def calls_to(self, method: str, resource: str) -> list[KubeCall]:
        with self._lock:
            return [c for c in self.calls if c.method == method and _resource(c.path) == resource]

    # ------------------------------------------------------------------ serving

    def handle(
        self, method: str, target: str, headers: Any, body: Obj | None
    ) -> tuple[int, Obj, dict[str, str]]:
        split = urlsplit(target)
        status, answer, extra = self._answer(method, split.path, split.query, headers, body)
        with self._lock:
            self.calls.append(KubeCall(method, split.path, split.query, body, status))
        return status, answer, extra

    def _answer(
        self, method: str, path: str, query: str, headers: Any, body: Obj | None
    ) -> tuple[int, Obj, dict[str, str]]:
        try:
            if not self._authenticated(str(headers.get("Authorization") or "")):
                raise ApiError(401, "Unauthorized")
            kind_of_patch = str(headers.get("Content-Type") or "").split(";")[0].strip()
            fault = self._fault(method, _resource(path))
            if fault is not None and fault.applied:
                with self._lock:
                    self._route(method, path, parse_qs(query), body, kind_of_patch)
            if fault is not None:
                extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                return fault.code, _status(ApiError(fault.code, "injected fault")), extra
            with self._lock:
                status, answer = self._route(method, path, parse_qs(query), body, kind_of_patch)
            return status, answer, {}
        except ApiError as exc:
            return exc.code, _status(exc), {}
        except Exception as exc:  # the fake's own bug: answered, and failed by the fixture
            self.internal_errors.append(exc)
            return 500, _status(ApiError(500, f"fake failed: {exc!r}")), {}

    def _authenticated(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        if scheme != "Bearer" or not token:
            return False
        with self._lock:
            self.tokens.append(token)
        authenticator = self.authenticator
        return token == self.token or (authenticator is not None and authenticator(token))

    def _fault(self, method: str, resource: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining and fault.method == method and fault.resource == resource:
                    fault.remaining -= 1
                    return fault
        return None

    def _route(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: Any,
        content_type: str = "",
    ) -> tuple[int, Obj]:
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "v1"] and parts[2:3] == ["namespaces"] and method == "GET":
            return 200, self._get_or_list(self._namespaces, parts[3:], "namespaces", query)
        if parts[:3] == ["apis", "authorization.k8s.io", "v1"] and parts[3:] == [
            "selfsubjectaccessreviews"
        ]:
            if method != "POST" or body is None:
                raise ApiError(405, "method not allowed", "MethodNotAllowed")
            return 201, self._review(body)
        if parts[:3] != ["apis", RBAC, "v1"]:
            raise ApiError(404, "the server could not find the requested resource")
        rest = parts[3:]
        if rest[:1] == ["clusterroles"] and method == "GET":
            return 200, self._get_or_list(self._cluster_roles, rest[1:], "clusterroles", query)
        if rest[:1] == ["clusterrolebindings"]:
            return self._bindings(
                method, self._cluster_role_bindings, "", rest[1:], query, body, content_type
            )
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] == "rolebindings":
            namespace = rest[1]
            if namespace not in self._namespaces and not (method == "GET" and len(rest) == 3):
                # A list there is empty; anything else names what is missing.
                raise ApiError(404, f'namespaces "{namespace}" not found')
            held = _InNamespace(self._role_bindings, namespace)
            return self._bindings(method, held, namespace, rest[3:], query, body, content_type)
        raise ApiError(404, "the server could not find the requested resource")

    def _get_or_list(
        self, store: Any, rest: list[str], resource: str, query: dict[str, list[str]]
    ) -> Obj:
        list_kind = _KINDS[resource][1]
        if rest:
            if rest[0] not in store:
                raise ApiError(404, f'{_qualified(resource)} "{rest[0]}" not found')
            return copy.deepcopy(store[rest[0]])
        selector = _Selector.parse(query.get("labelSelector", [""])[0])
        items = [copy.deepcopy(o) for _, o in sorted(store.items()) if selector.matches(o)]
        api = "v1" if resource == "namespaces" else f"{RBAC}/v1"
        version = str(next(self._versions))
        return {
            "apiVersion": api,
            "kind": list_kind,
            "metadata": {"resourceVersion": version},
            "items": items,
        }

    def _bindings(
        self,
        method: str,
        store: Any,
        namespace: str,
        rest: list[str],
        query: dict[str, list[str]],
        body: Any,
        content_type: str = "",
    ) -> tuple[int, Obj]:
        resource = "rolebindings" if namespace else "clusterrolebindings"
        if method == "GET":
            return 200, self._get_or_list(store, rest, resource, query)
        if method == "POST" and not rest:
            dry_run = query.get("dryRun") == ["All"]
            return 201, self._create(store, namespace, resource, body or {}, dry_run=dry_run)
        if not rest:
            raise ApiError(405, "method not allowed", "MethodNotAllowed")
        name = rest[0]
        if name not in store:
            raise ApiError(404, f'{_qualified(resource)} "{name}" not found')
        if method == "PATCH":
            return 200, self._patch(store, name, body, content_type)
        if method == "DELETE":
            wanted = ((body or {}).get("preconditions") or {}).get("uid")
            if wanted and wanted != store[name]["metadata"]["uid"]:
                raise ApiError(
                    409,
                    f"Precondition failed: UID in precondition: {wanted}, UID in object "
                    f"meta: {store[name]['metadata']['uid']}",
                    "Conflict",
                )
            if store[name]["metadata"].get("finalizers"):
                # Kept until every finalizer is taken away, marked as being deleted.
                stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                store[name]["metadata"].setdefault("deletionTimestamp", stamp)
                return 200, copy.deepcopy(store[name])
            del store[name]
            details = {"name": name, "group": RBAC, "kind": resource}
            return 200, {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            }
        raise ApiError(405, "method not allowed", "MethodNotAllowed")

    def _create(
        self, store: Any, namespace: str, resource: str, body: Obj, *, dry_run: bool = False
    ) -> Obj:
        kind = _KINDS[resource][0]
        metadata = body.get("metadata") or {}
        name = metadata.get("name", "")
        problems = []
        if body.get("kind") not in (None, kind):
            problems.append(f"kind: Invalid value: {body.get('kind')!r}")
        problem = _rbac_name_problem(name)
        if problem:
            problems.append(f"metadata.name: Invalid value: {name!r}: {problem}")
        role_ref = body.get("roleRef") or {}
        if role_ref.get("kind") not in ("ClusterRole", "Role") or not role_ref.get("name"):
            problems.append("roleRef: Required value")
        for subject in body.get("subjects") or []:
            if subject.get("kind") not in ("User", "Group", "ServiceAccount"):
                problems.append(f"subjects.kind: Unsupported value: {subject.get('kind')!r}")
        if problems:
            raise ApiError(422, f'{kind} "{name}" is invalid: ' + ", ".join(problems))
        if name in store:
            raise ApiError(409, f'{_qualified(resource)} "{name}" already exists')
        self._escalation_check(namespace, role_ref["name"], name)
        stored = self._stored({**body, "apiVersion": f"{RBAC}/v1", "kind": kind})
        if namespace:
            stored["metadata"]["namespace"] = namespace
        if dry_run:  # validated and answered as if made; nothing is kept
            return stored
        store[name] = stored
        return copy.deepcopy(stored)

    def _patch(
        self,
        store: Any,
        name: str,
        patch: Any,
        content_type: str = "application/merge-patch+json",
    ) -> Obj:
        """A patch of the Content-Type given (`_patched`)."""
        updated = _patched(store[name], patch, content_type)
        updated["metadata"]["resourceVersion"] = str(next(self._versions))
        store[name] = updated
        metadata = updated["metadata"]
        if metadata.get("deletionTimestamp") and not metadata.get("finalizers"):
            del store[name]  # its last finalizer gone: deleted now
        return copy.deepcopy(updated)

    def _escalation_check(self, namespace: str, role: str, name: str) -> None:
        """RBAC's escalation prevention: a binding of a ClusterRole whose permissions the
        bot does not all hold (`withhold`) is made only if it may ``bind`` that role."""
        if role not in self._withheld:
            return
        if self._allowed(("bind", RBAC, "clusterroles", namespace), role):
            return
        raise ApiError(
            403,
            f'rolebindings.{RBAC} "{name}" is forbidden: user "jit-bot" is attempting to '
            f"grant RBAC permissions not currently held (ClusterRole {role})",
        )

    def _allowed(self, key: tuple[str, str, str, str], name: str) -> bool:
        return (*key, "") not in self._denied and (*key, name) not in self._denied

    def _review(self, body: Obj) -> Obj:
        attributes = (body.get("spec") or {}).get("resourceAttributes") or {}
        key = (
            attributes.get("verb", ""),
            attributes.get("group", "") or "",
            attributes.get("resource", ""),
            attributes.get("namespace", "") or "",
        )
        allowed = self._allowed(key, attributes.get("name", "") or "")
        status: Obj = {"allowed": allowed}
        if not allowed:
            status["reason"] = "RBAC: no rule allows it"
        return {**body, "status": status}

    def _stored(self, obj: Obj) -> Obj:
        stored = copy.deepcopy(obj)
        metadata = stored.setdefault("metadata", {})
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata["resourceVersion"] = str(next(self._versions))
        metadata.setdefault("creationTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        return stored


class _InNamespace:
    """One namespace's RoleBindings, as a mapping of name → binding."""

    def __init__(self, store: dict[tuple[str, str], Obj], namespace: str) -> None:
        self._store = store
        self._namespace = namespace

    def __contains__(self, name: object) -> bool:
        return (self._namespace, name) in self._store

    def __getitem__(self, name: str) -> Obj:
        return self._store[(self._namespace, name)]

    def __setitem__(self, name: str, value: Obj) -> None:
        self._store[(self._namespace, name)] = value

    def __delitem__(self, name: str) -> None:
        del self._store[(self._namespace, name)]

    def items(self) -> list[tuple[str, Obj]]:
        return [(n, o) for (ns, n), o in self._store.items() if ns == self._namespace]


@dataclass(frozen=True)
class _Selector:
    """A label selector (the API server's grammar, without its rarely used spacing)."""

    requirements: tuple[tuple[str, str, frozenset[str]], ...]

    @classmethod
    def parse(cls, text: str) -> _Selector:
        requirements = []
        for part in re.findall(r"[^,(]+(?:\([^)]*\))?", text):
            part = part.strip()
            if not part:
                continue
            match = re.fullmatch(
                r"(!?)([\w./-]+)\s*(?:(=|==|!=)\s*([\w.-]*)|\s+(in|notin)\s*\(([^)]*)\))?", part
            )
            if match is None:
                raise ApiError(400, f"unable to parse requirement: {part!r}", "BadRequest")
            bang, key, op, value, set_op, values = match.groups()
            if bang:
                requirements.append((key, "!", frozenset()))
            elif op:
                requirements.append((key, "!=" if op == "!=" else "=", frozenset([value])))
            elif set_op:
                members = frozenset(v.strip() for v in values.split(","))
                requirements.append((key, set_op, members))
            else:
                requirements.append((key, "exists", frozenset()))
        return cls(tuple(requirements))

    def matches(self, obj: Obj) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        for key, op, values in self.requirements:
            present, value = key in labels, labels.get(key)
            ok = {
                "!": not present,
                "exists": present,
                "=": present and value in values,
                "in": present and value in values,
                "!=": not present or value not in values,
                "notin": not present or value not in values,
            }[op]
            if not ok:
                return False
        return True


_MERGE_PATCHES = ("application/merge-patch+json", "application/strategic-merge-patch+json")


def _patched(obj: Obj, patch: Any, content_type: str) -> Obj:
    """``obj`` patched as its Content-Type says, as the API server reads it: a JSON merge
    patch or a strategic merge patch (the two agree on the maps jit-bot patches), or a
    JSON Patch of ``add``/``replace``/``remove`` operations under ``/metadata``; any
    other type is 415, and a body not of its type 400."""
    if content_type in _MERGE_PATCHES:
        if not isinstance(patch, dict):
            raise ApiError(400, "a merge patch is a JSON object", "BadRequest")
        return dict(_merge(obj, patch))
    if content_type != "application/json-patch+json":
        raise ApiError(
            415,
            "the body of the request was in an unknown format - accepted media types "
            f"include: application/json-patch+json, {', '.join(_MERGE_PATCHES)}",
            "UnsupportedMediaType",
        )
    if not isinstance(patch, list):
        raise ApiError(400, "a JSON Patch is a list of operations", "BadRequest")
    patched = copy.deepcopy(obj)
    for operation in patch:
        op, path = operation.get("op"), str(operation.get("path", ""))
        parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
        if op not in ("add", "replace", "remove") or parts[:1] != ["metadata"] or len(parts) < 2:
            raise ApiError(422, f"the fake applies no such JSON Patch operation: {operation}")
        at = patched
        for part in parts[:-1]:
            at = at.setdefault(part, {})
        if op == "remove":
            at.pop(parts[-1], None)
        else:
            at[parts[-1]] = copy.deepcopy(operation.get("value"))
    return patched


def _rbac_name_problem(name: str) -> str | None:
    """The API server's ValidateRBACName: any path segment (upper case and colons too)."""
    if not name:
        return "name or generateName is required"
    if name in (".", ".."):
        return f"may not be {name!r}"
    for bad in ("/", "%"):
        if bad in name:
            return f"may not contain {bad!r}"
    return None


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merge(merged.get(key), value)
    return merged


def _resource(path: str) -> str:
    """The resource a request path names: ``rolebindings``, ``namespaces`` …"""
    for part in reversed(path.strip("/").split("/")):
        if part in _KINDS or part == "selfsubjectaccessreviews":
            return part
    return ""


def _qualified(resource: str) -> str:
    return resource if resource == "namespaces" else f"{resource}.{RBAC}"


def _status(error: ApiError) -> Obj:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": error.message,
        "reason": error.reason,
        "code": error.code,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeKubernetes

    def server_activate(self) -> None:
        super().server_activate()
        self.open: set[socket.socket] = set()
        self.open_lock = threading.Lock()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self.open_lock:
            self.open.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.open_lock:
                self.open.discard(request)

    def server_close(self) -> None:
        """Kept-alive connections end too: a stopped server answers nothing at all."""
        super().server_close()
        with self.open_lock:
            for connection in self.open:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the fake records calls instead of printing them."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        status, answer, extra = self.server.fake.handle(self.command, self.path, self.headers, body)
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve
