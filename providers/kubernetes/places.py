"""Where a unit's bindings live, one namespace of a cluster or the cluster itself, with
the few RBAC calls the provider makes there: the same five verbs on RoleBindings and on
ClusterRoleBindings, so the provider says once what it does with either."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from providers.base import ProviderError
from providers.kubernetes.bindings import Seen
from providers.kubernetes.calls import AlreadyExists, KubeCalls, NotFound

if TYPE_CHECKING:  # annotations only: the SDK is imported where it is used
    from kubernetes import client


@dataclass(frozen=True)
class Place:
    """``namespace`` None: the cluster's ClusterRoleBindings."""

    rbac: client.RbacAuthorizationV1Api
    calls: KubeCalls
    label: str
    namespace: str | None

    @property
    def kind(self) -> str:
        return "RoleBinding" if self.namespace else "ClusterRoleBinding"

    def find(self, selector: str = "") -> list[Seen]:
        """The bindings there (those the label selector picks)."""
        namespace, rbac = self.namespace, self.rbac

        def listed(**kw: Any) -> list[Any]:
            if namespace:
                found: Any = rbac.list_namespaced_role_binding(
                    namespace, label_selector=selector, **kw
                )
            else:
                found = rbac.list_cluster_role_binding(label_selector=selector, **kw)
            return list(found.items or [])

        return [Seen.of(item) for item in self._call(f"list {self.kind}s", listed)]

    def create(
        self,
        metadata: client.V1ObjectMeta,
        role_ref: client.V1RoleRef,
        subjects: list[client.RbacV1Subject],
        *,
        dry_run: bool = False,
    ) -> None:
        """Create the binding; with ``dry_run`` the API server checks it all (authorizer,
        RBAC escalation, admission) and stores nothing."""
        from kubernetes import client

        namespace, rbac = self.namespace, self.rbac
        extra = {"dry_run": "All"} if dry_run else {}

        def create(**kw: Any) -> None:
            kw.update(extra)
            if namespace:
                body = client.V1RoleBinding(metadata=metadata, role_ref=role_ref, subjects=subjects)
                rbac.create_namespaced_role_binding(namespace, body, **kw)
            else:
                whole = client.V1ClusterRoleBinding(
                    metadata=metadata, role_ref=role_ref, subjects=subjects
                )
                rbac.create_cluster_role_binding(whole, **kw)

        self._call(f"{'dry-run ' if dry_run else ''}create {self.kind} {metadata.name}", create)

    def read(self, name: str) -> Seen | None:
        namespace, rbac = self.namespace, self.rbac

        def read(**kw: Any) -> Any:
            if namespace:
                return rbac.read_namespaced_role_binding(name, namespace, **kw)
            return rbac.read_cluster_role_binding(name, **kw)

        try:
            return Seen.of(self._call(f"read {self.kind} {name}", read))
        except NotFound:
            return None

    def delete(self, seen: Seen) -> None:
        """Delete this very binding (its uid): one replaced since it was read stays, and
        that is a failure to try again. Already gone is success; whether it is gone (a
        finalizer keeps it) is for the caller to read back."""
        from kubernetes import client

        namespace, rbac = self.namespace, self.rbac
        options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=seen.uid))

        def delete(**kw: Any) -> None:
            if namespace:
                rbac.delete_namespaced_role_binding(seen.name, namespace, body=options, **kw)
            else:
                rbac.delete_cluster_role_binding(seen.name, body=options, **kw)

        try:
            self._call(f"delete {self.kind} {seen.name}", delete)
        except NotFound:
            return
        except AlreadyExists:  # the uid precondition failed
            raise ProviderError(
                f"{self.label}: {self.kind} {seen.name} changed since it was read; "
                "not deleted, tried again later",
                retryable=True,
            ) from None

    def annotate(self, seen: Seen, annotations: dict[str, str]) -> None:
        namespace, rbac = self.namespace, self.rbac
        patch = {"metadata": {"annotations": annotations}}

        def annotate(**kw: Any) -> None:
            if namespace:
                rbac.patch_namespaced_role_binding(seen.name, namespace, patch, **kw)
            else:
                rbac.patch_cluster_role_binding(seen.name, patch, **kw)

        self._call(f"annotate {self.kind} {seen.name}", annotate)

    def _call(self, operation: str, method: Any) -> Any:
        return self.calls.call(self.label, operation, method)
