"""jit-bot's RBAC bindings: how one is named, built and recognised.

A grant is one RoleBinding per namespace (or one ClusterRoleBinding) named after the
request, ``jit-<request id>``, whose one subject is the person's user. It is labelled
``app.kubernetes.io/managed-by: jit-bot`` (drift lists bindings by that label) and
annotated with the request id, the requester's email, the expiry and a hash of the unit
(`unit_hash`: the target, down to its one namespace) it was granted for. Only bindings with
that label and the request's annotation are ever changed or deleted; the annotations say
what jit-bot meant, the subjects say who holds access (drift reads both).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the SDK is imported where it is used
    from kubernetes import client


RBAC_GROUP = "rbac.authorization.k8s.io"
MANAGED_BY = "app.kubernetes.io/managed-by"
OURS = "jit-bot"
SELECTOR = f"{MANAGED_BY}={OURS}"
REQUEST = "jit-bot.io/request-id"
REQUESTER = "jit-bot.io/requester"
EXPIRES = "jit-bot.io/expires-at"
UNIT = "jit-bot.io/unit"


def binding_name(request_id: str) -> str:
    """``jit-<request id>`` as a DNS subdomain (lower case; anything else a hyphen)."""
    return "jit-" + re.sub(r"[^a-z0-9.-]", "-", request_id.lower()).strip("-.")[:240]


def unit_hash(unit_key: str) -> str:
    """What the ``jit-bot.io/unit`` annotation holds: two targets that reach the same place
    and ClusterRole (with another user template, say) keep their bindings apart."""
    return hashlib.sha256(unit_key.encode()).hexdigest()[:16]


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def metadata(
    name: str, request_id: str, email: str, expires_at: datetime, unit: str
) -> client.V1ObjectMeta:
    from kubernetes import client

    annotations = {
        REQUEST: request_id,
        REQUESTER: email.lower(),
        EXPIRES: stamp(expires_at),
        UNIT: unit,
    }
    return client.V1ObjectMeta(name=name, labels={MANAGED_BY: OURS}, annotations=annotations)


def role_ref(cluster_role: str) -> client.V1RoleRef:
    from kubernetes import client

    return client.V1RoleRef(api_group=RBAC_GROUP, kind="ClusterRole", name=cluster_role)


def user_subject(user: str) -> client.RbacV1Subject:
    from kubernetes import client

    return client.RbacV1Subject(api_group=RBAC_GROUP, kind="User", name=user)


@dataclass(frozen=True)
class Seen:
    """A RoleBinding or ClusterRoleBinding as read back, in the terms jit-bot needs."""

    name: str
    uid: str
    cluster_role: str | None
    users: tuple[str, ...]
    #: Every subject as (kind, name): a group or service account added by hand counts too.
    subjects: tuple[tuple[str, str], ...]
    labels: dict[str, str]
    annotations: dict[str, str]
    #: Deleted, but kept by a finalizer.
    deleting: bool = False

    @classmethod
    def of(cls, binding: client.V1RoleBinding | client.V1ClusterRoleBinding) -> Seen:
        from kubernetes import client

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
            subjects=tuple((s.kind or "", s.name or "") for s in binding.subjects or []),
            labels=dict(meta.labels or {}),
            annotations=dict(meta.annotations or {}),
            deleting=meta.deletion_timestamp is not None,
        )

    def ours(self) -> bool:
        return self.labels.get(MANAGED_BY) == OURS and REQUEST in self.annotations

    @property
    def requester(self) -> str:
        return self.annotations.get(REQUESTER, "")

    def for_unit(self, request_id: str, cluster_role: str, unit: str) -> bool:
        """jit-bot's binding of this request and ClusterRole for this unit (one made before
        bindings carried their unit counts for every unit of its place)."""
        return self.ours() and self.made_for(request_id, cluster_role, unit)

    def made_for(self, request_id: str, cluster_role: str, unit: str) -> bool:
        """Annotated as this request's binding of the ClusterRole for this unit, whatever
        its labels say now."""
        return (
            self.annotations.get(REQUEST) == request_id
            and self.cluster_role == cluster_role
            and self.annotations.get(UNIT, unit) == unit
        )

    def of_request(self, request_id: str, cluster_role: str, user: str, unit: str) -> bool:
        """jit-bot's binding for this request, role, unit and user (a retried grant's)."""
        return self.for_unit(request_id, cluster_role, unit) and self.subjects == (("User", user),)

    def gives(self, cluster_role: str, user: str) -> bool:
        return self.cluster_role == cluster_role and user in self.users

    def expires_at(self) -> datetime | None:
        try:
            return datetime.strptime(
                self.annotations.get(EXPIRES, ""), "%Y-%m-%dT%H:%M:%SZ"
            ).replace(tzinfo=UTC)
        except ValueError:
            return None
