"""The kubernetes provider against the fake API server, through the official client and a
kubeconfig: what a grant writes, how it is found again, and how faults are met (409 on a
retried grant, 429 and 5xx under the retry budget, a cluster that does not answer)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from bot.config import Settings
from providers.base import GrantContext, Principal, ProviderError
from providers.kubernetes import KubeClusters, KubeconfigCluster, KubernetesProvider
from providers.kubernetes import KubernetesTarget as Target
from providers.kubernetes.bindings import unit_hash
from providers.kubernetes.calls import OPERATION_BUDGET, RETRY, TIMEOUT_SECONDS
from tests.fakes.kubernetes import MANAGED_BY, RBAC, FakeKubernetes

REVOKE_DEADLINE: timedelta = Settings.model_fields["revoke_deadline"].default
ALICE = Principal(slack_user_id="U0ALICE", email="Alice@Example.com")
EXPIRES = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)


def _context(request_id: str = "R-7K2M9QXA", expires_at: datetime = EXPIRES) -> GrantContext:
    return GrantContext(request_id, "prod-support", "prod", "INC-1", expires_at)


@pytest.fixture
def cluster(kube: FakeKubernetes, tmp_path: Path) -> KubeconfigCluster:
    for namespace in ("payments", "orders"):
        kube.add_namespace(namespace)
    path = kube.kubeconfig(tmp_path / "kubeconfig", context="prod")
    return KubeconfigCluster(kubeconfig=str(path), context="prod")


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def provider(waits: list[float]) -> KubernetesProvider:
    return KubernetesProvider(KubeClusters(), sleep=waits.append)


def _target(cluster: KubeconfigCluster, **fields: Any) -> Target:
    fields.setdefault("namespaces", ["payments"])
    return Target(cluster=cluster, cluster_role=fields.pop("cluster_role", "edit"), **fields)


def _user_subjects(binding: dict[str, Any]) -> list[str]:
    return [s["name"] for s in binding["subjects"] if s["kind"] == "User"]


def test_a_grant_is_a_rolebinding_per_namespace_named_labelled_and_annotated_for_the_request(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    target = _target(cluster, namespaces=["payments", "orders"])
    units = provider.expand(target)

    outcomes = [provider.grant(ALICE, unit, _context()) for unit in units]

    assert [o.principal for o in outcomes] == ["alice@example.com"] * 2
    for index, namespace in enumerate(("payments", "orders")):
        [binding] = kube.role_bindings(namespace)
        assert binding["metadata"]["name"] == "jit-r-7k2m9qxa"
        assert binding["metadata"]["labels"] == {MANAGED_BY: "jit-bot"}
        assert binding["metadata"]["annotations"] == {
            "jit-bot.io/request-id": "R-7K2M9QXA",
            "jit-bot.io/requester": "alice@example.com",
            "jit-bot.io/expires-at": "2030-05-01T12:00:00Z",
            "jit-bot.io/unit": unit_hash(provider.expand(target)[index].key()),
        }
        assert binding["roleRef"] == {"apiGroup": RBAC, "kind": "ClusterRole", "name": "edit"}
        assert binding["subjects"] == [
            {"apiGroup": RBAC, "kind": "User", "name": "alice@example.com"}
        ]
    assert [provider.describe(u) for u in units] == [
        "Kubernetes `prod` namespace `payments`: ClusterRole `edit`",
        "Kubernetes `prod` namespace `orders`: ClusterRole `edit`",
    ]


def test_cluster_wide_is_one_clusterrolebinding_and_the_user_template_names_the_subject(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    target = _target(
        cluster, namespaces=[], cluster_wide=True, cluster_role="view", user_template="oidc:{local}"
    )

    provider.grant(ALICE, target, _context())

    [binding] = kube.managed()
    assert binding["kind"] == "ClusterRoleBinding"
    assert _user_subjects(binding) == ["oidc:alice"]
    assert provider.describe(target) == (
        "Kubernetes `prod` cluster-wide: ClusterRole `view` as user `oidc:{local}`"
    )
    assert provider.is_granted(ALICE, target) is True
    provider.revoke(ALICE, target, _context())
    assert kube.cluster_role_bindings() == []


def test_a_retried_grant_whose_binding_landed_already_is_success_and_writes_nothing_new(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    target = _target(cluster)
    provider.grant(ALICE, target, _context())
    before = kube.role_bindings("payments")

    provider.grant(ALICE, target, _context())

    assert kube.role_bindings("payments") == before
    assert len(kube.calls_to("POST", "rolebindings")) == 1  # found first, not made again


def test_a_create_whose_answer_was_lost_is_success_on_the_409_of_its_retry(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    kube.fail_next("POST", "rolebindings", code=503, applied=True)

    outcome = provider.grant(ALICE, _target(cluster), _context())

    assert not outcome.preexisting
    assert len(kube.managed("payments")) == 1
    assert [c.status for c in kube.calls_to("POST", "rolebindings")] == [503, 409]


def test_a_binding_of_the_same_name_that_is_not_ours_is_a_clear_error(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    kube.add_role_binding(
        "payments",
        {
            "metadata": {"name": "jit-r-7k2m9qxa"},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "admin"},
            "subjects": [{"apiGroup": RBAC, "kind": "User", "name": "mallory@example.com"}],
        },
    )

    with pytest.raises(ProviderError, match="jit-r-7k2m9qxa exists that jit-bot did not make"):
        provider.grant(ALICE, _target(cluster), _context())

    provider.revoke(ALICE, _target(cluster), _context())
    assert len(kube.role_bindings("payments")) == 1  # not ours: never deleted


def test_one_request_binding_two_cluster_roles_in_one_namespace_gets_two_bindings(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    edit, view = _target(cluster), _target(cluster, cluster_role="view")

    provider.grant(ALICE, edit, _context())
    provider.grant(ALICE, view, _context())
    provider.grant(ALICE, view, _context())  # retried: still two

    names = sorted(b["metadata"]["name"] for b in kube.managed("payments"))
    assert len(names) == 2 and names[0] == "jit-r-7k2m9qxa"
    provider.revoke(ALICE, edit, _context())
    assert [b["roleRef"]["name"] for b in kube.managed("payments")] == ["view"]


def test_throttling_is_waited_out_as_the_cluster_asks_and_the_grant_lands(
    kube: FakeKubernetes,
    provider: KubernetesProvider,
    cluster: KubeconfigCluster,
    waits: list[float],
) -> None:
    kube.fail_next("POST", "rolebindings", times=2, code=429, retry_after=3)
    kube.fail_next("GET", "rolebindings", times=1, code=500)

    provider.grant(ALICE, _target(cluster), _context())

    assert len(kube.managed("payments")) == 1
    assert waits.count(3.0) == 2  # the Retry-After, twice
    assert len(waits) == 3


def test_a_cluster_that_keeps_failing_is_a_retryable_error_within_the_budget(
    kube: FakeKubernetes,
    provider: KubernetesProvider,
    cluster: KubeconfigCluster,
    waits: list[float],
) -> None:
    kube.fail_next("POST", "rolebindings", times=RETRY.attempts, code=503)

    with pytest.raises(
        ProviderError, match=r"create RoleBinding jit-r-7k2m9qxa failed \(503\)"
    ) as raised:
        provider.grant(ALICE, _target(cluster), _context())

    assert raised.value.retryable
    assert sum(waits) <= RETRY.budget  # type: ignore[operator]
    assert kube.managed("payments") == []


def test_an_unreachable_cluster_is_a_retryable_error_and_the_revoke_lands_once_it_answers(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    target = _target(cluster)
    provider.grant(ALICE, target, _context())

    with (
        kube.unreachable(),
        pytest.raises(ProviderError, match="cannot reach the cluster") as raised,
    ):
        provider.revoke(ALICE, target, _context())

    assert raised.value.retryable
    assert len(kube.managed("payments")) == 1
    provider.revoke(ALICE, target, _context())
    assert kube.managed("payments") == []


def test_standing_access_is_reported_and_left_alone(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    theirs = {
        "metadata": {"name": "alice-edit"},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": RBAC, "kind": "User", "name": "alice@example.com"}],
    }
    kube.add_role_binding("payments", theirs)
    target = _target(cluster)

    outcome = provider.grant(ALICE, target, _context())

    assert outcome.preexisting
    assert kube.managed("payments") == []
    provider.revoke(ALICE, target, _context())
    assert [b["metadata"]["name"] for b in kube.role_bindings("payments")] == ["alice-edit"]


def test_revoke_removes_only_this_requests_binding(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    target = _target(cluster)
    provider.grant(ALICE, target, _context("R-FIRST001"))
    provider.grant(ALICE, target, _context("R-SECOND02"))

    provider.revoke(ALICE, target, _context("R-FIRST001"))

    assert [b["metadata"]["name"] for b in kube.managed("payments")] == ["jit-r-second02"]
    assert provider.is_granted(ALICE, target) is True


def test_extend_moves_the_expiry_annotation_later_and_never_earlier(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    target = _target(cluster)
    granted = _context()
    provider.grant(ALICE, target, granted)

    provider.extend(
        ALICE, target, dataclasses.replace(granted, expires_at=EXPIRES + timedelta(hours=2))
    )
    provider.extend(
        ALICE, target, dataclasses.replace(granted, expires_at=EXPIRES - timedelta(hours=1))
    )

    [binding] = kube.managed("payments")
    assert binding["metadata"]["annotations"]["jit-bot.io/expires-at"] == "2030-05-01T14:00:00Z"
    kube.remove_role_binding("payments", "jit-r-7k2m9qxa")
    with pytest.raises(ProviderError, match="no longer holds edit"):
        provider.extend(
            ALICE, target, dataclasses.replace(granted, expires_at=EXPIRES + timedelta(hours=3))
        )
    assert kube.managed("payments") == []


def test_a_missing_kubeconfig_or_context_is_a_clear_error(
    provider: KubernetesProvider, cluster: KubeconfigCluster, tmp_path: Path
) -> None:
    elsewhere = KubeconfigCluster(kubeconfig=str(tmp_path / "none"), context="prod")
    wrong = KubeconfigCluster(kubeconfig=cluster.kubeconfig, context="staging")

    for bad, words in ((elsewhere, "cannot use the kubeconfig"), (wrong, "staging")):
        with pytest.raises(ProviderError, match=words):
            provider.grant(ALICE, _target(bad), _context())


def test_cluster_admin_is_refused_unless_allowed(
    provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    with pytest.raises(ProviderError, match="allow_cluster_admin: true"):
        provider.validate(_target(cluster, cluster_role="cluster-admin"))

    allowed = _target(cluster, cluster_role="cluster-admin", allow_cluster_admin=True)
    assert provider.validate(allowed) == []


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"namespaces": ["a"], "cluster_wide": True}, "not both"),
        ({"namespaces": []}, "expected 'namespaces'"),
        ({"namespaces": ["Payments"]}, "String should match pattern"),
        ({"namespaces": ["a", "a"]}, "names a namespace twice"),
        ({"cluster_role": "edit/../admin"}, "String should match pattern"),
        ({"user_template": "{name}"}, "String should match pattern"),
    ],
)
def test_the_target_model_says_what_is_wrong(
    cluster: KubeconfigCluster, fields: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValidationError, match=words):
        _target(cluster, **fields)


def test_an_eks_cluster_needs_a_name_and_a_region() -> None:
    with pytest.raises(ValidationError, match="region"):
        Target.model_validate(
            {
                "provider": "kubernetes",
                "cluster": {"eks": "prod"},
                "cluster_role": "view",
                "namespaces": ["a"],
            }
        )


def test_a_binding_belongs_to_the_unit_it_was_granted_for_not_to_another_target_of_that_place(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    granted, other = _target(cluster), _target(cluster, allow_cluster_admin=True)
    assert granted.key() != other.key()
    provider.grant(ALICE, granted, _context())

    assert provider.inventory(other) == []
    provider.revoke(ALICE, other, _context())

    assert len(kube.managed("payments")) == 1
    [holding] = provider.inventory(granted) or []
    assert (holding.email, holding.request_id) == ("alice@example.com", "R-7K2M9QXA")


def test_a_resumed_grant_whose_binding_exists_is_not_standing_access_whatever_else_binds_the_user(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    target = _target(cluster)
    provider.grant(ALICE, target, _context())
    kube.add_role_binding(
        "payments",
        {
            "metadata": {"name": "alice-edit"},
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"apiGroup": RBAC, "kind": "User", "name": "alice@example.com"}],
        },
    )

    resumed = provider.grant(ALICE, target, _context())  # the grant, tried again after a crash

    assert not resumed.preexisting  # so the revocation still removes jit-bot's binding
    provider.revoke(ALICE, target, _context())
    assert [b["metadata"]["name"] for b in kube.role_bindings("payments")] == ["alice-edit"]


def test_after_the_bots_token_rotates_the_kubeconfig_is_read_again_and_the_revoke_lands(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    target = _target(cluster)
    provider.grant(ALICE, target, _context())  # the client, with the old token, is kept
    kube.token = "rotated-" + kube.token
    kube.kubeconfig(Path(cluster.kubeconfig), context="prod")

    provider.revoke(ALICE, target, _context())

    assert kube.managed("payments") == []
    assert [c.status for c in kube.calls].count(401) == 1  # the old token, once


def test_a_cluster_whose_ca_changed_is_trusted_again_once_the_kubeconfig_has_the_new_one(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    other = FakeKubernetes()  # a CA of its own: the "old" one
    try:
        other.start()
        stale = Path(cluster.kubeconfig).read_text().replace(str(kube.ca_path), str(other.ca_path))
        Path(cluster.kubeconfig).write_text(stale)
        with pytest.raises(ProviderError, match="certificate") as raised:
            provider.grant(ALICE, _target(cluster), _context())
        assert raised.value.retryable
        kube.kubeconfig(Path(cluster.kubeconfig), context="prod")  # the new CA

        provider.grant(ALICE, _target(cluster), _context())
    finally:
        other.stop()

    assert len(kube.managed("payments")) == 1


def test_a_binding_gone_between_its_409_and_the_read_back_is_created_again(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    kube.fail_next("POST", "rolebindings", code=409)  # a binding there then, gone since

    outcome = provider.grant(ALICE, _target(cluster), _context())

    assert not outcome.preexisting
    assert [b["metadata"]["name"] for b in kube.managed("payments")] == ["jit-r-7k2m9qxa"]


def test_a_binding_kept_by_a_finalizer_fails_the_revoke_retryably_until_it_is_gone(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    target = _target(cluster)
    provider.grant(ALICE, target, _context())
    kube.edit_role_binding("payments", "jit-r-7k2m9qxa", {"metadata": {"finalizers": ["x/hold"]}})

    with pytest.raises(ProviderError, match="still there") as raised:
        provider.revoke(ALICE, target, _context())

    assert raised.value.retryable
    [kept] = kube.role_bindings("payments")
    assert kept["metadata"]["deletionTimestamp"]
    kube.edit_role_binding("payments", "jit-r-7k2m9qxa", {"metadata": {"finalizers": None}})
    provider.revoke(ALICE, target, _context())
    assert kube.role_bindings("payments") == []


def test_a_binding_whose_managed_by_label_was_removed_is_found_by_its_name_and_revoked(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    target = _target(cluster)
    provider.grant(ALICE, target, _context())
    kube.edit_role_binding("payments", "jit-r-7k2m9qxa", {"metadata": {"labels": None}})

    provider.revoke(ALICE, target, _context())

    assert kube.role_bindings("payments") == []


def test_a_binding_changed_since_it_was_read_is_a_retryable_revoke_failure(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    target = _target(cluster)
    provider.grant(ALICE, target, _context())
    kube.fail_next("DELETE", "rolebindings", code=409)  # its uid precondition failed

    with pytest.raises(ProviderError, match="changed since it was read") as raised:
        provider.revoke(ALICE, target, _context())

    assert raised.value.retryable
    provider.revoke(ALICE, target, _context())
    assert kube.role_bindings("payments") == []


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        ({"insecure-skip-tls-verify": True}, "insecure-skip-tls-verify"),
        ({"server": "http://127.0.0.1:9"}, "is not https"),
    ],
    ids=["insecure-skip-tls-verify", "plain-http"],
)
def test_a_kubeconfig_that_would_send_the_token_unverified_is_refused(
    kube: FakeKubernetes,
    provider: KubernetesProvider,
    cluster: KubeconfigCluster,
    edit: dict[str, Any],
    words: str,
) -> None:
    path = Path(cluster.kubeconfig)
    kubeconfig = yaml.safe_load(path.read_text())
    kubeconfig["clusters"][0]["cluster"].update(edit)
    if "insecure-skip-tls-verify" in edit:
        del kubeconfig["clusters"][0]["cluster"]["certificate-authority"]
    path.write_text(yaml.safe_dump(kubeconfig))

    with pytest.raises(ProviderError, match=words):
        provider.grant(ALICE, _target(cluster), _context())

    assert kube.calls == []  # the token never left


def test_a_revocation_against_a_cluster_that_answers_slowly_gives_up_inside_the_deadline(
    kube: FakeKubernetes, cluster: KubeconfigCluster
) -> None:
    waits: list[float] = []

    def now() -> float:  # each request takes as long as a try may (then it times out)
        return TIMEOUT_SECONDS * len(kube.calls) + sum(waits)

    provider = KubernetesProvider(KubeClusters(), sleep=waits.append, timer=now)
    target = _target(cluster)
    provider.grant(ALICE, target, _context())
    kube.fail_next("DELETE", "rolebindings", times=RETRY.attempts, code=503)
    started = now()

    with pytest.raises(ProviderError) as raised:
        provider.revoke(ALICE, target, _context())

    assert raised.value.retryable
    # The last try started with time left; here it takes a full timeout (a real one is
    # cut to what was left).
    assert now() - started <= OPERATION_BUDGET + TIMEOUT_SECONDS
    assert now() - started < REVOKE_DEADLINE.total_seconds()
    assert len(kube.managed("payments")) == 1  # swept again later


def test_a_group_added_to_a_jit_binding_is_held_by_nobody_and_not_cleaned_up_silently(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    target = _target(cluster)
    provider.grant(ALICE, target, _context())
    [binding] = kube.role_bindings("payments")
    masters = {"apiGroup": RBAC, "kind": "Group", "name": "system:masters"}
    kube.edit_role_binding(
        "payments", "jit-r-7k2m9qxa", {"subjects": [*binding["subjects"], masters]}
    )

    holders = sorted(h.email for h in provider.inventory(target) or [])

    assert holders == ["Group:system:masters", "alice@example.com"]
    drift = Principal(slack_user_id="", email="group:system:masters")  # as drift asks
    with pytest.raises(ProviderError, match="made for someone else"):
        provider.revoke(drift, target, _context())
    assert len(kube.role_bindings("payments")) == 1  # Alice's grant stays
