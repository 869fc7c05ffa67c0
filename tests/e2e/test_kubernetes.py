"""Kubernetes end to end: signed Slack requests → approval → a RoleBinding per namespace
whose subject is the person, in the fake API server (over HTTPS, reached by the official
client through a kubeconfig with the bot's bearer token) → expiry → the bindings are gone;
overlapping grants; a cluster that is down at expiry; drift."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from providers.kubernetes import KubeClusters, KubernetesProvider
from tests.conftest import ALICE, BOB, SEC1, Bot
from tests.e2e.helpers import click, submit
from tests.fakes.kubernetes import MANAGED_BY, RBAC, FakeKubernetes
from tests.kit.configs import APPROVERS_YAML, roles_yaml, target


@pytest.fixture
def cluster(kube: FakeKubernetes, tmp_path: Path) -> Path:
    for namespace in ("payments", "orders", "staging"):
        kube.add_namespace(namespace)
    return kube.kubeconfig(tmp_path / "kubeconfig", context="prod")


def kube_target(kubeconfig: Path, namespaces: str) -> str:
    return target(
        "kubernetes",
        cluster=f"{{kubeconfig: {kubeconfig}, context: prod}}",
        cluster_role="edit",
        namespaces=namespaces,
    )


@pytest.fixture
def kube_bot(make_bot: Callable[..., Bot], cluster: Path) -> Callable[..., Bot]:
    """prod-support binds `edit` in payments and orders (prod) and in staging."""

    def start(approvers: str = APPROVERS_YAML) -> Bot:
        prod, staging = (
            kube_target(cluster, "[payments, orders]"),
            kube_target(cluster, "[staging]"),
        )
        roles = roles_yaml(prod=prod, staging=staging, db_prod=prod, db_dev=staging)
        providers = {"kubernetes": KubernetesProvider(KubeClusters(), sleep=lambda _: None)}
        return make_bot(roles=roles, approvers=approvers, providers=providers)

    return start


def _subjects(binding: dict[str, Any]) -> list[dict[str, str]]:
    return list(binding["subjects"])


def _requests(kube: FakeKubernetes, namespace: str) -> list[str]:
    return sorted(
        b["metadata"]["annotations"]["jit-bot.io/request-id"] for b in kube.managed(namespace)
    )


def test_an_approved_request_binds_the_role_to_the_person_until_expiry(
    kube_bot: Callable[..., Bot], kube: FakeKubernetes
) -> None:
    bot = kube_bot()
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-42")
    dm = str(bot.dms_to(BOB)[-1]["blocks"])
    assert "Kubernetes `prod` namespace `payments`: ClusterRole `edit`" in dm
    assert "Kubernetes `prod` namespace `orders`: ClusterRole `edit`" in dm
    assert kube.calls_to("POST", "rolebindings") == []  # nothing before approval

    click(bot, BOB, "approve", request_id)

    request = bot.service.get(request_id)
    assert request.status == "active" and request.expires_at is not None
    for namespace in ("payments", "orders"):
        [binding] = kube.role_bindings(namespace)
        assert binding["metadata"]["name"] == "jit-" + request_id.lower()
        assert binding["metadata"]["labels"][MANAGED_BY] == "jit-bot"
        annotations = binding["metadata"]["annotations"]
        assert annotations["jit-bot.io/request-id"] == request_id
        assert annotations["jit-bot.io/requester"] == "alice@example.com"
        assert annotations["jit-bot.io/expires-at"] == request.expires_at.strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        assert binding["roleRef"] == {"apiGroup": RBAC, "kind": "ClusterRole", "name": "edit"}
        assert _subjects(binding) == [
            {"apiGroup": RBAC, "kind": "User", "name": "alice@example.com"}
        ]

    bot.clock.advance(timedelta(hours=1))
    bot.service.sweep()
    bot.settle()

    assert bot.service.get(request_id).status == "revoked"
    assert kube.role_bindings("payments") == [] and kube.role_bindings("orders") == []
    # Every call carried the bot's token and was answered (no 401 anywhere); the 404s are
    # the revoked bindings read back.
    assert {c.status for c in kube.calls} <= {200, 201, 404}
    assert {c.method for c in kube.calls if c.status == 404} == {"GET"}


def test_overlapping_grants_each_have_their_own_binding_and_end_on_their_own(
    kube_bot: Callable[..., Bot], kube: FakeKubernetes
) -> None:
    bot = kube_bot()
    longer = submit(bot, ALICE, "prod-support staging 4h INC-1")
    click(bot, SEC1, "approve", longer)
    shorter = submit(bot, ALICE, "prod-support staging 1h INC-2")
    click(bot, SEC1, "approve", shorter)
    assert _requests(kube, "staging") == sorted([longer, shorter])

    click(bot, ALICE, "end_access", longer)

    assert bot.service.get(longer).status == "revoked"
    assert _requests(kube, "staging") == [shorter]
    assert bot.service.get(shorter).status == "active"

    bot.clock.advance(timedelta(hours=1))
    bot.service.sweep()
    bot.settle()

    assert bot.service.get(shorter).status == "revoked"
    assert kube.managed("staging") == []


def test_a_cluster_that_is_down_at_expiry_is_swept_until_the_binding_is_gone(
    kube_bot: Callable[..., Bot], kube: FakeKubernetes
) -> None:
    bot = kube_bot()
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-3")
    click(bot, SEC1, "approve", request_id)

    bot.clock.advance(timedelta(hours=1))
    with kube.unreachable():
        bot.service.sweep()
        bot.settle()
        assert bot.service.get(request_id).status == "revoke_failed"
        assert len(kube.managed("staging")) == 1

    bot.clock.advance(timedelta(minutes=1))
    bot.service.sweep()
    bot.settle()

    assert bot.service.get(request_id).status == "revoked"
    assert kube.managed("staging") == []


def test_drift_finds_bindings_nobody_explains_and_grants_the_cluster_lost(
    kube_bot: Callable[..., Bot], kube: FakeKubernetes
) -> None:
    bot = kube_bot(approvers=APPROVERS_YAML + "  revoke_unknown: true\n")
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-1")
    click(bot, SEC1, "approve", request_id)
    assert bot.runtime.drift.run() == []
    # Alice's binding is deleted by hand; one of Carol's, labelled as jit-bot's, is left
    # behind by a bot whose database was lost; someone's own binding is not jit-bot's.
    kube.remove_role_binding("staging", "jit-" + request_id.lower())
    leftover = {
        "metadata": {
            "name": "jit-r-lost0001",
            "labels": {MANAGED_BY: "jit-bot"},
            "annotations": {
                "jit-bot.io/request-id": "R-LOST0001",
                "jit-bot.io/requester": "carol@example.com",
            },
        },
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": RBAC, "kind": "User", "name": "carol@example.com"}],
    }
    kube.add_role_binding("staging", leftover)
    kube.add_role_binding(
        "staging",
        {**leftover, "metadata": {"name": "team-edit"}, "subjects": leftover["subjects"]},
    )

    findings = bot.runtime.drift.run()

    assert {(f.kind, f.email) for f in findings} == {
        ("missing", "alice@example.com"),
        ("unexplained", "carol@example.com"),
    }
    [unexplained] = [f for f in findings if f.kind == "unexplained"]
    assert unexplained.target == "Kubernetes `prod` namespace `staging`: ClusterRole `edit`"
    # revoke_unknown removed the leftover, and only it.
    assert [b["metadata"]["name"] for b in kube.role_bindings("staging")] == ["team-edit"]


def _forged(request_id: str, requester: str, user: str, name: str) -> dict[str, Any]:
    """A binding labelled as jit-bot's that names a request it was not made for."""
    return {
        "metadata": {
            "name": name,
            "labels": {MANAGED_BY: "jit-bot"},
            "annotations": {"jit-bot.io/request-id": request_id, "jit-bot.io/requester": requester},
        },
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": RBAC, "kind": "User", "name": user}],
    }


def test_revoke_unknown_removes_a_binding_borrowing_a_live_request_id_and_not_that_requests_own(
    kube_bot: Callable[..., Bot], kube: FakeKubernetes
) -> None:
    bot = kube_bot(approvers=APPROVERS_YAML + "  revoke_unknown: true\n")
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-1")
    click(bot, SEC1, "approve", request_id)
    forged = _forged(request_id, "mallory@example.com", "mallory@example.com", "jit-forged")
    kube.add_role_binding("staging", forged)

    findings = bot.runtime.drift.run()

    assert [(f.kind, f.email) for f in findings] == [("unexplained", "mallory@example.com")]
    # Only the forged binding went; Alice's live grant is untouched.
    assert [b["metadata"]["name"] for b in kube.role_bindings("staging")] == [
        "jit-" + request_id.lower()
    ]
    assert bot.service.get(request_id).status == "active"


def test_a_person_swapped_into_a_jit_binding_is_unexplained_and_the_requester_missing(
    kube_bot: Callable[..., Bot], kube: FakeKubernetes
) -> None:
    bot = kube_bot(approvers=APPROVERS_YAML + "  revoke_unknown: true\n")
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-1")
    click(bot, SEC1, "approve", request_id)
    name = "jit-" + request_id.lower()
    [binding] = kube.role_bindings("staging")
    kube.remove_role_binding("staging", name)
    swapped = [{"apiGroup": RBAC, "kind": "User", "name": "mallory@example.com"}]
    kube.add_role_binding("staging", {**binding, "subjects": swapped})

    findings = bot.runtime.drift.run()

    assert {(f.kind, f.email) for f in findings} == {
        ("missing", "alice@example.com"),
        ("unexplained", "mallory@example.com"),
    }
    # The binding was made for Alice: drift does not delete it on a stranger's account,
    # it says why it left it.
    assert [b["metadata"]["name"] for b in kube.role_bindings("staging")] == [name]
    actions = [e.action for e in bot.service.audit_events()]
    assert "drift_revoke_failed" in actions and "drift_revoked" not in actions
