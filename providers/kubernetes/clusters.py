"""The official client's connection to each cluster a target names, built once and kept
until ``refresh``, or until ``forget`` drops one whose token or CA went stale (the
provider does that on a 401 or a certificate that does not verify, then reads the
kubeconfig, or describes the EKS cluster, again): from a kubeconfig context (its server,
CA and the bot's credentials, whatever kind the kubeconfig holds), or for EKS from
DescribeCluster and a token presigned for every request (`EksAccess`)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from providers.base import ProviderError
from providers.kubernetes.eks import EksAccess
from providers.kubernetes.target import Cluster, EksCluster, KubeconfigCluster

if TYPE_CHECKING:  # annotations only: the SDK is imported where it is used
    from kubernetes import client


class KubeClusters:
    """One ``ApiClient`` per cluster. ``eks`` is None where no AWS is configured: then an
    ``eks:`` cluster is a clear error, not an attempt."""

    def __init__(self, eks: EksAccess | None = None) -> None:
        self._eks = eks
        self._lock = threading.Lock()
        self._clients: dict[Cluster, client.ApiClient] = {}

    def api(self, cluster: Cluster) -> client.ApiClient:
        from kubernetes import client

        with self._lock:
            found = self._clients.get(cluster)
        if found is not None:
            return found
        configuration = (
            self._from_eks(cluster)
            if isinstance(cluster, EksCluster)
            else self._from_kubeconfig(cluster)
        )
        _refuse_unverified(cluster, configuration)
        configuration.retries = 0  # KubeCalls retries, under the provider's policy
        built = client.ApiClient(configuration)
        with self._lock:
            return self._clients.setdefault(cluster, built)

    def refresh(self) -> None:
        with self._lock:
            self._clients.clear()
        if self._eks is not None:
            self._eks.refresh()

    def forget(self, cluster: Cluster) -> None:
        """Build this cluster's client afresh next time (its kubeconfig read again, its
        EKS endpoint and CA described again)."""
        with self._lock:
            self._clients.pop(cluster, None)
        if self._eks is not None and isinstance(cluster, EksCluster):
            self._eks.forget(cluster)

    def _from_kubeconfig(self, cluster: KubeconfigCluster) -> client.Configuration:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        path = Path(cluster.kubeconfig).expanduser()
        configuration = client.Configuration()
        try:
            config.load_kube_config(
                config_file=str(path),
                context=cluster.context,
                client_configuration=configuration,
                persist_config=False,
            )
        except (ConfigException, OSError, ValueError) as exc:
            raise ProviderError(
                f"kubernetes context `{cluster.context}`: cannot use the kubeconfig {path}: "
                f"{str(exc).strip() or type(exc).__name__}"
            ) from None
        return configuration

    def _from_eks(self, cluster: EksCluster) -> client.Configuration:
        from kubernetes import client

        eks = self._eks
        if eks is None:
            raise ProviderError(f"{cluster.label()}: no AWS credentials are configured")
        endpoint, ca = eks.endpoint(cluster)
        configuration = client.Configuration(host=endpoint, ca_cert_data=ca)
        configuration.api_key_prefix = {"BearerToken": "Bearer"}

        def fresh_token(conf: client.Configuration) -> None:
            conf.api_key = {"BearerToken": eks.token(cluster)}

        # The client looks for a key before it calls the hook: start with one.
        fresh_token(configuration)
        configuration.refresh_api_key_hook = fresh_token  # type: ignore[assignment]
        return configuration


def _refuse_unverified(cluster: Cluster, configuration: client.Configuration) -> None:
    """The bot's bearer token goes only to a server whose certificate it checks: never over
    plain http, never with ``insecure-skip-tls-verify``."""
    if not str(configuration.host or "").startswith("https://"):
        raise ProviderError(
            f"kubernetes `{cluster.label()}`: the server {configuration.host} is not https; "
            "jit-bot sends its credentials only over TLS"
        )
    if not configuration.verify_ssl:
        raise ProviderError(
            f"kubernetes `{cluster.label()}`: the kubeconfig says insecure-skip-tls-verify; "
            "jit-bot sends its credentials only to a server whose certificate it verifies "
            "(give the cluster's certificate-authority instead)"
        )
