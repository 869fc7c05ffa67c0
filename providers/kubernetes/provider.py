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

import functools
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from providers.aws.calls import AwsClients
from providers.base import GrantOutcome, Holding, Provider, ProviderError
from providers.kubernetes import bindings
from providers.kubernetes.calls import KubeCalls, StaleClient
from providers.kubernetes.clusters import KubeClusters
from providers.kubernetes.eks import EksAccess
from providers.kubernetes.escalation import cluster_role_rules, gives_everything, refusal
from providers.kubernetes.places import Place
from providers.kubernetes.target import CLUSTER_ADMIN, Cluster, KubernetesTarget, as_kubernetes
from providers.kubernetes.unit import Unit
from providers.resilience import TtlCache

if TYPE_CHECKING:  # annotations only: the SDK is imported where it is used
    from kubernetes import client

    from providers.base import GrantContext, Principal, TargetSpec

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

#: How long a verdict on a ClusterRole (gives everything or not) is trusted, in seconds.
VERDICT_TTL = 300.0


def _afresh(
    method: Callable[Concatenate[KubernetesProvider, P], R],
) -> Callable[Concatenate[KubernetesProvider, P], R]:
    """One operation, its calls within one time budget (`KubeCalls.operation`). On a 401
    or a certificate that does not verify, the target's cluster client is built afresh (a
    rotated token, endpoint or CA) and the operation tried once more: each is idempotent,
    and a second failure is the answer."""

    @functools.wraps(method)
    def once_more(self: KubernetesProvider, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.calls.operation():
            try:
                return method(self, *args, **kwargs)
            except StaleClient:
                for target in (*args, *kwargs.values()):
                    if isinstance(target, KubernetesTarget):
                        self.clusters.forget(target.cluster)
                return method(self, *args, **kwargs)

    return once_more


class KubernetesProvider(Provider):
    """Grants a ClusterRole by RoleBindings (or a ClusterRoleBinding) of the request's own."""

    name = "kubernetes"
    target_model = KubernetesTarget
    separate_grants = True  # a binding per request, found by its label and annotation

    def __init__(
        self,
        clusters: KubeClusters,
        *,
        sleep: Callable[[float], None] = time.sleep,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clusters = clusters
        self.calls = KubeCalls(sleep=sleep, monotonic=timer)
        # Whether a ClusterRole gives everything (why, or None), per cluster and role.
        self._verdicts: TtlCache[tuple[Cluster, str], str | None] = TtlCache(VERDICT_TTL, timer)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> KubernetesProvider:
        """EKS clusters are reached with the aws provider's settings (AWS_* variables,
        ``JIT_AWS_ASSUME_ROLE_ARN``), in the region each target names."""

        def aws(region: str) -> AwsClients:
            return AwsClients.from_environ({**environ, "AWS_REGION": region})

        return cls(KubeClusters(EksAccess(aws)))

    # -------------------------------------------------------------- interface

    @_afresh
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
        # The username is shown where the template makes it more than the email itself.
        user = "" if kube.user_template == "{email}" else f" as user `{kube.user_template}`"
        return (
            f"Kubernetes `{kube.cluster.label()}` {where}: ClusterRole `{kube.cluster_role}`" + user
        )

    def endpoint(self, target: TargetSpec) -> str:
        # Each cluster is its own endpoint: one that hangs holds up only its own calls.
        return f"{self.name}:{as_kubernetes(target).cluster.label()}"

    @_afresh
    def grant(
        self, principal: Principal, target: TargetSpec, context: GrantContext
    ) -> GrantOutcome:
        kube = as_kubernetes(target)
        self._refuse_everything(kube)
        user = kube.user(principal.email)
        standing = [unit.bind(user, principal.email, context) for unit in self._units(kube)]
        if standing and all(standing):
            return GrantOutcome(
                preexisting=True,
                detail=f"{user} already holds ClusterRole {kube.cluster_role} there",
                principal=user,
            )
        return GrantOutcome(detail=f"bound to user {user}", principal=user)

    @_afresh
    def revoke(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        """Delete the bindings of the ClusterRole this request made for this person on this
        unit, found by label and annotations (whatever they are named), and read back by
        name; none left is success (providers/kubernetes/unit.py)."""
        kube = as_kubernetes(target)
        for unit in self._units(kube):
            unit.unbind(context.request_id, principal.email.lower())

    @_afresh
    def extend(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        """The bindings carry the new expiry (the bot's own revocation, rescheduled, is
        what ends them); a binding that is gone is not made again."""
        kube = as_kubernetes(target)
        user = kube.user(principal.email)
        until = bindings.stamp(context.expires_at)
        for unit in self._units(kube):
            found = unit.of_request(context.request_id)
            if not found:
                if unit.standing(user):
                    continue
                raise ProviderError(
                    f"{unit.place.label}: {user} no longer holds {kube.cluster_role} through this "
                    "request's binding (it was removed); nothing was extended"
                )
            for seen in found:
                ends = seen.expires_at()
                if ends is None or ends < context.expires_at:
                    unit.place.annotate(seen, {bindings.EXPIRES: until})

    @_afresh
    def is_granted(self, principal: Principal, target: TargetSpec) -> bool | None:
        kube = as_kubernetes(target)
        user = kube.user(principal.email)
        return all(
            any(seen.gives(kube.cluster_role, user) for seen in place.find())
            for place in self._places(kube)
        )

    @_afresh
    def inventory(self, target: TargetSpec) -> list[Holding] | None:
        """Who holds the ClusterRole through a jit-bot binding, per unit, by its subjects
        (`Unit.holders`). Bindings others made are not jit-bot's business, so not drift."""
        kube = as_kubernetes(target)
        found = []
        for spec in self.expand(kube):
            [unit] = self._units(as_kubernetes(spec))
            found += [
                Holding(email=email, unit=spec, request_id=request_id)
                for email, request_id in unit.holders()
            ]
        return found

    def refresh(self) -> None:
        self.clusters.refresh()
        self._verdicts.clear()

    # -------------------------------------------------------------- helpers

    def _refuse_everything(self, kube: KubernetesTarget) -> None:
        """The ClusterRole's rules are read again at grant time (a few minutes apart at
        most): it may have been widened, or aggregated into, since `check --live` ran."""
        if kube.allow_cluster_admin:
            return
        label = f"kubernetes `{kube.cluster.label()}`"

        def verdict() -> str | None:
            rules_of = cluster_role_rules(self._api(kube), self.calls, label)
            return gives_everything(kube.cluster_role, rules_of)

        why = self._verdicts.get((kube.cluster, kube.cluster_role), verdict)
        if why is not None:
            raise ProviderError(refusal(label, kube.cluster_role, why))

    def _api(self, kube: KubernetesTarget) -> client.ApiClient:
        return self.clusters.api(kube.cluster)

    def _units(self, kube: KubernetesTarget) -> list[Unit]:
        return [Unit(place, kube) for place in self._places(kube)]

    def _places(self, kube: KubernetesTarget) -> list[Place]:
        from kubernetes import client

        rbac = client.RbacAuthorizationV1Api(self._api(kube))
        cluster = f"kubernetes `{kube.cluster.label()}`"
        if kube.cluster_wide:
            return [Place(rbac, self.calls, cluster, None)]
        return [
            Place(rbac, self.calls, f"{cluster} namespace `{ns}`", ns) for ns in kube.namespaces
        ]


def _admin_refused(kube: KubernetesTarget) -> str:
    return (
        f"ClusterRole `{kube.cluster_role}` gives everything in the cluster; jit-bot grants "
        "it only with allow_cluster_admin: true on the target"
    )
