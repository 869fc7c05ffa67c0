"""The kubernetes provider under the contract: the official client, through a kubeconfig,
against FakeKubernetes (the API server's published contract, over HTTPS with the bot's
bearer token). Each target is a namespace of its own; ``holds`` reads the bindings the
fake stores, not the provider."""

from __future__ import annotations

import tempfile
from pathlib import Path

from providers.base import Principal, TargetSpec
from providers.kubernetes import KubeClusters, KubeconfigCluster, KubernetesProvider
from providers.kubernetes import KubernetesTarget as Target
from providers.kubernetes.calls import RETRY
from tests.contract.harnesses import ProviderHarness
from tests.fakes.kubernetes import FakeKubernetes


class KubernetesHarness(ProviderHarness):
    id = "kubernetes"
    ROLE = "edit"
    _kube: FakeKubernetes | None = None

    def __init__(self) -> None:
        if KubernetesHarness._kube is None:  # one server for the run; reset per test
            KubernetesHarness._kube = FakeKubernetes().start()
        self.kube = KubernetesHarness._kube
        self.kube.reset()
        folder = Path(tempfile.mkdtemp(prefix="contract-kubeconfig-"))
        self.cluster = KubeconfigCluster(
            kubeconfig=str(self.kube.kubeconfig(folder / "kubeconfig")), context="fake"
        )
        self.provider = KubernetesProvider(KubeClusters(), sleep=lambda _: None)

    def make_target(self, name: str) -> TargetSpec:
        namespace = f"contract-{name}"
        self.kube.add_namespace(namespace)
        return Target(cluster=self.cluster, cluster_role=self.ROLE, namespaces=[namespace])

    def make_invalid_target(self) -> tuple[TargetSpec, str]:
        """A namespace the cluster does not have."""
        target = Target(cluster=self.cluster, cluster_role=self.ROLE, namespaces=["missing"])
        return target, "namespace `missing` does not exist"

    def holds(self, principal: Principal, target: TargetSpec) -> bool:
        assert isinstance(target, Target)
        return all(
            any(
                b["roleRef"]["name"] == self.ROLE
                and {
                    "kind": "User",
                    "name": principal.email,
                    "apiGroup": "rbac.authorization.k8s.io",
                }
                in b.get("subjects", [])
                for b in self.kube.role_bindings(namespace)
            )
            for namespace in target.namespaces
        )

    def break_next_grant(self, target: TargetSpec) -> None:
        """The cluster answers 503 to every try of the next create."""
        self.kube.fail_next("POST", "rolebindings", times=RETRY.attempts, code=503)

    def close(self) -> None:
        """The server is shared by the run; reset() clears it for the next test. A bug in
        the fake (answered 500) fails the test that met it."""
        assert not self.kube.internal_errors, self.kube.internal_errors
