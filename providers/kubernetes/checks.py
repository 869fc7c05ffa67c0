"""What ``jit-bot check --live`` verifies on a cluster, asking the cluster itself: the
ClusterRole and every namespace exist, the ClusterRole does not give everything (unless
the target allows it), and the bot may create, read, list and delete the bindings there
(SelfSubjectAccessReview, so the answer is the cluster's own authorizer's)."""

from __future__ import annotations

from kubernetes import client

from providers.base import ProviderError
from providers.kubernetes.bindings import RBAC_GROUP
from providers.kubernetes.calls import KubeCalls, NotFound
from providers.kubernetes.places import Place
from providers.kubernetes.target import CLUSTER_ADMIN, KubernetesTarget

#: What the bot does with its bindings: create on grant, list and read to find them,
#: delete on revoke, patch on extension.
VERBS = ("create", "get", "list", "delete", "patch")
_ALL = "*"
# Verbs that let whoever holds them give any permission away (or take it themselves).
_ESCALATING = {"bind", "escalate", _ALL}


def check_target(
    api: client.ApiClient, calls: KubeCalls, kube: KubernetesTarget, places: list[Place]
) -> list[str]:
    """Raise ProviderError naming what is wrong; return warnings."""
    label = f"kubernetes `{kube.cluster.label()}`"
    rules = _cluster_role_rules(api, calls, label, kube.cluster_role)
    if not kube.allow_cluster_admin and (kube.cluster_role == CLUSTER_ADMIN or _escalates(rules)):
        raise ProviderError(
            f"{label}: ClusterRole `{kube.cluster_role}` may bind or escalate any role (it "
            "gives everything); jit-bot grants it only with allow_cluster_admin: true"
        )
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
    if not _allowed(reviews, calls, label, "bind", "clusterroles", None, kube.cluster_role):
        return [
            f"{label}: the bot lacks `bind` on ClusterRole `{kube.cluster_role}`; the cluster "
            "lets it grant the role only if the bot itself holds every permission in it"
        ]
    return []


def _cluster_role_rules(
    api: client.ApiClient, calls: KubeCalls, label: str, name: str
) -> list[client.V1PolicyRule]:
    rbac = client.RbacAuthorizationV1Api(api)
    try:
        role = calls.call(label, f"read ClusterRole {name}", rbac.read_cluster_role, name)
    except NotFound:
        raise ProviderError(f"{label}: ClusterRole `{name}` does not exist") from None
    return list(role.rules or [])


def _escalates(rules: list[client.V1PolicyRule]) -> bool:
    """A rule that may bind or escalate (or do anything) on every resource, or on every
    role: whoever holds it can give themselves anything."""
    for rule in rules:
        groups = set(rule.api_groups or [])
        resources = set(rule.resources or [])
        if not (set(rule.verbs or []) & _ESCALATING) or rule.resource_names:
            continue
        if _ALL in resources and groups & {_ALL, RBAC_GROUP, ""}:
            return True
        if resources & {"clusterroles", "roles"} and groups & {_ALL, RBAC_GROUP}:
            return True
    return False


def _allowed(
    reviews: client.AuthorizationV1Api,
    calls: KubeCalls,
    label: str,
    verb: str,
    resource: str,
    namespace: str | None,
    name: str | None = None,
) -> bool:
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
