"""What ``jit-bot check --live`` verifies on a cluster, asking the cluster itself: the
ClusterRole and every namespace exist, the ClusterRole does not give everything (unless
the target allows it), the bot may create, read, list and delete the bindings there
(SelfSubjectAccessReview, so the answer is the cluster's own authorizer's), and a binding
of the ClusterRole there passes a server-side dry run (RBAC's escalation check and
admission included); it warns where the bot may not ``bind`` the ClusterRole there."""

from __future__ import annotations

from typing import TYPE_CHECKING

from providers.base import ProviderError
from providers.kubernetes import bindings
from providers.kubernetes.bindings import MANAGED_BY, OURS, RBAC_GROUP
from providers.kubernetes.calls import AlreadyExists, KubeCalls, NotFound
from providers.kubernetes.escalation import cluster_role_rules, gives_everything, refusal
from providers.kubernetes.places import Place
from providers.kubernetes.target import KubernetesTarget

if TYPE_CHECKING:  # annotations only: the SDK is imported where it is used
    from kubernetes import client

#: What the bot does with its bindings: create on grant, list and read to find them,
#: delete on revoke, patch on extension.
VERBS = ("create", "get", "list", "delete", "patch")
#: The name of the binding (and of its user) that a live check creates as a dry run.
DRY_RUN_NAME = "jit-bot-dry-run"


def check_target(
    api: client.ApiClient, calls: KubeCalls, kube: KubernetesTarget, places: list[Place]
) -> list[str]:
    """Raise ProviderError naming what is wrong; return warnings."""
    from kubernetes import client

    label = f"kubernetes `{kube.cluster.label()}`"
    rules_of = cluster_role_rules(api, calls, label)
    if rules_of(kube.cluster_role) is None:
        raise ProviderError(f"{label}: ClusterRole `{kube.cluster_role}` does not exist")
    why = None if kube.allow_cluster_admin else gives_everything(kube.cluster_role, rules_of)
    if why is not None:
        raise ProviderError(refusal(label, kube.cluster_role, why))
    core = client.CoreV1Api(api)
    problems = []
    for namespace in kube.namespaces:
        try:
            calls.call(label, f"read namespace {namespace}", core.read_namespace, namespace)
        except NotFound:
            problems.append(f"namespace `{namespace}` does not exist")
    if problems:
        raise ProviderError(f"{label}: " + "; ".join(problems))
    reviews = client.AuthorizationV1Api(api)
    for place in places:
        resource = "rolebindings" if place.namespace else "clusterrolebindings"
        denied = [
            verb
            for verb in VERBS
            if not _allowed(reviews, calls, label, verb, resource, place.namespace)
        ]
        if denied:
            problems.append(f"{place.label}: the bot may not {', '.join(denied)} {resource} there")
    if problems:
        raise ProviderError("; ".join(problems) + " (docs/kubernetes.md has the bot's ClusterRole)")
    refused = [_dry_run_refusal(place, kube.cluster_role) for place in places]
    if any(refused):
        raise ProviderError("; ".join(r for r in refused if r))
    return [
        f"{place.label}: the bot lacks `bind` on ClusterRole `{kube.cluster_role}` there; the "
        "cluster lets it grant the role only if the bot itself holds every permission in it"
        for place in places
        if not _allowed(
            reviews, calls, label, "bind", "clusterroles", place.namespace, kube.cluster_role
        )
    ]


def _dry_run_refusal(place: Place, cluster_role: str) -> str | None:
    """Create a binding of the ClusterRole there as a server-side dry run: the API server
    runs its authorizer, RBAC's escalation check and admission on it, stores nothing, and
    says why it would refuse a grant."""
    from kubernetes import client

    meta = client.V1ObjectMeta(name=DRY_RUN_NAME, labels={MANAGED_BY: OURS})
    subject = bindings.user_subject(DRY_RUN_NAME)
    try:
        place.create(meta, bindings.role_ref(cluster_role), [subject], dry_run=True)
    except AlreadyExists:
        return None  # the name is taken: the checks before it ran and passed
    except ProviderError as exc:
        if exc.retryable:
            raise
        return f"a {place.kind} of ClusterRole `{cluster_role}` (dry run) is refused: {exc}"
    return None


def _allowed(
    reviews: client.AuthorizationV1Api,
    calls: KubeCalls,
    label: str,
    verb: str,
    resource: str,
    namespace: str | None,
    name: str | None = None,
) -> bool:
    from kubernetes import client

    attributes = client.V1ResourceAttributes(
        group=RBAC_GROUP, resource=resource, verb=verb, namespace=namespace, name=name
    )
    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes)
    )
    answer = calls.call(
        label, "SelfSubjectAccessReview", reviews.create_self_subject_access_review, review
    )
    return bool(answer.status and answer.status.allowed)
