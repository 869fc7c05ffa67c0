"""EKS without an agent: the endpoint and CA come from eks:DescribeCluster (moto's server),
and the bot's bearer token is an STS GetCallerIdentity URL presigned with the cluster's
name in the signed ``x-k8s-aws-id`` header, as aws-iam-authenticator checks it. The fake
API server here stands where the EKS endpoint is and checks each token as the
authenticator and STS do (its form, then the URL's signature over the header)."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.stub import Stubber
from moto.core import DEFAULT_ACCOUNT_ID
from moto.eks.models import eks_backends

from providers.aws import AwsClients
from providers.base import GrantContext, Principal, ProviderError
from providers.kubernetes import EksAccess, EksCluster, KubernetesProvider
from providers.kubernetes import KubernetesTarget as Target
from providers.kubernetes.eks import CLUSTER_HEADER, TOKEN_EXPIRES, TOKEN_PREFIX
from tests.fakes.aws import REGION, MotoAws
from tests.fakes.kubernetes import FakeKubernetes

ALICE = Principal(slack_user_id="U0ALICE", email="alice@example.com")
CONTEXT = GrantContext(
    "R-EKS00001", "prod-support", "prod", "INC-1", datetime.now(UTC) + timedelta(hours=1)
)


def _url_of(token: str) -> str:
    assert token.startswith(TOKEN_PREFIX)
    encoded = token.removeprefix(TOKEN_PREFIX)
    assert "=" not in encoded  # unpadded, as aws-iam-authenticator writes it
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()


def _signed_for(url: str, cluster: str) -> bool:
    """What STS checks when aws-iam-authenticator hands it the URL with the cluster's
    header: the SigV4 signature, recomputed with the bot's (moto's test) key, matches only
    if the signed ``x-k8s-aws-id`` header held this cluster's name."""
    parts = urlsplit(url)
    params = parse_qsl(parts.query)
    given = dict(params)["X-Amz-Signature"]
    bare = urlunsplit(
        parts._replace(query=urlencode([p for p in params if p[0] != "X-Amz-Signature"]))
    )
    request = AWSRequest(method="GET", url=bare, headers={CLUSTER_HEADER: cluster})
    request.context["timestamp"] = dict(params)["X-Amz-Date"]
    auth = SigV4QueryAuth(Credentials("testing", "testing"), "sts", REGION, expires=TOKEN_EXPIRES)
    expected = auth.signature(
        auth.string_to_sign(request, auth.canonical_request(request)), request
    )
    return bool(expected == given)


@pytest.fixture
def eks(
    moto: MotoAws, kube: FakeKubernetes, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EksCluster]:
    """An EKS cluster `prod` in moto whose endpoint and CA are the fake API server's,
    which accepts a token that names `prod` and that STS answers for."""
    moto.reset()
    for key, value in moto.environ().items():
        monkeypatch.setenv(key, value)
    moto.client("eks").create_cluster(
        name="prod", roleArn=f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/eks", resourcesVpcConfig={}
    )
    created = eks_backends[DEFAULT_ACCOUNT_ID][REGION].clusters["prod"]
    created.endpoint = kube.url
    created.certificate_authority = {"data": base64.b64encode(kube.ca_pem).decode()}
    kube.add_namespace("payments")

    def authenticate(token: str) -> bool:
        query = parse_qs(urlsplit(_url_of(token)).query)
        signed = query["X-Amz-SignedHeaders"][0].split(";")
        return (
            query["Action"] == ["GetCallerIdentity"]
            and query["X-Amz-Expires"] == [str(TOKEN_EXPIRES)]
            and CLUSTER_HEADER in signed
            and _signed_for(_url_of(token), "prod")
        )

    kube.authenticator = authenticate
    yield EksCluster(eks="prod", region=REGION)


def test_a_grant_on_eks_reaches_the_endpoint_describe_cluster_gives_with_a_presigned_token(
    eks: EksCluster, kube: FakeKubernetes
) -> None:
    provider = KubernetesProvider.from_environ({})
    target = Target(cluster=eks, cluster_role="edit", namespaces=["payments"])

    provider.grant(ALICE, target, CONTEXT)

    [binding] = kube.managed("payments")
    assert binding["subjects"][0]["name"] == "alice@example.com"
    assert provider.describe(target) == (
        f"Kubernetes `EKS prod ({REGION})` namespace `payments`: ClusterRole `edit`"
    )
    assert kube.tokens and all(t.startswith(TOKEN_PREFIX) for t in kube.tokens)
    assert {c.status for c in kube.calls} <= {200, 201}
    assert len(kube.tokens) == len(kube.calls)  # every request carried one


def test_the_token_is_a_presigned_get_caller_identity_naming_the_cluster_for_60_seconds(
    eks: EksCluster, kube: FakeKubernetes
) -> None:
    provider = KubernetesProvider.from_environ({})
    provider.validate(Target(cluster=eks, cluster_role="edit", namespaces=["payments"]), live=True)

    url = _url_of(kube.tokens[-1])
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert query["Action"] == ["GetCallerIdentity"] and query["Version"] == ["2011-06-15"]
    assert query["X-Amz-Expires"] == ["60"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-SignedHeaders"] == [f"host;{CLUSTER_HEADER}"]
    assert f"/{REGION}/sts/aws4_request" in query["X-Amz-Credential"][0]
    assert query["X-Amz-Credential"][0].startswith("testing/")  # the bot's own credentials
    assert _signed_for(url, "prod") and not _signed_for(url, "staging")
    signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - signed_at) < timedelta(seconds=TOKEN_EXPIRES)


def test_a_token_without_the_cluster_header_is_refused(
    eks: EksCluster, kube: FakeKubernetes, monkeypatch: pytest.MonkeyPatch
) -> None:
    from providers.kubernetes import eks as eks_module

    monkeypatch.setattr(eks_module, "_add_cluster_header", lambda request, **_: None)
    provider = KubernetesProvider.from_environ({})

    with pytest.raises(ProviderError, match="401 Unauthorized"):
        provider.grant(
            ALICE, Target(cluster=eks, cluster_role="edit", namespaces=["payments"]), CONTEXT
        )

    assert kube.managed("payments") == []


def test_an_eks_cluster_that_does_not_exist_is_named(eks: EksCluster) -> None:
    provider = KubernetesProvider.from_environ({})
    missing = Target(
        cluster=EksCluster(eks="staging", region=REGION), cluster_role="edit", namespaces=["a"]
    )

    with pytest.raises(
        ProviderError, match=r"EKS staging \(us-east-1\): eks:DescribeCluster failed"
    ):
        provider.validate(missing, live=True)


def test_the_token_is_signed_with_the_role_the_aws_provider_assumes(eks: EksCluster) -> None:
    role = f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/jit-bot"
    environ = {**os.environ, "JIT_AWS_ASSUME_ROLE_ARN": role}
    access = EksAccess(lambda region: AwsClients.from_environ({**environ, "AWS_REGION": region}))

    query = parse_qs(urlsplit(_url_of(access.token(eks))).query)

    assert not query["X-Amz-Credential"][0].startswith("testing/")  # the assumed role's key
    assert query["X-Amz-Security-Token"]
    assert query["X-Amz-SignedHeaders"] == [f"host;{CLUSTER_HEADER}"]


def test_after_a_401_the_cluster_is_described_again_and_reached_where_it_now_is(
    eks: EksCluster, kube: FakeKubernetes
) -> None:
    provider = KubernetesProvider.from_environ({})
    target = Target(cluster=eks, cluster_role="edit", namespaces=["payments"])
    provider.grant(ALICE, target, CONTEXT)  # the endpoint and CA are kept from here on
    moved = FakeKubernetes().start()  # the API server, now elsewhere with another CA
    try:
        moved.add_namespace("payments")
        moved.authenticator = kube.authenticator
        kube.authenticator = None  # the old place no longer accepts the bot
        created = eks_backends[DEFAULT_ACCOUNT_ID][REGION].clusters["prod"]
        created.endpoint = moved.url
        created.certificate_authority = {"data": base64.b64encode(moved.ca_pem).decode()}
        bob = Principal(slack_user_id="U0BOB", email="bob@example.com")

        provider.grant(bob, target, CONTEXT)

        assert [b["subjects"][0]["name"] for b in moved.managed("payments")] == ["bob@example.com"]
        assert [c.status for c in kube.calls].count(401) == 1
    finally:
        moved.stop()


def test_a_ca_from_describe_cluster_that_does_not_match_the_server_is_an_error(
    eks: EksCluster, kube: FakeKubernetes
) -> None:
    other = FakeKubernetes().start()  # a CA of its own, not the one that issued the server's
    other.stop()
    created = eks_backends[DEFAULT_ACCOUNT_ID][REGION].clusters["prod"]
    created.certificate_authority = {"data": base64.b64encode(other.ca_pem).decode()}
    provider = KubernetesProvider.from_environ({})

    with pytest.raises(ProviderError, match="certificate does not verify"):
        provider.grant(
            ALICE, Target(cluster=eks, cluster_role="edit", namespaces=["payments"]), CONTEXT
        )

    assert kube.calls == [] and kube.managed("payments") == []


def test_describe_cluster_is_retried_while_aws_throttles(
    eks: EksCluster, kube: FakeKubernetes
) -> None:
    clients = AwsClients.from_environ({**os.environ, "AWS_REGION": REGION})
    waits: list[float] = []
    access = EksAccess(lambda region: clients, sleep=waits.append)
    with Stubber(clients.client("eks")) as stub:
        for _ in range(2):
            stub.add_client_error("describe_cluster", "ThrottlingException", http_status_code=429)
        ca = base64.b64encode(kube.ca_pem).decode()
        answer = {"name": "prod", "endpoint": kube.url, "certificateAuthority": {"data": ca}}
        stub.add_response("describe_cluster", {"cluster": answer}, {"name": "prod"})

        assert access.endpoint(eks) == (kube.url, kube.ca_pem.decode())

    assert len(waits) == 2
