"""`jit-bot check --live` on a cluster (the fake API server): the ClusterRole and each
namespace exist, the cluster itself says (SelfSubjectAccessReview) the bot may create,
read, list, patch and delete the bindings there, and a ClusterRole that gives everything
is refused unless the target allows it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.local.stand_ins import stand_ins
from providers.base import GrantContext, Principal, ProviderError
from providers.kubernetes import KubeClusters, KubeconfigCluster, KubernetesProvider
from providers.kubernetes import KubernetesTarget as Target
from tests.fakes.kubernetes import RBAC, FakeKubernetes
from tests.fakes.processes import run_cli
from tests.kit.configs import APPROVERS_YAML, roles_yaml, target
from tests.kit.docs import ROOT, example_targets


@pytest.fixture
def cluster(kube: FakeKubernetes, tmp_path: Path) -> KubeconfigCluster:
    kube.add_namespace("payments")
    path = kube.kubeconfig(tmp_path / "kubeconfig", context="prod")
    return KubeconfigCluster(kubeconfig=str(path), context="prod")


@pytest.fixture
def provider() -> KubernetesProvider:
    return KubernetesProvider(KubeClusters(), sleep=lambda _: None)


ALICE = Principal(slack_user_id="U0ALICE", email="alice@example.com")
BOB = Principal(slack_user_id="U0BOB", email="bob@example.com")
CONTEXT = GrantContext(
    "R-CHECK001", "prod-support", "prod", "INC-1", datetime(2030, 5, 1, tzinfo=UTC)
)


def _named(verbs: list[str], role: str) -> dict[str, Any]:
    """A rule that gives ``verbs`` on one ClusterRole, by name."""
    return {
        "apiGroups": [RBAC],
        "resources": ["clusterroles"],
        "verbs": verbs,
        "resourceNames": [role],
    }


def _target(cluster: KubeconfigCluster, **fields: Any) -> Target:
    fields.setdefault("namespaces", ["payments"])
    return Target(cluster=cluster, cluster_role=fields.pop("cluster_role", "edit"), **fields)


def test_a_live_check_passes_when_the_bot_may_manage_bindings_there(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    assert provider.validate(_target(cluster), live=True) == []

    reviewed = {
        (
            c.body["spec"]["resourceAttributes"]["verb"],
            c.body["spec"]["resourceAttributes"]["resource"],
        )
        for c in kube.calls_to("POST", "selfsubjectaccessreviews")
        if c.body
    }
    assert reviewed >= {(verb, "rolebindings") for verb in ("create", "delete", "list", "get")}
    # One binding tried as a server-side dry run, nothing stored.
    [tried] = kube.calls_to("POST", "rolebindings")
    assert tried.query == "dryRun=All" and tried.status == 201
    assert kube.role_bindings("payments") == []


def test_a_live_check_names_a_missing_cluster_role_and_missing_namespaces(
    provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    with pytest.raises(ProviderError, match="ClusterRole `editor` does not exist"):
        provider.validate(_target(cluster, cluster_role="editor"), live=True)
    with pytest.raises(ProviderError) as raised:
        provider.validate(_target(cluster, namespaces=["payments", "nope", "gone"]), live=True)
    assert "namespace `nope` does not exist; namespace `gone` does not exist" in str(raised.value)


def test_a_live_check_names_what_the_cluster_does_not_let_the_bot_do(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    kube.deny("delete", "rolebindings", "payments")
    kube.deny("create", "clusterrolebindings")

    with pytest.raises(ProviderError, match="may not delete rolebindings there"):
        provider.validate(_target(cluster), live=True)
    wide = _target(cluster, namespaces=[], cluster_wide=True, cluster_role="view")
    with pytest.raises(ProviderError, match="may not create clusterrolebindings"):
        provider.validate(wide, live=True)


def test_without_bind_on_the_role_in_the_bindings_namespace_the_check_warns(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    kube.deny("bind", "clusterroles", "payments")  # as the API server asks it: there

    [warning] = provider.validate(_target(cluster), live=True)

    assert "namespace `payments`: the bot lacks `bind` on ClusterRole `edit` there" in warning


def test_a_binding_the_cluster_would_refuse_fails_the_check_by_its_dry_run(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    kube.fail_next("POST", "rolebindings", code=403)  # RBAC's escalation check, say

    with pytest.raises(ProviderError, match=r"RoleBinding of ClusterRole `edit` \(dry run\)"):
        provider.validate(_target(cluster), live=True)

    assert kube.role_bindings("payments") == []


@pytest.mark.parametrize(
    "rules",
    [
        [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
        [{"apiGroups": [RBAC], "resources": ["clusterroles"], "verbs": ["bind"]}],
        [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["escalate"]}],
        [_named(["bind"], "cluster-admin")],
        [_named(["escalate"], "view")],
        [{"apiGroups": [""], "resources": ["groups"], "verbs": ["impersonate"]}],
    ],
    ids=[
        "everything",
        "bind-any-clusterrole",
        "escalate-anything",
        "bind-cluster-admin-by-name",
        "escalate-one-named-role",
        "impersonate-groups",
    ],
)
def test_a_cluster_role_that_gives_everything_is_refused_unless_allowed(
    kube: FakeKubernetes,
    provider: KubernetesProvider,
    cluster: KubeconfigCluster,
    rules: list[dict[str, Any]],
) -> None:
    kube.add_cluster_role("platform-root", rules)

    with pytest.raises(ProviderError, match="`platform-root` gives everything"):
        provider.validate(_target(cluster, cluster_role="platform-root"), live=True)
    allowed = _target(cluster, cluster_role="platform-root", allow_cluster_admin=True)
    assert provider.validate(allowed, live=True) == []


def test_bind_on_one_named_role_is_not_everything_when_that_role_is_not(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    kube.add_cluster_role("view-granter", [_named(["bind"], "view")])

    assert provider.validate(_target(cluster, cluster_role="view-granter"), live=True) == []


def test_bind_on_a_named_role_that_binds_cluster_admin_in_turn_is_everything(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    kube.add_cluster_role("admin-granter", [_named(["bind"], "cluster-admin")])
    kube.add_cluster_role("granter-granter", [_named(["bind"], "admin-granter")])

    with pytest.raises(ProviderError, match="may bind ClusterRole `admin-granter`"):
        provider.validate(_target(cluster, cluster_role="granter-granter"), live=True)


def test_a_grant_refuses_a_cluster_role_widened_after_the_check_and_asks_again_minutes_later(
    kube: FakeKubernetes, cluster: KubeconfigCluster
) -> None:
    now = [0.0]
    provider = KubernetesProvider(KubeClusters(), sleep=lambda _: None, timer=lambda: now[0])
    kube.add_cluster_role(
        "debugger", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
    )
    target = _target(cluster, cluster_role="debugger")
    assert provider.validate(target, live=True) == []
    provider.grant(ALICE, target, CONTEXT)
    # Someone widens it (or a role aggregated into it gains `*`).
    kube.add_cluster_role("debugger", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}])

    provider.grant(ALICE, target, CONTEXT)  # within minutes of the last look: trusted
    now[0] += 301

    with pytest.raises(ProviderError, match="`debugger` gives everything"):
        provider.grant(BOB, target, CONTEXT)
    assert [b["subjects"][0]["name"] for b in kube.managed("payments")] == ["alice@example.com"]
    assert len(kube.calls_to("GET", "clusterroles")) == 3  # the check, two grants' looks


def test_jit_bot_check_live_asks_the_cluster_and_exits_2_naming_the_target(
    kube: FakeKubernetes, cluster: KubeconfigCluster, tmp_path: Path
) -> None:
    def roles(namespaces: str) -> str:
        entry = target(
            "kubernetes",
            cluster=f"{{kubeconfig: {cluster.kubeconfig}, context: prod}}",
            cluster_role="edit",
            namespaces=namespaces,
        )
        return roles_yaml(prod=entry, staging=entry, db_prod=entry, db_dev=entry)

    (tmp_path / "approvers.yaml").write_text(APPROVERS_YAML)
    (tmp_path / "roles.yaml").write_text(roles("[payments]"))

    done = run_cli(["check", "--live"], {}, tmp_path)

    assert done.returncode == 0, done.stderr
    assert kube.calls_to("POST", "selfsubjectaccessreviews")

    (tmp_path / "roles.yaml").write_text(roles("[payments, billing]"))
    done = run_cli(["check", "--live"], {}, tmp_path)

    assert done.returncode == 2
    assert "roles.prod-support.environments.prod[0]" in done.stderr
    assert "namespace `billing` does not exist" in done.stderr


def test_the_docs_examples_and_the_example_roles_yaml_targets_are_valid() -> None:
    documented = example_targets("kubernetes.md", "kubernetes")
    roles = yaml.safe_load((ROOT / "roles.yaml").read_text())["roles"]
    bundled = [
        entry
        for role in roles.values()
        for targets in role["environments"].values()
        for entry in targets
        if entry["provider"] == "kubernetes"
    ]
    assert len(documented) == 2 and len(bundled) == 2
    provider = KubernetesProvider(KubeClusters(), sleep=lambda _: None)
    stand_in = stand_ins({}, "http://127.0.0.1:9/jit", "JIT_LOCAL_WEBHOOK_SECRET")["kubernetes"]
    for entry in documented + bundled:
        assert provider.validate(Target.model_validate(entry)) == []
        # Local mode with the checkout's roles.yaml reads it through its stand-in.
        assert stand_in.target_model.model_validate(entry)


def test_a_role_the_bot_neither_holds_nor_may_bind_fails_the_check_and_the_grant(
    kube: FakeKubernetes, provider: KubernetesProvider, cluster: KubeconfigCluster
) -> None:
    kube.withhold("edit")  # the bot lacks some of edit's permissions
    kube.deny("bind", "clusterroles", "payments", name="edit")

    with pytest.raises(ProviderError, match="attempting to grant RBAC permissions"):
        provider.validate(_target(cluster), live=True)
    with pytest.raises(ProviderError, match="403 Forbidden"):
        provider.grant(ALICE, _target(cluster), CONTEXT)

    assert kube.role_bindings("payments") == []
