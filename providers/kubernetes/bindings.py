"""jit-bot's RBAC bindings: how one is named, built and recognised.

A grant is one RoleBinding per namespace (or one ClusterRoleBinding) named after the
request, ``jit-<request id>``, whose one subject is the person's user. It is labelled
``app.kubernetes.io/managed-by: jit-bot`` (drift lists bindings by that label) and
annotated with the request id, the requester's email and the expiry. Only bindings with
that label and the request's annotation are ever changed or deleted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from kubernetes import client

RBAC_GROUP = "rbac.authorization.k8s.io"
MANAGED_BY = "app.kubernetes.io/managed-by"
OURS = "jit-bot"
SELECTOR = f"{MANAGED_BY}={OURS}"
REQUEST = "jit-bot.io/request-id"
REQUESTER = "jit-bot.io/requester"
EXPIRES = "jit-bot.io/expires-at"


def binding_name(request_id: str) -> str:
    """``jit-<request id>`` as a DNS subdomain (lower case; anything else a hyphen)."""
    return "jit-" + re.sub(r"[^a-z0-9.-]", "-", request_id.lower()).strip("-.")[:240]


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def metadata(name: str, request_id: str, email: str, expires_at: datetime) -> client.V1ObjectMeta:
    return client.V1ObjectMeta(
        name=name,
        labels={MANAGED_BY: OURS},
        annotations={REQUEST: request_id, REQUESTER: email.lower(), EXPIRES: stamp(expires_at)},
    )


def role_ref(cluster_role: str) -> client.V1RoleRef:
    return client.V1RoleRef(api_group=RBAC_GROUP, kind="ClusterRole", name=cluster_role)


def user_subject(user: str) -> client.RbacV1Subject:
    return client.RbacV1Subject(api_group=RBAC_GROUP, kind="User", name=user)


@dataclass(frozen=True)
class Seen:
    """A RoleBinding or ClusterRoleBinding as read back, in the terms jit-bot needs."""

    name: str
    uid: str
    cluster_role: str | None
    users: tuple[str, ...]
    labels: dict[str, str]
    annotations: dict[str, str]

    @classmethod
    def of(cls, binding: client.V1RoleBinding | client.V1ClusterRoleBinding) -> Seen:
        meta = binding.metadata or client.V1ObjectMeta()
        ref = binding.role_ref
        return cls(
            name=meta.name or "",
            uid=meta.uid or "",
            cluster_role=ref.name if ref is not None and ref.kind == "ClusterRole" else None,
            users=tuple(
                s.name
                for s in binding.subjects or []
                if s.kind == "User" and (s.api_group or RBAC_GROUP) == RBAC_GROUP
            ),
            labels=dict(meta.labels or {}),
            annotations=dict(meta.annotations or {}),
        )

    def ours(self) -> bool:
        return self.labels.get(MANAGED_BY) == OURS and REQUEST in self.annotations

    def of_request(self, request_id: str, cluster_role: str, user: str) -> bool:
        """jit-bot's binding for this request, role and user (a retried grant's)."""
        return (
            self.ours()
            and self.annotations.get(REQUEST) == request_id
            and self.cluster_role == cluster_role
            and self.users == (user,)
        )

    def gives(self, cluster_role: str, user: str) -> bool:
        return self.cluster_role == cluster_role and user in self.users

    def expires_at(self) -> datetime | None:
        try:
            return datetime.strptime(
                self.annotations.get(EXPIRES, ""), "%Y-%m-%dT%H:%M:%SZ"
            ).replace(tzinfo=UTC)
        except ValueError:
            return None
