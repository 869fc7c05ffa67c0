"""EKS without an agent: where a cluster is and how the bot proves who it is to it.

- ``eks:DescribeCluster`` gives the API server's endpoint and CA (kept until ``refresh``);
- the bearer token is what ``aws eks get-token`` and aws-iam-authenticator make: a
  presigned STS ``GetCallerIdentity`` URL whose signature covers the ``x-k8s-aws-id``
  header naming the cluster, valid for 60 seconds, as ``k8s-aws-v1.`` followed by the
  URL in unpadded base64url. The cluster sends the URL to STS and maps the answering
  IAM role to a Kubernetes user (an EKS access entry). Presigning is local: a fresh token
  is made for every request, so none ever expires in use.

The STS and EKS clients come from `AwsClients`, the aws provider's credential chain
(``JIT_AWS_ASSUME_ROLE_ARN`` included), one per region; DescribeCluster is retried under
that provider's `RETRY` policy while AWS throttles or fails.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from providers.aws.calls import RETRY, AwsCalls, AwsClients
from providers.base import ProviderError
from providers.kubernetes.target import EksCluster
from providers.resilience import TtlCache

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_HEADER = "x-k8s-aws-id"
#: What aws-iam-authenticator expects in X-Amz-Expires (seconds).
TOKEN_EXPIRES = 60


class EksAccess:
    """Endpoints, CAs and tokens of EKS clusters. ``aws`` gives the AWS clients of a
    region (built by the composition root with the aws provider's settings)."""

    def __init__(
        self, aws: Callable[[str], AwsClients], *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._aws = aws
        self._calls = AwsCalls(RETRY, sleep=sleep)  # the aws provider's retry policy
        self._regions: TtlCache[str, AwsClients] = TtlCache(math.inf)
        self._clusters: TtlCache[EksCluster, tuple[str, str]] = TtlCache(math.inf)

    def endpoint(self, cluster: EksCluster) -> tuple[str, str]:
        """The API server's URL and its CA certificate (PEM)."""
        return self._clusters.get(cluster, lambda: self._describe(cluster))

    def token(self, cluster: EksCluster) -> str:
        sts = self._clients(cluster.region).client("sts")
        events = sts.meta.events
        # Registered once per client (unique ids): the header is added to the request
        # before it is signed, so the signature covers it, as the cluster checks.
        events.register(
            "provide-client-params.sts.GetCallerIdentity",
            _take_cluster_name,
            unique_id="jit-bot-eks-cluster-name",
        )
        events.register(
            "before-sign.sts.GetCallerIdentity", _add_cluster_header, unique_id="jit-bot-eks-header"
        )
        try:
            url = sts.generate_presigned_url(
                "get_caller_identity",
                Params={"ClusterName": cluster.eks},
                ExpiresIn=TOKEN_EXPIRES,
                HttpMethod="GET",
            )
        except (ClientError, BotoCoreError) as exc:
            raise ProviderError(
                f"{cluster.label()}: cannot sign a token with the bot's AWS credentials: {exc}",
                retryable=True,
            ) from None
        encoded = base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
        return TOKEN_PREFIX + encoded

    def refresh(self) -> None:
        self._clusters.clear()

    def forget(self, cluster: EksCluster) -> None:
        self._clusters.discard(cluster)

    def _clients(self, region: str) -> AwsClients:
        return self._regions.get(region, lambda: self._aws(region))

    def _describe(self, cluster: EksCluster) -> tuple[str, str]:
        eks = self._clients(cluster.region).client("eks")
        try:
            found = self._calls.call(eks.describe_cluster, name=cluster.eks)["cluster"]
        except ProviderError as exc:
            hint = (
                "; the bot's role needs eks:DescribeCluster on it (providers/aws-policy.json)"
                if "AccessDenied" in str(exc)
                else ""
            )
            raise ProviderError(
                f"{cluster.label()}: eks:DescribeCluster failed: {exc}{hint}",
                retryable=exc.retryable,
            ) from None
        endpoint = found.get("endpoint") or ""
        data = (found.get("certificateAuthority") or {}).get("data") or ""
        if not endpoint or not data:
            raise ProviderError(
                f"{cluster.label()}: the cluster has no endpoint or CA yet "
                f"(status {found.get('status', 'unknown')})",
                retryable=True,
            )
        try:
            ca = base64.b64decode(data, validate=True).decode("ascii")
        except ValueError:
            raise ProviderError(f"{cluster.label()}: its CA certificate is not base64") from None
        return endpoint, ca


def _take_cluster_name(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    # ClusterName is not a GetCallerIdentity parameter: it travels in the context.
    if "ClusterName" in params:
        context["eks_cluster"] = params.pop("ClusterName")


def _add_cluster_header(request: Any, **_: Any) -> None:
    name = request.context.get("eks_cluster")
    if name:
        request.headers[CLUSTER_HEADER] = name
