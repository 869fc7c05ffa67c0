"""The ``kubernetes`` provider: a ClusterRole bound to a person, in a list of namespaces
or cluster-wide, for the length of a request.

Kubernetes RBAC has no expiry of its own (kubernetes/kubernetes#87433: "can be
implemented as a layer on top of the existing API"); jit-bot is that layer, and its
revocation is the only line. Each grant is a binding of its own, named after the request
(providers/kubernetes/bindings.py): overlapping grants each have theirs and end on their
own, and nothing jit-bot did not label as its own is ever changed.

Faults: a create answered 409 AlreadyExists (a retried grant whose first answer was lost)
is success when the binding there is this request's; 429 and 5xx are retried under the
retry budget (providers/kubernetes/calls.py); a cluster that does not answer is a
retryable ProviderError, so a revocation is swept again until it lands.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from kubernetes import client

from providers.aws.calls import AwsClients
from providers.base import GrantOutcome, Holding, Provider, ProviderError
from providers.kubernetes import bindings
from providers.kubernetes.bindings import REQUEST, REQUESTER, SELECTOR, Seen
from providers.kubernetes.calls import AlreadyExists, KubeCalls
from providers.kubernetes.clusters import KubeClusters
from providers.kubernetes.eks import EksAccess
from providers.kubernetes.places import Place
from providers.kubernetes.target import CLUSTER_ADMIN, KubernetesTarget, as_kubernetes

if TYPE_CHECKING:  # annotations only
    from providers.base import GrantContext, Principal, TargetSpec

log = logging.getLogger(__name__)


class KubernetesProvider(Provider):
    """Grants a ClusterRole by RoleBindings (or a ClusterRoleBinding) of the request's own."""

    name = "kubernetes"
    target_model = KubernetesTarget
    separate_grants = True  # a binding per request, found by its label and annotation

    def __init__(
        self, clusters: KubeClusters, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.clusters = clusters
        self.calls = KubeCalls(sleep=sleep)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> KubernetesProvider:
        """EKS clusters are reached with the aws provider's settings (AWS_* variables,
        ``JIT_AWS_ASSUME_ROLE_ARN``), in the region each target names."""

        def aws(region: str) -> AwsClients:
            return AwsClients.from_environ({**environ, "AWS_REGION": region})

        return cls(KubeClusters(EksAccess(aws)))

    # -------------------------------------------------------------- interface

    def validate(self, target: TargetSpec, *, live: bool = False) -> list[str]:
        kube = as_kubernetes(target)
        if kube.cluster_role == CLUSTER_ADMIN and not kube.allow_cluster_admin:
            raise ProviderError(_admin_refused(kube))
        if not live:
            return []
        from providers.kubernetes.checks import check_target  # only `check --live` needs it

        return check_target(self._api(kube), self.calls, kube, self._places(kube))

    def expand(self, target: TargetSpec) -> list[TargetSpec]:
        """One unit per namespace; a cluster-wide target is one unit."""
        kube = as_kubernetes(target)
        if kube.cluster_wide:
            return [kube]
        return [kube.model_copy(update={"namespaces": [ns]}) for ns in kube.namespaces]

    def describe(self, target: TargetSpec) -> str:
        kube = as_kubernetes(target)
        where = (
            "cluster-wide"
            if kube.cluster_wide
            else ", ".join(f"namespace `{ns}`" for ns in kube.namespaces)
        )
        return f"Kubernetes `{kube.cluster.label()}` {where}: ClusterRole `{kube.cluster_role}`"

    def endpoint(self, target: TargetSpec) -> str:
        # Each cluster is its own endpoint: one that hangs holds up only its own calls.
        return f"{self.name}:{as_kubernetes(target).cluster.label()}"

    def grant(
        self, principal: Principal, target: TargetSpec, context: GrantContext
    ) -> GrantOutcome:
        kube = as_kubernetes(target)
        user = kube.user(principal.email)
        standing = [
            self._grant_in(place, kube, user, principal, context) for place in self._places(kube)
        ]
        if standing and all(standing):
            return GrantOutcome(
                preexisting=True,
                detail=f"{user} already holds ClusterRole {kube.cluster_role} there",
                principal=user,
            )
        return GrantOutcome(detail=f"bound to user {user}", principal=user)

    def revoke(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        """Delete this request's bindings of the ClusterRole, found by label and request
        annotation (whatever they are named); none left is success."""
        kube = as_kubernetes(target)
        for place in self._places(kube):
            for seen in self._of_request(place, kube, context.request_id):
                place.delete(seen)

    def extend(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        """The bindings carry the new expiry (the bot's own revocation, rescheduled, is
        what ends them); a binding that is gone is not made again."""
        kube = as_kubernetes(target)
        user = kube.user(principal.email)
        until = bindings.stamp(context.expires_at)
        for place in self._places(kube):
            found = self._of_request(place, kube, context.request_id)
            if not found:
                if self._standing(place, kube, user):
                    continue
                raise ProviderError(
                    f"{place.label}: {user} no longer holds {kube.cluster_role} through this "
                    "request's binding (it was removed); nothing was extended"
                )
            for seen in found:
                ends = seen.expires_at()
                if ends is None or ends < context.expires_at:
                    place.annotate(seen, {bindings.EXPIRES: until})

    def is_granted(self, principal: Principal, target: TargetSpec) -> bool | None:
        kube = as_kubernetes(target)
        user = kube.user(principal.email)
        return all(
            any(seen.gives(kube.cluster_role, user) for seen in place.find())
            for place in self._places(kube)
        )

    def inventory(self, target: TargetSpec) -> list[Holding] | None:
        """Who holds the ClusterRole through a jit-bot binding, per unit. Bindings others
        made are not jit-bot's business, so not drift."""
        kube = as_kubernetes(target)
        found = []
        for unit in self.expand(kube):
            [place] = self._places(as_kubernetes(unit))
            for seen in place.find(SELECTOR):
                if not seen.ours() or seen.cluster_role != kube.cluster_role:
                    continue
                for user in seen.users:
                    email = seen.annotations.get(REQUESTER) or kube.email_of(user) or user
                    found.append(
                        Holding(email=email, unit=unit, request_id=seen.annotations[REQUEST])
                    )
        return found

    def refresh(self) -> None:
        self.clusters.refresh()

    # -------------------------------------------------------------- bindings

    def _grant_in(
        self,
        place: Place,
        kube: KubernetesTarget,
        user: str,
        principal: Principal,
        context: GrantContext,
    ) -> bool:
        """Bind the ClusterRole to ``user`` there; True when someone else's binding gives
        it already (standing access: nothing is written)."""
        if self._standing(place, kube, user):
            return True
        for name in _names(context.request_id, kube.cluster_role):
            meta = bindings.metadata(name, context.request_id, principal.email, context.expires_at)
            try:
                place.create(
                    meta, bindings.role_ref(kube.cluster_role), [bindings.user_subject(user)]
                )
                return False
            except AlreadyExists:
                seen = place.read(name)
            if seen is not None and seen.of_request(context.request_id, kube.cluster_role, user):
                return False  # granted already: a retried call of this request
            if seen is None or seen.annotations.get(REQUEST) != context.request_id:
                break
            # The same request binds another ClusterRole there under this name: next name.
        name = _names(context.request_id, kube.cluster_role)[0]
        raise ProviderError(
            f"{place.label}: a {place.kind} named {name} exists that jit-bot did not make "
            "for this request; remove or rename it"
        )

    def _standing(self, place: Place, kube: KubernetesTarget, user: str) -> bool:
        return any(seen.gives(kube.cluster_role, user) and not seen.ours() for seen in place.find())

    def _of_request(self, place: Place, kube: KubernetesTarget, request_id: str) -> list[Seen]:
        return [
            seen
            for seen in place.find(SELECTOR)
            if seen.ours()
            and seen.annotations.get(REQUEST) == request_id
            and seen.cluster_role == kube.cluster_role
        ]

    def _api(self, kube: KubernetesTarget) -> client.ApiClient:
        return self.clusters.api(kube.cluster)

    def _places(self, kube: KubernetesTarget) -> list[Place]:
        rbac = client.RbacAuthorizationV1Api(self._api(kube))
        cluster = f"kubernetes `{kube.cluster.label()}`"
        if kube.cluster_wide:
            return [Place(rbac, self.calls, cluster, None)]
        return [
            Place(rbac, self.calls, f"{cluster} namespace `{ns}`", ns) for ns in kube.namespaces
        ]


def _names(request_id: str, cluster_role: str) -> list[str]:
    """The binding's name, ``jit-<request id>``, and the one used when the same request
    binds a second ClusterRole in the same place."""
    base = bindings.binding_name(request_id)
    return [base, f"{base}-{hashlib.sha256(cluster_role.encode()).hexdigest()[:8]}"]


def _admin_refused(kube: KubernetesTarget) -> str:
    return (
        f"ClusterRole `{kube.cluster_role}` gives everything in the cluster; jit-bot grants "
        "it only with allow_cluster_admin: true on the target"
    )
