"""The ``kubernetes`` provider: a ClusterRole bound to a person for a request.

- ``target``: what a roles.yaml entry may say (a kubeconfig context or an EKS cluster);
- ``clusters``: the official client's connection to each cluster; ``eks``: EKS endpoints
  and presigned tokens;
- ``calls``: retries under one `RETRY` policy, Status errors translated;
- ``bindings``: how jit-bot's bindings are named, built and recognised;
- ``places``: the RBAC calls in a namespace or on the cluster;
- ``unit``: a request's bindings of one unit (made, removed and confirmed gone, read
  for drift);
- ``escalation``: which ClusterRoles give everything (asked by checks and by every grant);
- ``checks``: what ``jit-bot check --live`` verifies;
- ``provider``: `KubernetesProvider`.
"""

from providers.kubernetes.calls import OPERATION_BUDGET, RETRY
from providers.kubernetes.clusters import KubeClusters
from providers.kubernetes.eks import EksAccess
from providers.kubernetes.provider import KubernetesProvider
from providers.kubernetes.target import EksCluster, KubeconfigCluster, KubernetesTarget

__all__ = [
    "OPERATION_BUDGET",
    "RETRY",
    "EksAccess",
    "EksCluster",
    "KubeClusters",
    "KubeconfigCluster",
    "KubernetesProvider",
    "KubernetesTarget",
]
