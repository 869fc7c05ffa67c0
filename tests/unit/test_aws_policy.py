"""The IAM policies shipped for the AWS provider match what the provider calls, exactly.

Every code path of the provider is driven against moto in server mode with an
``AwsClients(on_call=…)`` recorder, each recorded (signing name, operation) becomes the
IAM action ``signing_name:Operation``, and then:

- every recorded action is allowed: ``sts:AssumeRole`` by providers/aws-assume-role-policy.json
  (it belongs to the identity the bot runs as), everything else by providers/aws-policy.json
  (the role the bot acts through);
- every action either policy allows was recorded, so neither can grow beyond what the code
  needs, and neither can pass by allowing ``*``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.eks.models import eks_backends

from providers.aws import AwsClients, AwsCredentials, AwsProvider, AwsTarget
from providers.base import GrantContext, Principal
from providers.kubernetes import EksAccess, EksCluster
from providers.sessions import Denial
from tests.fakes.aws import REGION, MotoAws, Seeded

PROVIDERS = Path(__file__).resolve().parents[2] / "providers"
POLICY = PROVIDERS / "aws-policy.json"
ASSUME_ROLE_POLICY = PROVIDERS / "aws-assume-role-policy.json"

ALICE = Principal(slack_user_id="UALICE", email="alice@example.com")
BOB = Principal(slack_user_id="UBOB", email="bob@example.com")
CONTEXT = GrantContext(
    request_id="req-policy",
    role="prod-support",
    environment="prod",
    reason="policy test",
    expires_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
)
ROLE_ARN = "arn:aws:iam::123456789012:role/jit-bot"  # moto's default account holds the seed


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def _actions(document: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for statement in document["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        actions = statement["Action"]
        found += [actions] if isinstance(actions, str) else actions
    return found


def _allows(patterns: list[str], action: str) -> bool:
    # IAM matches actions case-insensitively, with * and ? wildcards.
    return any(fnmatchcase(action.lower(), pattern.lower()) for pattern in patterns)


def _report_in_progress(clients: AwsClients) -> None:
    """moto finishes assignments at once; AWS usually answers IN_PROGRESS. Rewrite moto's
    answer so the provider polls the status, through moto, as it does against AWS."""

    def in_progress(parsed: dict[str, Any], **_: Any) -> None:
        for key in (
            "AccountAssignmentCreationStatus",
            "AccountAssignmentDeletionStatus",
            "PermissionSetProvisioningStatus",
        ):
            if key in parsed:
                parsed[key]["Status"] = "IN_PROGRESS"

    events = clients.client("sso-admin").meta.events
    events.register("after-call.sso-admin.CreateAccountAssignment", in_progress)
    events.register("after-call.sso-admin.DeleteAccountAssignment", in_progress)
    events.register("after-call.sso-admin.ProvisionPermissionSet", in_progress)


def _assign_directly(moto: MotoAws, seeded: Seeded, email: str, account: str) -> None:
    moto.client("sso-admin").create_account_assignment(
        InstanceArn=seeded.instance_arn,
        TargetId=seeded.accounts[account],
        TargetType="AWS_ACCOUNT",
        PermissionSetArn=seeded.permission_sets["ProdSupport"],
        PrincipalType="USER",
        PrincipalId=seeded.users[email],
    )


def _exercise(provider: AwsProvider, moto: MotoAws, seeded: Seeded) -> None:
    """Every public method, every branch that reaches AWS differently."""
    accounts = seeded.accounts
    target = AwsTarget(
        permission_set="Admin",  # a session over 1h: the warning branch too
        accounts=[accounts["shared"]],
        organizational_units=[seeded.ous["prod"]],  # nested OU below it
    )
    assert provider.validate(target, live=True)  # instance, permission set, accounts, OUs

    units = provider.expand(target)
    assert len(units) == 4
    assert all(provider.describe(unit) for unit in units)
    unit = units[0]

    assert provider.grant(ALICE, unit, CONTEXT).preexisting is False  # polled creation
    assert provider.is_granted(ALICE, unit) is True
    holdings = provider.inventory(target)
    assert holdings is not None and [h.email for h in holdings] == [ALICE.email]
    provider.revoke(ALICE, unit, CONTEXT)  # polled deletion
    provider.revoke(ALICE, unit, CONTEXT)  # already gone
    assert provider.is_granted(ALICE, unit) is False

    _assign_directly(moto, seeded, BOB.email, "prod-a")  # standing access
    (standing,) = provider.expand(
        AwsTarget(permission_set="ProdSupport", accounts=[accounts["prod-a"]])
    )
    assert provider.grant(BOB, standing, CONTEXT).preexisting is True

    # Ending live sessions: the Deny written (polled provisioning), then lifted again.
    scope = provider.session_scope(ALICE, unit)
    assert scope is not None
    denial = Denial(
        provider.denial_name(CONTEXT.request_id), scope.principal_id, CONTEXT.expires_at
    )
    assert provider.write_denials(unit, [denial]) is True
    assert provider.write_denials(unit, []) is True

    provider.refresh()  # every lookup again, from cold caches
    assert provider.describe(unit)
    assert provider.is_granted(BOB, standing) is True


def _exercise_eks(clients: AwsClients, moto: MotoAws) -> None:
    """The kubernetes provider's EKS clusters, reached with the same credentials: the
    cluster described, a token presigned (signing is local: no call, no permission)."""
    moto.client("eks").create_cluster(name="prod", roleArn=ROLE_ARN, resourcesVpcConfig={})
    pem = b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"
    cluster = eks_backends[DEFAULT_ACCOUNT_ID][REGION].clusters["prod"]
    cluster.certificate_authority = {"data": base64.b64encode(pem).decode()}
    eks = EksAccess(lambda _region: clients)
    where = EksCluster(eks="prod", region=REGION)
    assert eks.endpoint(where)[1] == pem.decode()
    assert eks.token(where).startswith("k8s-aws-v1.")


@pytest.fixture(scope="module")
def recorded(moto: MotoAws) -> Iterator[set[str]]:
    """The IAM action of every AWS call the provider made, on both credential paths."""
    calls: list[str] = []

    def record(signing_name: str, operation: str) -> None:
        calls.append(f"{signing_name}:{operation}")

    for default in (
        AwsCredentials(),  # the default credential chain
        AwsCredentials(assume_role_arn=ROLE_ARN, external_id="jit-bot-external-id"),
    ):
        moto.reset()
        seeded = moto.seed()
        clients = AwsClients(
            moto.session(),
            region=REGION,
            endpoint_url=moto.endpoint,
            default=default,
            on_call=record,
        )
        _report_in_progress(clients)
        _exercise(AwsProvider(clients, sleep=lambda _: None), moto, seeded)
        _exercise_eks(clients, moto)
    yield set(calls)


@pytest.mark.parametrize("path", [POLICY, ASSUME_ROLE_POLICY], ids=lambda p: p.name)
def test_the_policy_documents_are_well_formed(path: Path) -> None:
    document = _load(path)

    assert document["Version"] == "2012-10-17"
    sids = [statement["Sid"] for statement in document["Statement"]]
    assert len(sids) == len(set(sids)) and all(sid.isalnum() for sid in sids)
    for statement in document["Statement"]:
        assert set(statement) == {"Sid", "Effect", "Action", "Resource"}
        assert statement["Effect"] == "Allow"
        assert isinstance(statement["Action"], list) and statement["Action"]


@pytest.mark.parametrize("path", [POLICY, ASSUME_ROLE_POLICY], ids=lambda p: p.name)
def test_the_policies_allow_no_wildcard_actions(path: Path) -> None:
    actions = _actions(_load(path))

    assert "*" not in actions
    assert not [action for action in actions if action.endswith(":*")]
    assert len(actions) == len({action.lower() for action in actions})


def test_every_call_the_provider_makes_is_allowed(recorded: set[str]) -> None:
    role = _actions(_load(POLICY))
    runtime = _actions(_load(ASSUME_ROLE_POLICY))

    # sts:AssumeRole is made by the identity the bot runs as, before it holds the role.
    refused = sorted(
        action
        for action in recorded
        if not _allows(runtime if action.startswith("sts:") else role, action)
    )
    assert refused == []


def test_every_action_the_policies_allow_is_exercised(recorded: set[str]) -> None:
    sts = {action for action in recorded if action.startswith("sts:")}
    rest = recorded - sts

    for path, made in ((POLICY, rest), (ASSUME_ROLE_POLICY, sts)):
        unused = [
            pattern
            for pattern in _actions(_load(path))
            if not any(_allows([pattern], action) for action in made)
        ]
        assert unused == [], f"{path.name} allows actions the provider never calls"


def test_both_credential_paths_were_driven(recorded: set[str]) -> None:
    assert "sts:AssumeRole" in recorded
    assert {"sso:CreateAccountAssignment", "sso:DescribeAccountAssignmentCreationStatus"} <= (
        recorded
    )
    assert {"sso:DeleteAccountAssignment", "sso:DescribeAccountAssignmentDeletionStatus"} <= (
        recorded
    )
