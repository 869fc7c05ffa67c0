"""Azure end to end: signed Slack requests → approval → a PIM schedule or an RBAC role
assignment exists in Azure (the local fake of ARM, Graph and Entra ID, over HTTPS through
the official SDK) → early end or expiry → AdminRemove sent, or the assignment deleted."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import load_config
from providers.azure import AzureProvider, AzureTarget
from providers.fake import FakeProvider
from tests.conftest import ALICE, APPROVERS_YAML, BOB, MALLORY, SEC1, Bot
from tests.e2e.helpers import click, latest, submit
from tests.fakes.azure import READER, SUBSCRIPTION, FakeAzure, Identity
from tests.fakes.processes import run_cli
from tests.kit.configs import roles_yaml, target
from tests.kit.docs import example_targets

PROD = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/prod"
LOGS = f"{PROD}/providers/Microsoft.Storage/storageAccounts/prodlogs"
STAGING = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/staging"

FAKE_DEV = """
        - provider: fake
          resource: db-dev"""


def _roles(*, admin: str = "Contributor", dev: str = FAKE_DEV) -> str:
    return roles_yaml(
        prod=target("azure", role="Reader", scopes=f"[{PROD}, {LOGS}]"),
        staging=target("azure", role="Reader", mode="rbac", scopes=f"[{STAGING}]"),
        db_prod=target("azure", role=admin, mode="rbac", scopes=f"[{PROD}]"),
        db_dev=dev,
    )


@pytest.fixture
def azure(empty_azure: FakeAzure) -> FakeAzure:
    for person in ("alice", "bob", "carol"):  # mallory has no Entra ID account
        empty_azure.add_user(f"{person}@example.com", mail=f"{person}@example.com")
    return empty_azure


@pytest.fixture
def waits() -> list[float]:
    """What the azure provider was told to sleep, instead of sleeping."""
    return []


@pytest.fixture
def azure_bot(
    make_bot: Callable[..., Bot], azure: FakeAzure, waits: list[float]
) -> Callable[[], Bot]:
    def start() -> Bot:
        providers = {
            "azure": AzureProvider(azure.clients(), sleep=waits.append),
            "fake": FakeProvider(),
        }
        return make_bot(roles=_roles(), approvers=APPROVERS_YAML, providers=providers)

    return start


def _requests(azure: FakeAzure, kind: str) -> list[dict[str, Any]]:
    return [
        r["properties"] for r in azure.schedule_requests() if r["properties"]["requestType"] == kind
    ]


def _expire(bot: Bot) -> None:
    bot.clock.advance(timedelta(hours=1))
    bot.service.sweep()
    bot.settle()


ALICE_PROD = {("alice@example.com", PROD, "Reader"), ("alice@example.com", LOGS, "Reader")}


def test_an_approved_request_gets_pim_assignments_azure_ends_and_the_bot_ends_on_time(
    azure_bot: Callable[[], Bot], azure: FakeAzure
) -> None:
    bot = azure_bot()
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-42")
    dm = str(bot.dms_to(BOB)[-1]["blocks"])
    assert f"Azure {PROD}: role `Reader` (PIM, ends by itself)" in dm
    assert f"Azure {LOGS}: role `Reader` (PIM, ends by itself)" in dm
    assert azure.assignments() == set()

    click(bot, BOB, "approve", request_id)
    assert bot.service.get(request_id).status == "active"
    assert azure.assignments() == ALICE_PROD
    assigned = _requests(azure, "AdminAssign")
    assert [(r["scope"], r["scheduleInfo"]["expiration"]) for r in assigned] == [
        (PROD, {"type": "AfterDuration", "duration": "PT1H"}),
        (LOGS, {"type": "AfterDuration", "duration": "PT1H"}),
    ]
    assert all(r["justification"].startswith(f"jit-bot {request_id} grants") for r in assigned)
    assert all("INC-42" in r["justification"] for r in assigned)

    _expire(bot)
    assert bot.service.get(request_id).status == "revoked"
    assert [r["scope"] for r in _requests(azure, "AdminRemove")] == [PROD, LOGS]
    assert azure.assignments() == set()


def test_pim_access_azure_already_ended_is_revoked_without_a_fuss(
    azure_bot: Callable[[], Bot], azure: FakeAzure
) -> None:
    bot = azure_bot()
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-42")
    click(bot, BOB, "approve", request_id)
    # Azure ends the schedules on its own when their hour is up, bot running or not.
    azure.expire(datetime.now(UTC) + timedelta(hours=1, minutes=1))
    assert azure.assignments() == set()

    _expire(bot)

    assert bot.service.get(request_id).status == "revoked"
    removals = azure.calls_to("PUT", "/roleAssignmentScheduleRequests/")[-2:]
    assert [c.body["properties"]["requestType"] for c in removals] == ["AdminRemove"] * 2
    assert [c.status for c in removals] == [400, 400]  # RoleAssignmentDoesNotExist: gone


def test_ending_early_sends_admin_remove(azure_bot: Callable[[], Bot], azure: FakeAzure) -> None:
    bot = azure_bot()
    request_id = submit(bot, ALICE, "prod-support prod 2h INC-42")
    click(bot, BOB, "approve", request_id)

    click(bot, ALICE, "end_access", request_id)

    assert bot.service.get(request_id).status == "revoked"
    removals = _requests(azure, "AdminRemove")
    assert [r["scope"] for r in removals] == [PROD, LOGS]
    assert all(r["justification"].startswith(f"jit-bot {request_id} ends") for r in removals)
    assert azure.assignments() == set()
    assert azure.schedules() == []


def test_an_rbac_grant_is_a_role_assignment_named_by_the_request_that_the_bot_removes(
    azure_bot: Callable[[], Bot], azure: FakeAzure
) -> None:
    bot = azure_bot()
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-7")
    assert f"Azure {STAGING}: role `Reader` (RBAC, removed by jit-bot)" in str(
        bot.dms_to(SEC1)[-1]["blocks"]
    )

    click(bot, SEC1, "approve", request_id)
    assert bot.service.get(request_id).status == "active"
    stored = azure.assignment(AzureProvider.assignment_name(request_id, STAGING, READER))
    assert stored is not None
    assert stored["properties"]["description"].startswith(f"jit-bot {request_id} grants")
    assert _requests(azure, "AdminAssign") == []

    _expire(bot)
    assert bot.service.get(request_id).status == "revoked"
    assert azure.assignments() == set()


@dataclass(frozen=True)
class Refusal:
    """A request that Azure refuses to grant, and what everyone must be shown of why."""

    request: str
    approver: str
    status: int
    code: str
    message: str
    where: dict[str, str]
    shown: list[str]  # each in the request's error and in the requester's and approver's DMs
    reaches_arm: bool  # whether any write reached ARM (the refused one, and what follows)


REFUSALS = [
    pytest.param(
        Refusal(
            "prod-support prod 1h INC-42",
            BOB,
            403,
            "AuthorizationFailed",
            "The client 'jit-bot' does not have authorization to perform action "
            "'Microsoft.Authorization/roleAssignmentScheduleRequests/write'.",
            {"method": "PUT"},
            ["AuthorizationFailed", "roleAssignmentScheduleRequests/write"],
            reaches_arm=True,
        ),
        id="arm_refuses_the_pim_write",
    ),
    pytest.param(
        # What Graph answers when the bot's identity lacks User.Read.All.
        Refusal(
            "prod-support staging 1h INC-7",
            SEC1,
            403,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
            {"path_contains": "/v1.0/users"},
            ["Authorization_RequestDenied: Insufficient privileges to complete the operation."],
            reaches_arm=False,
        ),
        id="graph_refuses_the_user_lookup",
    ),
]


@pytest.mark.parametrize("refusal", REFUSALS)
def test_a_refused_grant_fails_with_azures_code_and_message_shown_to_requester_and_approver(
    azure_bot: Callable[[], Bot], azure: FakeAzure, refusal: Refusal
) -> None:
    bot = azure_bot()
    request_id = submit(bot, ALICE, refusal.request)
    azure.fail_next(refusal.status, refusal.code, refusal.message, **refusal.where)

    click(bot, refusal.approver, "approve", request_id)

    request = bot.service.get(request_id)
    assert request.status == "failed"
    approver_dm = latest(bot.dms_to(refusal.approver)[0])
    for text in (
        request.error or "",
        str(bot.dms_to(ALICE)[-1]["blocks"]),
        str(approver_dm["blocks"]),
    ):
        for shown in refusal.shown:
            assert shown in text
    assert bool(azure.calls_to("PUT", "/providers/")) is refusal.reaches_arm
    assert azure.assignments() == set()


def test_a_throttled_pim_grant_waits_as_azure_asks_and_becomes_active(
    azure_bot: Callable[[], Bot], azure: FakeAzure, waits: list[float]
) -> None:
    bot = azure_bot()
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-42")
    azure.fail_next(
        429,
        "TooManyRequests",
        "slow down",
        method="PUT",
        path_contains=f"{PROD}/providers/Microsoft.Authorization/roleAssignmentScheduleRequests/",
        retry_after="17",
    )

    click(bot, BOB, "approve", request_id)

    assert bot.service.get(request_id).status == "active"
    assert waits == [17.0]
    assert azure.assignments() == ALICE_PROD
    assert [r["scope"] for r in _requests(azure, "AdminAssign")] == [PROD, LOGS]


def test_a_requester_unknown_to_entra_id_gets_nothing_and_everyone_is_told(
    azure_bot: Callable[[], Bot], azure: FakeAzure
) -> None:
    bot = azure_bot()
    request_id = submit(bot, MALLORY, "db-admin prod 1h fix data")
    click(bot, BOB, "approve", request_id)
    click(bot, SEC1, "approve", request_id)

    request = bot.service.get(request_id)
    assert request.status == "failed"
    assert "no Microsoft Entra ID user" in (request.error or "")
    assert "mallory@example.com" in (request.error or "")
    assert "no Microsoft Entra ID user" in str(bot.dms_to(MALLORY)[-1]["blocks"])
    assert "no Microsoft Entra ID user" in str(latest(bot.dms_to(BOB)[0])["blocks"])
    assert azure.calls_to("PUT", "/providers/") == []


def test_standing_access_is_kept_when_the_grant_ends(
    azure_bot: Callable[[], Bot], azure: FakeAzure
) -> None:
    azure.assign("alice@example.com", READER, STAGING)
    bot = azure_bot()
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-1")
    click(bot, SEC1, "approve", request_id)
    assert "standing_access_found" in [e.action for e in bot.service.audit_events(request_id)]

    click(bot, ALICE, "end_access", request_id)

    assert bot.service.get(request_id).status == "revoked"
    assert azure.assignments() == {("alice@example.com", STAGING, "Reader")}
    assert azure.calls_to("DELETE", "/roleAssignments/") == []


ONLY_AZURE_DEV = f"""
        - provider: azure
          role: Reader
          scopes: [{STAGING}]"""


def test_check_live_verifies_each_role_at_each_scope(azure: FakeAzure, tmp_path: Path) -> None:
    (tmp_path / "approvers.yaml").write_text(APPROVERS_YAML)
    (tmp_path / "roles.yaml").write_text(_roles(dev=ONLY_AZURE_DEV))

    done = run_cli(["check", "--live"], azure.environ(), tmp_path)

    assert done.returncode == 0, done.stderr
    assert "prod-support" in done.stdout
    looked_at = {
        c.path.split("/providers/Microsoft.Authorization")[0]
        for c in azure.calls_to("GET", "/roleDefinitions")
    }
    assert looked_at == {PROD, LOGS, STAGING}
    # DefaultAzureCredential found the service principal in AZURE_* and signed in.
    assert azure.token_requests

    (tmp_path / "roles.yaml").write_text(_roles(admin="Contributer", dev=ONLY_AZURE_DEV))
    done = run_cli(["check", "--live"], azure.environ(), tmp_path)

    assert done.returncode == 2
    assert "roles.db-admin.environments.prod[0]" in done.stderr
    assert f"no Azure role named `Contributer` is assignable at {PROD}" in done.stderr


@pytest.mark.parametrize("identity", ["workload_identity", "app_service"])
def test_check_live_signs_in_as_the_hosts_workload_or_managed_identity(
    azure: FakeAzure, tmp_path: Path, identity: Identity
) -> None:
    (tmp_path / "approvers.yaml").write_text(APPROVERS_YAML)
    (tmp_path / "roles.yaml").write_text(_roles(dev=ONLY_AZURE_DEV))
    # The bot process gets its host's identity variables and no client secret.
    done = run_cli(["check", "--live"], azure.environ(identity), tmp_path)

    assert done.returncode == 0, done.stderr
    via = "federated_token" if identity == "workload_identity" else "app_service"
    issued = {t["token"] for t in azure.token_requests if t["via"] == via}
    assert {t["via"] for t in azure.token_requests} == {via}
    lookups = azure.calls_to("GET", "/roleDefinitions")
    assert lookups and {c.bearer for c in lookups} <= issued


# The azure entry for the example roles.yaml (docs/azure.md shows one with a second scope).
EXAMPLE_AZURE_TARGET = """
        # Reader on the prod resource group, as a PIM assignment that Azure itself ends
        # when the request's time is up (mode: pim is the default).
        - provider: azure
          role: Reader
          scopes: [/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/prod]
"""
ONE_RULE = """
groups:
  sre: [U0SRE]
rules:
  - roles: ["*"]
    environments: ["*"]
    approvers: [sre]
settings:
  allowed_email_domains: [example.com]
"""


def _all_models() -> dict[str, Any]:
    from bot.app import default_providers

    return {name: p.target_model for name, p in default_providers({}).items()}


def _load_prod_support(tmp_path: Path, entries: list[dict[str, Any]]) -> list[Any]:
    """Load ``entries`` as prod-support's prod targets and return what the config made."""
    roles = {
        "roles": {
            "prod-support": {
                "max_duration": "4h",
                "environments": {"prod": entries},
            }
        }
    }
    (tmp_path / "roles.yaml").write_text(yaml.safe_dump(roles))
    (tmp_path / "approvers.yaml").write_text(ONE_RULE)
    config = load_config(tmp_path / "roles.yaml", tmp_path / "approvers.yaml", _all_models())
    return list(config.targets[("prod-support", "prod")])


def test_the_documented_example_azure_target_validates(tmp_path: Path) -> None:
    entries = yaml.safe_load(textwrap.dedent(EXAMPLE_AZURE_TARGET))

    [target] = _load_prod_support(tmp_path, entries)

    assert isinstance(target, AzureTarget)
    assert target.mode == "pim"
    assert target.scopes == [
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/prod"
    ]


def test_the_example_on_the_docs_azure_page_validates(tmp_path: Path) -> None:
    [entry] = example_targets("azure.md", "azure")

    [target] = _load_prod_support(tmp_path, [entry])

    assert isinstance(target, AzureTarget)
    assert (target.role, target.mode) == ("Reader", "pim")
    assert target.scopes == entry["scopes"] and len(target.scopes) == 2


def test_the_example_roles_file_has_an_azure_target_that_validates() -> None:
    root = Path(__file__).resolve().parents[2]
    assert EXAMPLE_AZURE_TARGET.strip() in (root / "roles.yaml").read_text()
    config = load_config(root / "roles.yaml", root / "approvers.yaml", _all_models())
    assert any(isinstance(t, AzureTarget) for ts in config.targets.values() for t in ts)
