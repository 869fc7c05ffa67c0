"""The Kubernetes fake answers as the API server's published contract says, through the
official client: what the provider's tests rely on is checked here once."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client, config
from urllib3.exceptions import MaxRetryError

from tests.fakes.kubernetes import RBAC, FakeKubernetes


def _api(kube: FakeKubernetes, tmp_path: Path, token: str | None = None) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(
        config_file=str(kube.kubeconfig(tmp_path / "kubeconfig", token=token)),
        client_configuration=configuration,
        persist_config=False,
    )
    configuration.retries = 0
    return client.ApiClient(configuration)


def _binding(name: str, user: str = "alice@example.com", **labels: str) -> client.V1RoleBinding:
    return client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name=name, labels=labels or None),
        role_ref=client.V1RoleRef(api_group=RBAC, kind="ClusterRole", name="edit"),
        subjects=[client.RbacV1Subject(kind="User", name=user, api_group=RBAC)],
    )


@pytest.fixture
def rbac(kube: FakeKubernetes, tmp_path: Path) -> client.RbacAuthorizationV1Api:
    kube.add_namespace("payments")
    return client.RbacAuthorizationV1Api(_api(kube, tmp_path))


def test_a_request_without_the_bots_token_is_answered_401_status(
    kube: FakeKubernetes, tmp_path: Path
) -> None:
    core = client.CoreV1Api(_api(kube, tmp_path, token="someone-elses"))

    with pytest.raises(client.ApiException) as raised:
        core.read_namespace("default")

    assert raised.value.status == 401
    assert '"reason": "Unauthorized"' in raised.value.body


def test_a_created_binding_is_stored_with_server_fields_and_a_second_create_is_409(
    kube: FakeKubernetes, rbac: client.RbacAuthorizationV1Api
) -> None:
    created = rbac.create_namespaced_role_binding("payments", _binding("jit-r-1"))

    assert created.metadata.uid and created.metadata.resource_version
    assert created.metadata.namespace == "payments"
    [stored] = kube.role_bindings("payments")
    assert stored["subjects"] == [{"kind": "User", "name": "alice@example.com", "apiGroup": RBAC}]
    with pytest.raises(client.ApiException) as raised:
        rbac.create_namespaced_role_binding("payments", _binding("jit-r-1"))
    assert raised.value.status == 409
    assert '"reason": "AlreadyExists"' in raised.value.body


def test_reading_or_deleting_what_is_not_there_is_404_status(
    rbac: client.RbacAuthorizationV1Api,
) -> None:
    for call in (
        lambda: rbac.read_namespaced_role_binding("jit-none", "payments"),
        lambda: rbac.delete_namespaced_role_binding("jit-none", "payments"),
        lambda: rbac.create_namespaced_role_binding("nowhere", _binding("jit-r-1")),
        lambda: rbac.read_cluster_role("no-such-role"),
    ):
        with pytest.raises(client.ApiException) as raised:
            call()
        assert raised.value.status == 404
        assert '"reason": "NotFound"' in raised.value.body


def test_rbac_names_are_path_segments_so_upper_case_and_colons_pass_and_slashes_are_422(
    kube: FakeKubernetes, rbac: client.RbacAuthorizationV1Api
) -> None:
    # The API server checks RBAC object names with ValidateRBACName (a path segment), not
    # as DNS subdomains: system:aggregate-to-edit is a real ClusterRole's name.
    rbac.create_namespaced_role_binding("payments", _binding("Team:Edit_1"))
    assert [b["metadata"]["name"] for b in kube.role_bindings("payments")] == ["Team:Edit_1"]

    for bad in ("a/b", "a%b", "..", "."):
        with pytest.raises(client.ApiException) as raised:
            rbac.create_namespaced_role_binding("payments", _binding(bad))
        assert raised.value.status == 422, bad


def test_listing_in_a_namespace_that_does_not_exist_is_an_empty_list(
    rbac: client.RbacAuthorizationV1Api,
) -> None:
    assert rbac.list_namespaced_role_binding("nowhere").items == []


def test_label_selectors_filter_lists(rbac: client.RbacAuthorizationV1Api) -> None:
    rbac.create_namespaced_role_binding("payments", _binding("ours", **{"managed": "jit-bot"}))
    rbac.create_namespaced_role_binding("payments", _binding("theirs", **{"managed": "tf"}))
    rbac.create_namespaced_role_binding("payments", _binding("bare"))

    def names(selector: str) -> list[str]:
        listed = rbac.list_namespaced_role_binding("payments", label_selector=selector)
        return [b.metadata.name for b in listed.items]

    assert names("managed=jit-bot") == ["ours"]
    assert names("managed!=jit-bot") == ["bare", "theirs"]
    assert names("managed in (jit-bot,tf)") == ["ours", "theirs"]
    assert names("managed notin (tf)") == ["bare", "ours"]
    assert names("managed") == ["ours", "theirs"]
    assert names("!managed") == ["bare"]
    assert names("") == ["bare", "ours", "theirs"]


def test_delete_with_a_stale_uid_precondition_is_409_and_keeps_the_binding(
    kube: FakeKubernetes, rbac: client.RbacAuthorizationV1Api
) -> None:
    rbac.create_namespaced_role_binding("payments", _binding("jit-r-1"))
    stale = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="other"))

    with pytest.raises(client.ApiException) as raised:
        rbac.delete_namespaced_role_binding("jit-r-1", "payments", body=stale)

    assert raised.value.status == 409
    assert len(kube.role_bindings("payments")) == 1


def test_an_injected_fault_answers_its_status_and_retry_after_then_clears(
    kube: FakeKubernetes, rbac: client.RbacAuthorizationV1Api
) -> None:
    kube.fail_next("POST", "rolebindings", code=429, retry_after=2)

    with pytest.raises(client.ApiException) as raised:
        rbac.create_namespaced_role_binding("payments", _binding("jit-r-1"))

    assert raised.value.status == 429
    assert raised.value.headers["Retry-After"] == "2"
    assert kube.role_bindings("payments") == []
    rbac.create_namespaced_role_binding("payments", _binding("jit-r-1"))
    assert len(kube.role_bindings("payments")) == 1


def test_self_subject_access_review_says_what_was_denied(
    kube: FakeKubernetes, tmp_path: Path
) -> None:
    kube.deny("delete", "rolebindings", "payments")
    reviews = client.AuthorizationV1Api(_api(kube, tmp_path))

    def allowed(verb: str, namespace: str) -> bool:
        attributes = client.V1ResourceAttributes(
            verb=verb, group=RBAC, resource="rolebindings", namespace=namespace
        )
        review = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes)
        )
        return bool(reviews.create_self_subject_access_review(review).status.allowed)

    assert allowed("create", "payments")
    assert not allowed("delete", "payments")
    assert allowed("delete", "default")


def test_self_subject_access_review_tells_groups_and_names_apart(
    kube: FakeKubernetes, tmp_path: Path
) -> None:
    kube.deny("bind", "clusterroles", name="admin")
    reviews = client.AuthorizationV1Api(_api(kube, tmp_path))

    def allowed(name: str, group: str = RBAC) -> bool:
        attributes = client.V1ResourceAttributes(
            verb="bind", group=group, resource="clusterroles", name=name
        )
        review = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes)
        )
        return bool(reviews.create_self_subject_access_review(review).status.allowed)

    assert not allowed("admin")
    assert allowed("view")
    assert allowed("admin", group="example.com")
    kube.deny("bind", "clusterroles")  # no name: every name
    assert not allowed("view")


def test_an_unreachable_cluster_refuses_connections_and_answers_again_after(
    kube: FakeKubernetes, tmp_path: Path
) -> None:
    core = client.CoreV1Api(_api(kube, tmp_path))

    with kube.unreachable(), pytest.raises(MaxRetryError, match="Connection refused"):
        core.read_namespace("default", _request_timeout=5)

    assert core.read_namespace("default").metadata.name == "default"


def test_a_binding_with_a_finalizer_is_kept_when_deleted_until_its_last_finalizer_goes(
    kube: FakeKubernetes, rbac: client.RbacAuthorizationV1Api
) -> None:
    held = _binding("jit-r-1")
    held.metadata.finalizers = ["example.com/hold"]
    rbac.create_namespaced_role_binding("payments", held)

    rbac.delete_namespaced_role_binding("jit-r-1", "payments")

    kept = rbac.read_namespaced_role_binding("jit-r-1", "payments")
    assert kept.metadata.deletion_timestamp is not None
    rbac.patch_namespaced_role_binding("jit-r-1", "payments", {"metadata": {"finalizers": None}})
    assert kube.role_bindings("payments") == []


def test_a_patch_is_read_by_its_content_type(
    kube: FakeKubernetes, rbac: client.RbacAuthorizationV1Api
) -> None:
    rbac.create_namespaced_role_binding("payments", _binding("jit-r-1"))

    # A dict goes as a strategic merge patch, a list as a JSON Patch (the client chooses).
    rbac.patch_namespaced_role_binding("jit-r-1", "payments", {"metadata": {"labels": {"a": "1"}}})
    ops = [{"op": "add", "path": "/metadata/annotations", "value": {"b": "2"}}]
    rbac.patch_namespaced_role_binding("jit-r-1", "payments", ops)
    with pytest.raises(client.ApiException) as raised:
        rbac.patch_namespaced_role_binding(
            "jit-r-1", "payments", {"metadata": {}}, _content_type="application/apply-patch+yaml"
        )

    assert raised.value.status == 415
    [stored] = kube.role_bindings("payments")
    assert stored["metadata"]["labels"] == {"a": "1"}
    assert stored["metadata"]["annotations"] == {"b": "2"}
