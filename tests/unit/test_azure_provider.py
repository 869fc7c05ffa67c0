"""The Azure provider against the local fake of Azure Resource Manager, Microsoft Graph and
the Entra ID token endpoints, reached over HTTPS through the official
``AuthorizationManagementClient`` and azure-identity's ``ClientSecretCredential``.

Time is injected: ``now`` is fixed and every wait is recorded instead of slept.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from pydantic import ValidationError

from providers.azure import (
    ARM_ENDPOINT,
    GRAPH_ENDPOINT,
    AzureClients,
    AzureProvider,
    AzureTarget,
    _iso_duration,
    _retry_after,
)
from providers.base import GrantContext, Holding, Principal, ProviderError
from tests.fakes.azure import (
    CLIENT_ID,
    CONTRIBUTOR,
    MANAGED_IDENTITY_CLIENT_ID,
    OTHER_SUBSCRIPTION,
    READER,
    SUBSCRIPTION,
    FakeAzure,
    Identity,
)

NOW = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
ALICE = Principal(slack_user_id="UALICE", email="alice@example.com")
BOB = Principal(slack_user_id="UBOB", email="bob@example.com")
PROD = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/prod"
STAGING = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/staging"
LOGS = f"{PROD}/providers/Microsoft.Storage/storageAccounts/prodlogs"
SUBSCRIPTION_SCOPE = f"/subscriptions/{SUBSCRIPTION}"


def context(request_id: str = "R-1", hours: float = 2) -> GrantContext:
    return GrantContext(
        request_id=request_id,
        role="prod-support",
        environment="prod",
        reason="INC-123 errors in checkout",
        expires_at=NOW + timedelta(hours=hours),
    )


@dataclass
class Sleeps:
    seconds: list[float] = field(default_factory=list)

    def __call__(self, delay: float) -> None:
        self.seconds.append(delay)


@pytest.fixture
def azure(empty_azure: FakeAzure) -> FakeAzure:
    empty_azure.now = lambda: NOW  # PIM checks schedule starts against the provider's clock
    empty_azure.add_user("alice@example.com", mail="alice@example.com")
    empty_azure.add_user("bob@example.com", mail="bob@example.com")
    return empty_azure


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def provider(azure: FakeAzure, sleeps: Sleeps) -> AzureProvider:
    return AzureProvider(azure.clients(), sleep=sleeps, now=lambda: NOW)


def rbac(*scopes: str, role: str = "Reader") -> AzureTarget:
    return AzureTarget(role=role, scopes=list(scopes), mode="rbac")


def pim(*scopes: str, role: str = "Reader") -> AzureTarget:
    return AzureTarget(role=role, scopes=list(scopes), mode="pim")


def requests_of(azure: FakeAzure, kind: str) -> list[dict[str, Any]]:
    return [
        r["properties"] | {"name": r["name"]}
        for r in azure.schedule_requests()
        if r["properties"]["requestType"] == kind
    ]


# ------------------------------------------------------------------ the target model


@pytest.mark.parametrize(
    ("scope", "why"),
    [
        ("/subscriptions/not-a-guid", "not an Azure scope"),
        (f"subscriptions/{SUBSCRIPTION}", "not an Azure scope"),
        (f"/subscriptions/{SUBSCRIPTION}/", "not an Azure scope"),
        (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/", "not an Azure scope"),
        (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/ends-with-dot.", "not an Azure scope"),
        (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{'r' * 91}", "not an Azure scope"),
        (f"{PROD}/providers/Microsoft.Storage", "not an Azure scope"),
        (f"{PROD}/providers/Storage/storageAccounts/x", "not an Azure scope"),
        (f"{PROD}/providers/Microsoft.Storage/storageAccounts", "not an Azure scope"),
        ("/providers/Microsoft.Management/managementGroups/root", "not an Azure scope"),
        (f"{PROD} ", "not an Azure scope"),
    ],
)
def test_scopes_must_be_subscription_resource_group_or_resource_ids(scope: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        AzureTarget(role="Reader", scopes=[scope])


def test_subscriptions_resource_groups_and_resources_are_scopes_written_one_way() -> None:
    target = AzureTarget(
        role="Reader",
        scopes=[
            f"/SUBSCRIPTIONS/{SUBSCRIPTION.upper()}",
            f"/subscriptions/{SUBSCRIPTION}/resourcegroups/Prod_(eu).1",
            f"/subscriptions/{SUBSCRIPTION}/resourceGroups/prod/PROVIDERS/"
            "Microsoft.Sql/servers/db1/databases/orders",
        ],
    )
    assert target.scopes == [
        SUBSCRIPTION_SCOPE,
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/Prod_(eu).1",
        f"{PROD}/providers/Microsoft.Sql/servers/db1/databases/orders",
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"role": "Reader", "scopes": []}, "at least 1 item"),
        (
            {
                "role": "Reader",
                "scopes": [PROD, PROD.upper().replace("SUBSCRIPTIONS", "subscriptions")],
            },
            "listed twice",
        ),
        ({"role": "Reader", "scopes": [PROD], "mode": "eligible"}, "'pim' or 'rbac'"),
        ({"role": "Rea`der", "scopes": [PROD]}, "backticks"),
        ({"role": " Reader", "scopes": [PROD]}, "role name"),
        ({"role": "Reader", "scopes": [PROD], "subscription": SUBSCRIPTION}, "Extra inputs"),
        ({"scopes": [PROD]}, "role"),
    ],
)
def test_the_target_model_rejects_what_cannot_work(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AzureTarget.model_validate({"provider": "azure", **fields})


def test_mode_defaults_to_pim_so_azure_ends_access_by_itself() -> None:
    assert AzureTarget(role="Reader", scopes=[PROD]).mode == "pim"


def test_expand_gives_one_unit_per_scope(provider: AzureProvider) -> None:
    units = provider.expand(rbac(PROD, LOGS))
    assert [u.scopes for u in units] == [[PROD], [LOGS]]  # type: ignore[attr-defined]


def test_describe_says_where_which_role_and_who_ends_it(provider: AzureProvider) -> None:
    assert provider.describe(pim(PROD)) == f"Azure {PROD}: role `Reader` (PIM, ends by itself)"
    assert (
        provider.describe(rbac(PROD)) == f"Azure {PROD}: role `Reader` (RBAC, removed by jit-bot)"
    )


# ------------------------------------------------------------------ role resolution


def test_role_names_resolve_to_definition_ids_per_scope_and_are_cached(
    provider: AzureProvider, azure: FakeAzure
) -> None:
    azure.add_scope(f"/subscriptions/{OTHER_SUBSCRIPTION}/resourceGroups/prod")
    azure.grant_rights(f"/subscriptions/{OTHER_SUBSCRIPTION}")
    other = f"/subscriptions/{OTHER_SUBSCRIPTION}/resourceGroups/prod"
    provider.grant(ALICE, rbac(PROD, other), context())
    provider.grant(BOB, rbac(PROD, other), context("R-2"))

    lookups = azure.calls_to("GET", "/roleDefinitions")
    assert [(c.path.split("/providers/")[0], c.query["$filter"]) for c in lookups] == [
        (PROD, "roleName eq 'Reader'"),
        (other, "roleName eq 'Reader'"),
    ]
    created = azure.calls_to("PUT", "/roleAssignments/")
    assert [c.body["properties"]["roleDefinitionId"] for c in created] == [
        f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{READER}",
        f"/subscriptions/{OTHER_SUBSCRIPTION}/providers/Microsoft.Authorization/"
        f"roleDefinitions/{READER}",
    ] * 2


def test_a_custom_role_resolves_only_where_it_is_assignable(
    provider: AzureProvider, azure: FakeAzure
) -> None:
    azure.add_custom_role("Checkout Operator", [PROD])

    provider.grant(ALICE, rbac(PROD, role="Checkout Operator"), context())
    with pytest.raises(ProviderError, match=r"no Azure role named `Checkout Operator`.*staging"):
        provider.grant(ALICE, rbac(STAGING, role="Checkout Operator"), context())

    assert ("alice@example.com", PROD, "Checkout Operator") in azure.assignments()


def test_a_quote_in_a_role_name_is_escaped_in_the_filter(
    provider: AzureProvider, azure: FakeAzure
) -> None:
    azure.add_custom_role("Bob's Reader", [SUBSCRIPTION_SCOPE])

    provider.grant(ALICE, rbac(PROD, role="Bob's Reader"), context())

    assert azure.calls_to("GET", "/roleDefinitions")[0].query["$filter"] == (
        "roleName eq 'Bob''s Reader'"
    )


@pytest.mark.parametrize(
    "role",
    [
        READER,
        f"/providers/Microsoft.Authorization/roleDefinitions/{READER}",
        f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{READER}",
    ],
)
def test_a_role_definition_id_is_granted_as_such_and_described_by_name(
    provider: AzureProvider, azure: FakeAzure, role: str
) -> None:
    target = rbac(PROD, role=role)

    assert provider.describe(target) == f"Azure {PROD}: role `Reader` (RBAC, removed by jit-bot)"
    provider.grant(ALICE, target, context())

    assert azure.assignments() == {("alice@example.com", PROD, "Reader")}
    assert azure.calls_to("GET", f"/roleDefinitions/{READER}")


def test_refresh_forgets_resolved_roles(provider: AzureProvider, azure: FakeAzure) -> None:
    provider.validate(rbac(PROD), live=True)
    provider.validate(rbac(PROD), live=True)
    assert len(azure.calls_to("GET", "/roleDefinitions")) == 1

    provider.refresh()
    provider.validate(rbac(PROD), live=True)
    assert len(azure.calls_to("GET", "/roleDefinitions")) == 2


# ------------------------------------------------------------------ rbac mode


def test_an_rbac_assignment_is_named_by_request_scope_and_role(
    provider: AzureProvider, azure: FakeAzure
) -> None:
    provider.grant(ALICE, rbac(PROD), context("R-1"))
    provider.grant(BOB, rbac(PROD), context("R-2"))

    names = [c.path.rsplit("/", 1)[-1] for c in azure.calls_to("PUT", "/roleAssignments/")]
    assert names == [
        AzureProvider.assignment_name("R-1", PROD, READER),
        AzureProvider.assignment_name("R-2", PROD, READER),
    ]
    assert AzureProvider.assignment_name("R-1", PROD, READER) == AzureProvider.assignment_name(
        "R-1", PROD.upper().replace("SUBSCRIPTIONS", "subscriptions"), READER
    )
    assert AzureProvider.assignment_name("R-1", STAGING, READER) != names[0]
    assert AzureProvider.assignment_name("R-1", PROD, CONTRIBUTOR) != names[0]
    stored = azure.assignment(names[0])
    assert stored is not None
    assert stored["properties"]["principalType"] == "User"
    assert stored["properties"]["description"].startswith("jit-bot R-1 grants prod-support")


def test_a_retried_rbac_grant_is_idempotent(provider: AzureProvider, azure: FakeAzure) -> None:
    first = provider.grant(ALICE, rbac(PROD), context())
    again = provider.grant(ALICE, rbac(PROD), context())

    assert not first.preexisting
    assert not again.preexisting  # ARM's 409 RoleAssignmentExists: our own assignment
    assert [c.status for c in azure.calls_to("PUT", "/roleAssignments/")] == [201, 409]
    assert azure.assignments() == {("alice@example.com", PROD, "Reader")}


def test_a_retried_rbac_grant_puts_the_same_name_and_another_request_another_name(
    azure: FakeAzure, sleeps: Sleeps
) -> None:
    # Two provider instances: the retry may come from a restarted bot.
    first = AzureProvider(azure.clients(), sleep=sleeps, now=lambda: NOW)
    first.grant(ALICE, rbac(PROD), context("R-1"))
    AzureProvider(azure.clients(), sleep=sleeps, now=lambda: NOW).grant(
        ALICE, rbac(PROD), context("R-1")
    )
    first.revoke(ALICE, rbac(PROD), context("R-1"))
    first.grant(ALICE, rbac(PROD), context("R-2"))

    names = [c.path.rsplit("/", 1)[-1] for c in azure.calls_to("PUT", "/roleAssignments/")]
    assert names[0] == names[1]
    assert names[2] != names[0]
    # uuid5 of request, scope and role: pinned, because a bot upgraded between a grant and
    # its retry must compute the same name (or the retry would make a second assignment).
    assert names[0] == "413248ff-cc8d-599e-ac06-9cec7d2def7d"
    assert names[0] == AzureProvider.assignment_name("R-1", PROD, READER)


def test_an_rbac_grant_whose_answer_was_lost_is_retried_into_success(
    provider: AzureProvider, azure: FakeAzure, sleeps: Sleeps
) -> None:
    # The assignment was made but the gateway timed out: the retry's PUT, of the same name,
    # meets ARM's 409 RoleAssignmentExists, which is success.
    azure.fail_next(504, "GatewayTimeout", "timed out", method="PUT", lose_answer=True)

    outcome = provider.grant(ALICE, rbac(PROD), context())

    assert not outcome.preexisting
    assert [c.status for c in azure.calls_to("PUT", "/roleAssignments/")] == [504, 409]
    assert len(sleeps.seconds) == 1
    assert azure.assignments() == {("alice@example.com", PROD, "Reader")}
    provider.revoke(ALICE, rbac(PROD), context())
    assert azure.assignments() == set()


def test_role_assignment_exists_is_success_even_before_azure_lists_it(
    provider: AzureProvider, azure: FakeAzure
) -> None:
    # The earlier attempt landed but its answer was lost, and the list lags the write.
    azure.fail_next(
        409, "RoleAssignmentExists", "The role assignment already exists.", method="PUT"
    )

    outcome = provider.grant(ALICE, rbac(PROD), context())

    assert not outcome.preexisting
    assert "exists" in outcome.detail


@pytest.mark.parametrize("mode", [pytest.param(rbac, id="rbac"), pytest.param(pim, id="pim")])
def test_standing_access_is_reported_preexisting(
    provider: AzureProvider, azure: FakeAzure, mode: Callable[[str], AzureTarget]
) -> None:
    azure.assign("alice@example.com", READER, PROD)

    outcome = provider.grant(ALICE, mode(PROD), context())

    assert outcome.preexisting
    assert "outside jit-bot" in outcome.detail
    assert requests_of(azure, "AdminAssign") == []  # PIM refused it: RoleAssignmentExists


def test_an_assignment_another_jit_bot_request_made_is_not_standing_access(
    provider: AzureProvider, azure: FakeAzure
) -> None:
    provider.grant(ALICE, rbac(PROD), context("R-1"))

    outcome = provider.grant(ALICE, rbac(PROD), context("R-2"))

    assert not outcome.preexisting
    # Revoking the later request removes the access it relied on.
    provider.revoke(ALICE, rbac(PROD), context("R-2"))
    assert azure.assignments() == set()


def test_revoking_rbac_deletes_the_assignment_and_204_or_404_is_success(
    provider: AzureProvider, azure: FakeAzure
) -> None:
    provider.grant(ALICE, rbac(PROD), context())

    provider.revoke(ALICE, rbac(PROD), context())
    provider.revoke(ALICE, rbac(PROD), context())
    azure.fail_next(404, "RoleAssignmentNotFound", "gone", method="DELETE")
    provider.revoke(ALICE, rbac(PROD), context())

    assert [c.status for c in azure.calls_to("DELETE", "/roleAssignments/")] == [200, 204, 404]
    assert azure.assignments() == set()


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("times", "where", "retry_after", "waits"),
    [
        pytest.param(2, {"method": "PUT"}, "7", [7.0, 7.0], id="arm_twice"),
        pytest.param(1, {"path_contains": "/v1.0/users"}, "3", [3.0], id="graph"),
    ],
)
def test_throttling_is_retried_after_the_time_azure_asks_for(
    provider: AzureProvider,
    azure: FakeAzure,
    sleeps: Sleeps,
    times: int,
    where: dict[str, str],
    retry_after: str,
    waits: list[float],
) -> None:
    azure.fail_next(
        429, "TooManyRequests", "slow down", times=times, retry_after=retry_after, **where
    )

    provider.grant(ALICE, rbac(PROD), context())

    assert sleeps.seconds == waits
    assert azure.assignments() == {("alice@example.com", PROD, "Reader")}


def test_a_throttled_pim_admin_assign_is_retried_after_the_time_azure_asks_for(
    provider: AzureProvider, azure: FakeAzure, sleeps: Sleeps
) -> None:
    azure.fail_next(
        429,
        "TooManyRequests",
        "slow down",
        times=2,
        method="PUT",
        path_contains="/roleAssignmentScheduleRequests/",
        retry_after="11",
    )

    outcome = provider.grant(ALICE, pim(PROD), context(hours=2))

    assert sleeps.seconds == [11.0, 11.0]
    puts = azure.calls_to("PUT", "/roleAssignmentScheduleRequests/")
    assert [c.status for c in puts] == [429, 429, 201]
    # The same request, resent unchanged: same name, same AdminAssign for the same time.
    assert len({c.path for c in puts}) == 1
    assert all(c.body == puts[0].body for c in puts)
    assert puts[0].body["properties"]["requestType"] == "AdminAssign"
    assert not outcome.preexisting
    [schedule] = azure.schedules()
    assert schedule["end"] == NOW + timedelta(hours=2)


def test_a_throttled_pim_admin_remove_is_retried_after_the_time_azure_asks_for(
    provider: AzureProvider, azure: FakeAzure, sleeps: Sleeps
) -> None:
    provider.grant(ALICE, pim(PROD), context())
    azure.fail_next(
        429,
        "TooManyRequests",
        "slow down",
        method="PUT",
        path_contains="/roleAssignmentScheduleRequests/",
        retry_after="9",
    )

    provider.revoke(ALICE, pim(PROD), context())

    assert sleeps.seconds == [9.0]
    removals = azure.calls_to("PUT", "/roleAssignmentScheduleRequests/")[1:]
    assert [c.status for c in removals] == [429, 201]
    assert [c.body["properties"]["requestType"] for c in removals] == ["AdminRemove"] * 2
    assert azure.assignments() == set()
    assert azure.schedules() == []


@pytest.mark.parametrize(
    ("mode", "step", "method", "path"),
    [
        pytest.param("pim", "grant", "GET", "/v1.0/users/", id="graph user lookup"),
        pytest.param("pim", "grant", "GET", "/roleDefinitions", id="role lookup"),
        pytest.param("pim", "grant", "GET", "/roleAssignmentScheduleRequests/", id="pim read"),
        pytest.param("rbac", "revoke", "GET", "/roleAssignments", id="rbac listing"),
        pytest.param("rbac", "revoke", "DELETE", "/roleAssignments/", id="rbac delete"),
    ],
)
def test_every_azure_call_honours_retry_after(
    provider: AzureProvider,
    azure: FakeAzure,
    sleeps: Sleeps,
    mode: str,
    step: str,
    method: str,
    path: str,
) -> None:
    target = pim(PROD) if mode == "pim" else rbac(PROD)
    throttle = partial(
        azure.fail_next, 429, "TooManyRequests", "slow down", method=method, path_contains=path
    )
    if step == "grant":
        throttle(retry_after="4")
    provider.grant(ALICE, target, context())
    if step == "revoke":
        throttle(retry_after="4")
        provider.revoke(ALICE, target, context())

    assert sleeps.seconds == [4.0]
    statuses = [c.status for c in azure.calls_to(method, path)]
    assert statuses[0] == 429
    assert statuses.count(429) == 1  # answered at the next attempt, not given up on
    held = {("alice@example.com", PROD, "Reader")} if step == "grant" else set()
    assert azure.assignments() == held


def test_throttling_that_does_not_stop_fails_as_retryable(azure: FakeAzure, sleeps: Sleeps) -> None:
    provider = AzureProvider(azure.clients(), sleep=sleeps, now=lambda: NOW, attempts=3)
    azure.fail_next(429, "TooManyRequests", "slow down", times=5, method="PUT", retry_after="2")

    with pytest.raises(ProviderError, match="TooManyRequests: slow down") as caught:
        provider.grant(ALICE, rbac(PROD), context())

    assert caught.value.retryable
    assert sleeps.seconds == [2.0, 2.0]


def test_server_errors_are_retried_with_backoff(
    provider: AzureProvider, azure: FakeAzure, sleeps: Sleeps
) -> None:
    azure.fail_next(503, "ServiceUnavailable", "try later", times=2, method="PUT")

    provider.grant(ALICE, rbac(PROD), context())

    assert len(sleeps.seconds) == 2
    assert 0 < sleeps.seconds[0] <= sleeps.seconds[1] * 2


@dataclass(frozen=True)
class Refusal:
    """What Azure refuses a grant with, and the error the provider must raise for it."""

    status: int
    code: str
    message: str
    where: dict[str, str]
    target: AzureTarget
    error: str  # the ProviderError's whole text
    reaches_arm: bool  # whether a write reached ARM (the refused one)


ARM_DENIAL = (
    "The client 'jit-bot' does not have authorization to perform action "
    "'Microsoft.Authorization/roleAssignments/write' over scope '/subscriptions/…'."
)
GRAPH_DENIAL = "Insufficient privileges to complete the operation."
PIM_POLICY = 'The following policy rules failed: ["ExpirationRule"]'
REFUSALS = [
    pytest.param(
        Refusal(
            403,
            "AuthorizationFailed",
            ARM_DENIAL,
            {"method": "PUT"},
            rbac(PROD),
            f"Azure assigning `Reader` at {PROD}: AuthorizationFailed: {ARM_DENIAL}",
            reaches_arm=True,
        ),
        id="arm_denies_the_role_assignment",
    ),
    pytest.param(
        # What Graph answers when the bot's identity lacks User.Read.All.
        Refusal(
            403,
            "Authorization_RequestDenied",
            GRAPH_DENIAL,
            {"path_contains": "/v1.0/users"},
            pim(PROD),
            "Azure Graph looking up alice@example.com: "
            f"Authorization_RequestDenied: {GRAPH_DENIAL}",
            reaches_arm=False,
        ),
        id="graph_denies_the_user_lookup",
    ),
    pytest.param(
        Refusal(
            400,
            "RoleAssignmentRequestPolicyValidationFailed",
            PIM_POLICY,
            {"method": "PUT"},
            pim(PROD),
            f"Azure creating the PIM assignment of `Reader` at {PROD}: "
            f"RoleAssignmentRequestPolicyValidationFailed: {PIM_POLICY}",
            reaches_arm=True,
        ),
        id="a_pim_policy_refuses_the_assignment",
    ),
]


@pytest.mark.parametrize("refusal", REFUSALS)
def test_a_refusal_fails_the_grant_at_once_with_azures_code_and_message(
    provider: AzureProvider, azure: FakeAzure, sleeps: Sleeps, refusal: Refusal
) -> None:
    azure.fail_next(refusal.status, refusal.code, refusal.message, **refusal.where)

    with pytest.raises(ProviderError) as caught:
        provider.grant(ALICE, refusal.target, context())

    assert str(caught.value) == refusal.error
    assert not caught.value.retryable
    assert sleeps.seconds == []
    assert bool(azure.calls_to("PUT", "/providers/")) is refusal.reaches_arm
    assert azure.assignments() == set()


def test_a_refused_sign_in_is_an_error_naming_it(azure: FakeAzure) -> None:
    clients = AzureClients(
        azure.credential(secret="wrong"),
        arm_endpoint=azure.arm_endpoint,
        graph_endpoint=azure.graph_endpoint,
        connection_verify=azure.ca_bundle,
    )
    provider = AzureProvider(clients, sleep=lambda _: None)

    with pytest.raises(ProviderError, match=r"sign-in .* failed.*AADSTS7000215"):
        provider.grant(ALICE, rbac(PROD), context())


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("0.5", 0.5), ("100000", 120.0), ("-3", 0.0), ("soon", None), (None, None)],
)
def test_retry_after_is_read_as_seconds_and_capped(
    header: str | None, seconds: float | None
) -> None:
    assert _retry_after(header) == seconds


def test_retry_after_may_be_an_http_date() -> None:
    later = datetime.now(UTC) + timedelta(seconds=30)
    delay = _retry_after(later.strftime("%a, %d %b %Y %H:%M:%S GMT"))
    assert delay is not None and 25 <= delay <= 30


# ------------------------------------------------------------------ pim mode


def test_pim_assigns_for_the_granted_duration_with_a_justification_naming_the_request(
    provider: AzureProvider, azure: FakeAzure
) -> None:
    outcome = provider.grant(ALICE, pim(PROD), context("R-7", hours=2))

    [request] = requests_of(azure, "AdminAssign")
    alice = next(c for c in azure.calls if "/v1.0/users/alice" in c.path)
    assert request["name"] == AzureProvider.schedule_request_name(
        "R-7", PROD, READER, request["principalId"]
    )
    assert request["scheduleInfo"] == {
        "startDateTime": "2024-05-01T10:00:00.000Z",
        "expiration": {"type": "AfterDuration", "duration": "PT2H"},
    }
    assert request["justification"].startswith("jit-bot R-7 grants prod-support in prod")
    assert "INC-123" in request["justification"]
    assert request["ticketInfo"] == {"ticketNumber": "R-7", "ticketSystem": "jit-bot"}
    assert request["roleDefinitionId"].endswith(f"/roleDefinitions/{READER}")
    assert alice.status == 200
    assert not outcome.preexisting
    [schedule] = azure.schedules()
    assert (schedule["user"], schedule["scope"], schedule["role"]) == (
        "alice@example.com",
        PROD,
        "Reader",
    )
    assert schedule["end"] == NOW + timedelta(hours=2)


def test_pim_duration_is_what_is_left_of_the_grant_rounded_up_to_minutes(
    azure: FakeAzure, sleeps: Sleeps
) -> None:
    # Granting resumed 20 minutes and 10 seconds into a 2h request.
    late = NOW + timedelta(minutes=20, seconds=10)
    provider = AzureProvider(azure.clients(), sleep=sleeps, now=lambda: late)

    provider.grant(ALICE, pim(PROD), context(hours=2))

    [request] = requests_of(azure, "AdminAssign")
    assert request["scheduleInfo"]["expiration"]["duration"] == "PT1H40M"


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(hours=2), "PT2H"),
        (timedelta(hours=1, minutes=30), "PT1H30M"),
        (timedelta(days=1, hours=4), "P1DT4H"),
        (timedelta(days=2), "P2D"),
        (timedelta(seconds=45), "PT45S"),
        (timedelta(0), "PT0S"),
    ],
)
def test_durations_are_written_in_iso_8601(delta: timedelta, text: str) -> None:
    assert _iso_duration(delta) == text


def test_a_retried_pim_grant_reuses_its_request(provider: AzureProvider, azure: FakeAzure) -> None:
    provider.grant(ALICE, pim(PROD), context())
    again = provider.grant(ALICE, pim(PROD), context())

    assert not again.preexisting
    assert len(requests_of(azure, "AdminAssign")) == 1
    assert len(azure.calls_to("PUT", "/roleAssignmentScheduleRequests/")) == 1


def test_a_pim_grant_whose_answer_was_lost_is_retried_into_success(
    provider: AzureProvider, azure: FakeAzure, sleeps: Sleeps
) -> None:
    # PIM took the request but the gateway timed out; the resent PUT of the same request
    # name is refused (names are not reused), and the request it names is ours.
    azure.fail_next(
        504,
        "GatewayTimeout",
        "timed out",
        method="PUT",
        path_contains="/roleAssignmentScheduleRequests/",
        lose_answer=True,
    )

    outcome = provider.grant(ALICE, pim(PROD), context())

    assert not outcome.preexisting
    assert [c.status for c in azure.calls_to("PUT", "/roleAssignmentScheduleRequests/")] == [
        504,
        409,
    ]
    assert len(requests_of(azure, "AdminAssign")) == 1
    assert azure.assignments() == {("alice@example.com", PROD, "Reader")}


def test_a_pim_removal_whose_answer_was_lost_is_retried_into_success(
    provider: AzureProvider, azure: FakeAzure
) -> None:
    provider.grant(ALICE, pim(PROD), context())
    azure.fail_next(
        504,
        "GatewayTimeout",
        "timed out",
        method="PUT",
        path_contains="/roleAssignmentScheduleRequests/",
        lose_answer=True,
    )

    provider.revoke(ALICE, pim(PROD), context())

    assert azure.assignments() == set()
    assert len(requests_of(azure, "AdminRemove")) == 1


def test_pim_grant_returns_once_the_assignment_is_provisioned(
    provider: AzureProvider, azure: FakeAzure, sleeps: Sleeps
) -> None:
    azure.answer_pending(gets=2)

    provider.grant(ALICE, pim(PROD), context())

    assert sleeps.seconds == [1.0, 2.0, 4.0]
    assert azure.schedule_requests()[0]["properties"]["status"] == "Provisioned"


def test_ending_pim_access_early_sends_admin_remove(
    provider: AzureProvider, azure: FakeAzure
) -> None:
    provider.grant(ALICE, pim(PROD), context("R-9"))

    provider.revoke(ALICE, pim(PROD), context("R-9"))

    [removal] = requests_of(azure, "AdminRemove")
    assert removal["justification"].startswith("jit-bot R-9 ends prod-support")
    assert removal["status"] == "Revoked"
    assert azure.assignments() == set()
    assert azure.schedules() == []


def test_removing_pim_access_that_azure_already_ended_is_success(
    provider: AzureProvider, azure: FakeAzure
) -> None:
    provider.grant(ALICE, pim(PROD), context(hours=1))
    azure.expire(NOW + timedelta(hours=1))

    provider.revoke(ALICE, pim(PROD), context(hours=1))
    azure.fail_next(404, "RoleAssignmentScheduleNotFound", "gone", method="PUT")
    provider.revoke(ALICE, pim(PROD), context(hours=1))

    assert [c.status for c in azure.calls_to("PUT", "/roleAssignmentScheduleRequests/")] == [
        201,
        400,
        404,
    ]
    assert azure.assignments() == set()


def test_pim_refusing_an_early_removal_is_retried_later(
    provider: AzureProvider, azure: FakeAzure
) -> None:
    provider.grant(ALICE, pim(PROD), context())
    azure.fail_next(
        400,
        "ActiveDurationTooShort",
        "The role assignment cannot be removed within 5 minutes of its activation.",
        method="PUT",
    )

    with pytest.raises(ProviderError, match="ActiveDurationTooShort") as caught:
        provider.revoke(ALICE, pim(PROD), context())

    assert caught.value.retryable


@pytest.mark.parametrize(
    ("first", "later", "updates"),
    [
        pytest.param(1, 3, ["PT3H"], id="a_longer_one_extends_it"),
        pytest.param(3, 1, [], id="a_shorter_one_leaves_it_as_it_is"),
    ],
)
def test_a_later_request_for_a_jit_bot_pim_assignment_leaves_it_ending_at_the_later_end(
    provider: AzureProvider, azure: FakeAzure, first: int, later: int, updates: list[str]
) -> None:
    provider.grant(ALICE, pim(PROD), context("R-1", hours=first))

    outcome = provider.grant(ALICE, pim(PROD), context("R-2", hours=later))

    assert not outcome.preexisting
    sent = requests_of(azure, "AdminUpdate")
    assert [u["scheduleInfo"]["expiration"]["duration"] for u in sent] == updates
    [schedule] = azure.schedules()
    assert schedule["end"] == NOW + timedelta(hours=max(first, later))


# ------------------------------------------------------------------ who


def test_the_requester_is_found_by_user_principal_name(
    provider: AzureProvider, azure: FakeAzure
) -> None:
    provider.grant(ALICE, rbac(PROD), context())

    graph = [c for c in azure.calls if c.path.startswith("/v1.0/")]
    assert [(c.path, c.status) for c in graph] == [("/v1.0/users/alice@example.com", 200)]


def test_a_guest_is_found_by_mail_when_the_user_principal_name_differs(
    provider: AzureProvider, azure: FakeAzure
) -> None:
    azure.add_user(
        "carol_partner.example#EXT#@contoso.onmicrosoft.com", mail="carol@partner.example"
    )
    carol = Principal(slack_user_id="UCAROL", email="carol@partner.example")

    provider.grant(carol, rbac(PROD), context())

    graph = [c for c in azure.calls if c.path.startswith("/v1.0/")]
    assert [(c.path, c.query.get("$filter"), c.status) for c in graph] == [
        ("/v1.0/users/carol@partner.example", None, 404),
        ("/v1.0/users", "mail eq 'carol@partner.example'", 200),
    ]
    assert (
        "carol_partner.example#EXT#@contoso.onmicrosoft.com",
        PROD,
        "Reader",
    ) in azure.assignments()


def test_an_email_unknown_to_entra_id_is_a_clear_error_and_nothing_is_granted(
    provider: AzureProvider, azure: FakeAzure
) -> None:
    mallory = Principal(slack_user_id="UMALLORY", email="mallory@example.com")

    with pytest.raises(ProviderError) as caught:
        provider.grant(mallory, pim(PROD), context())

    assert str(caught.value) == (
        "no Microsoft Entra ID user has the user principal name or mail mallory@example.com; "
        "the Slack email must match one of them. Nothing was granted."
    )
    assert not caught.value.retryable
    assert azure.calls_to("PUT", "/providers/") == []


def test_an_email_two_users_have_as_mail_is_ambiguous(
    provider: AzureProvider, azure: FakeAzure
) -> None:
    azure.add_user("dave1@contoso.example", mail="dave@example.com")
    azure.add_user("dave2@contoso.example", mail="dave@example.com")

    with pytest.raises(ProviderError, match="2 Microsoft Entra ID users have the mail"):
        provider.grant(Principal("UDAVE", "dave@example.com"), rbac(PROD), context())


def test_user_lookups_are_cached_until_refresh(provider: AzureProvider, azure: FakeAzure) -> None:
    provider.grant(ALICE, rbac(PROD), context())
    provider.revoke(ALICE, rbac(PROD), context())
    provider.grant(ALICE, rbac(STAGING), context())
    assert len(azure.calls_to("GET", "/v1.0/users/alice")) == 1

    provider.refresh()
    provider.revoke(ALICE, rbac(STAGING), context())
    assert len(azure.calls_to("GET", "/v1.0/users/alice")) == 2


def test_tokens_are_asked_for_the_audience_of_each_api(
    provider: AzureProvider, azure: FakeAzure
) -> None:
    provider.grant(ALICE, rbac(PROD), context())

    scopes = {t["scope"] for t in azure.token_requests}
    assert f"{azure.arm_endpoint}/.default" in scopes
    assert f"{azure.graph_endpoint}/.default" in scopes


# ------------------------------------------------------------------ agentless


def test_default_azure_credential_signs_in_from_the_azure_environment_when_first_needed(
    azure: FakeAzure, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name, value in azure.environ().items():  # a service principal in AZURE_*
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.INFO)
    clients = AzureClients.from_environ(os.environ)
    provider = AzureProvider(clients, sleep=lambda _: None)
    assert [r.name for r in caplog.records] == []  # nothing built, asked or logged yet

    provider.grant(ALICE, rbac(PROD), context())

    assert azure.assignments() == {("alice@example.com", PROD, "Reader")}
    assert {t["client_id"] for t in azure.token_requests} == {CLIENT_ID}
    said = {r.name for r in caplog.records}
    assert "azure.identity._credentials.chained" in said  # DefaultAzureCredential's chain
    assert not any("http_logging_policy" in name for name in said)  # request lines: DEBUG


_IDENTITY_VARIABLES = ("AZURE_", "IDENTITY_", "MSI_", "IMDS_")


def _host_environment(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str]) -> None:
    """Only what the host sets: no AZURE_* or managed identity variables of the runner."""
    for name in list(os.environ):
        if name.startswith(_IDENTITY_VARIABLES):
            monkeypatch.delenv(name)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(
    ("identity", "credential", "via", "client_id"),
    [
        # AKS workload identity: the webhook's AZURE_FEDERATED_TOKEN_FILE, client and tenant.
        ("workload_identity", "WorkloadIdentityCredential", "federated_token", CLIENT_ID),
        # App Service / Functions / Container Apps: IDENTITY_ENDPOINT + IDENTITY_HEADER.
        ("app_service", "ManagedIdentityCredential", "app_service", ""),
        # A VM's metadata service; AZURE_CLIENT_ID picks a user-assigned identity.
        ("imds_user_assigned", "ManagedIdentityCredential", "imds", MANAGED_IDENTITY_CLIENT_ID),
    ],
)
def test_default_azure_credential_signs_in_with_the_hosts_identity_and_azure_gets_its_token(
    azure: FakeAzure,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    identity: Identity,
    credential: str,
    via: str,
    client_id: str,
) -> None:
    _host_environment(monkeypatch, azure.environ(identity))
    assert "AZURE_CLIENT_SECRET" not in os.environ
    caplog.set_level(logging.INFO)
    provider = AzureProvider(AzureClients.from_environ(os.environ), sleep=lambda _: None)

    provider.grant(ALICE, rbac(PROD), context())
    provider.revoke(ALICE, rbac(PROD), context())

    issued = azure.token_requests
    assert {(t["via"], t["client_id"]) for t in issued} == {(via, client_id)}
    by_audience = {t["scope"]: t["token"] for t in issued}
    assert len(issued) == len(by_audience) == 2  # one token per API, then cached
    arm = {c.bearer for c in azure.calls if c.host == "127.0.0.1" and "/providers/" in c.path}
    graph = {c.bearer for c in azure.calls if c.path.startswith("/v1.0/")}
    assert arm == {by_audience[f"{azure.arm_endpoint}/.default"]}
    assert graph == {by_audience[f"{azure.graph_endpoint}/.default"]}
    assert [c.status for c in azure.calls_to("PUT", "/roleAssignments/")] == [201]
    assert [c.status for c in azure.calls_to("DELETE", "/roleAssignments/")] == [200]
    assert f"DefaultAzureCredential acquired a token from {credential}" in caplog.text


def test_a_workload_identity_azure_does_not_trust_is_a_sign_in_error_naming_it(
    azure: FakeAzure, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    environ = azure.environ("workload_identity")
    stale = tmp_path / "token"
    stale.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvdGhlciJ9.c2ln")  # another subject
    _host_environment(monkeypatch, environ | {"AZURE_FEDERATED_TOKEN_FILE": str(stale)})
    provider = AzureProvider(AzureClients.from_environ(os.environ), sleep=lambda _: None)

    with pytest.raises(ProviderError, match=r"(?s)sign-in .* failed.*AADSTS70021"):
        provider.grant(ALICE, rbac(PROD), context())

    assert azure.calls_to("PUT", "/providers/") == []


def test_a_malformed_azure_environment_is_an_error_naming_it_not_a_crash(
    azure: FakeAzure, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A deployment manifest that sets the secret's variable from an empty value.
    _host_environment(monkeypatch, azure.environ() | {"AZURE_CLIENT_SECRET": ""})
    provider = AzureProvider(AzureClients.from_environ(os.environ), sleep=lambda _: None)

    with pytest.raises(ProviderError, match="Azure credentials are misconfigured: secret"):
        provider.grant(ALICE, rbac(PROD), context())

    assert azure.calls_to("PUT", "/providers/") == []


def test_endpoints_can_be_moved_for_sovereign_clouds() -> None:
    assert (AzureClients.from_environ({}).arm_endpoint, GRAPH_ENDPOINT) == (
        ARM_ENDPOINT,
        AzureClients.from_environ({}).graph_endpoint,
    )
    sovereign = AzureClients.from_environ(
        {
            "JIT_AZURE_ARM_ENDPOINT": "https://management.chinacloudapi.cn/",
            "JIT_AZURE_GRAPH_ENDPOINT": "https://microsoftgraph.chinacloudapi.cn",
        }
    )
    assert sovereign.arm_endpoint == "https://management.chinacloudapi.cn"
    assert sovereign.graph_endpoint == "https://microsoftgraph.chinacloudapi.cn"


# ------------------------------------------------------------------ checks


def test_validation_without_live_asks_azure_nothing(
    provider: AzureProvider, azure: FakeAzure
) -> None:
    assert provider.validate(pim(PROD, STAGING)) == []
    assert azure.calls == []


def test_live_validation_resolves_the_role_at_every_scope(
    provider: AzureProvider, azure: FakeAzure
) -> None:
    assert provider.validate(pim(PROD, LOGS, SUBSCRIPTION_SCOPE), live=True) == []

    looked_at = [
        c.path.split("/providers/Microsoft.Authorization")[0]
        for c in azure.calls_to("GET", "/roleDefinitions")
    ]
    assert looked_at == [PROD, LOGS, SUBSCRIPTION_SCOPE]


def test_live_validation_names_the_scope_where_the_role_does_not_resolve(
    provider: AzureProvider, azure: FakeAzure
) -> None:
    azure.add_custom_role("Checkout Operator", [PROD])

    with pytest.raises(ProviderError) as caught:
        provider.validate(rbac(PROD, STAGING, role="Checkout Operator"), live=True)

    assert str(caught.value).startswith(
        f"{STAGING}: no Azure role named `Checkout Operator` is assignable at {STAGING}"
    )


def test_live_validation_names_a_scope_that_does_not_exist(provider: AzureProvider) -> None:
    missing = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/nope"

    with pytest.raises(ProviderError, match="ResourceGroupNotFound: Resource group 'nope'"):
        provider.validate(rbac(missing), live=True)


def test_live_validation_rejects_a_role_definition_id_that_does_not_exist(
    provider: AzureProvider,
) -> None:
    missing = "11111111-2222-4333-8444-555555555555"

    with pytest.raises(ProviderError, match=f"no Azure role definition {missing}"):
        provider.validate(rbac(PROD, role=missing), live=True)


# ------------------------------------------------------------------ reading Azure


def test_is_granted_reads_what_azure_holds(provider: AzureProvider, azure: FakeAzure) -> None:
    assert provider.is_granted(ALICE, rbac(PROD)) is False
    provider.grant(ALICE, pim(PROD), context())
    assert provider.is_granted(ALICE, pim(PROD)) is True
    assert provider.is_granted(ALICE, pim(PROD, STAGING)) is False


def test_inventory_lists_users_holding_the_role_at_exactly_each_scope(
    provider: AzureProvider, azure: FakeAzure
) -> None:
    azure.assign("alice@example.com", READER, PROD)
    azure.assign("bob@example.com", READER, STAGING)
    azure.assign("bob@example.com", CONTRIBUTOR, PROD)  # another role
    azure.assign("bob@example.com", READER, SUBSCRIPTION_SCOPE)  # inherited, not here
    guest = azure.add_user("erin_x.example#EXT#@contoso.onmicrosoft.com", mail="Erin@X.example")
    azure.assign(guest, READER, STAGING)

    found = provider.inventory(rbac(PROD, STAGING))

    assert found is not None
    assert sorted((h.email, h.unit.scopes[0]) for h in found) == [  # type: ignore[attr-defined]
        ("alice@example.com", PROD),
        ("bob@example.com", STAGING),
        ("erin@x.example", STAGING),
    ]
    assert all(isinstance(h, Holding) for h in found)
    assert {h.unit.key() for h in found} == {u.key() for u in provider.expand(rbac(PROD, STAGING))}


def test_rbac_access_of_someone_no_longer_found_in_entra_id_is_still_removed_by_name(
    provider: AzureProvider, azure: FakeAzure
) -> None:
    carol = azure.add_user("carol@example.com", mail="carol@example.com")
    someone = Principal(slack_user_id="UCAROL", email="carol@example.com")
    provider.grant(someone, rbac(PROD), context())
    azure.rename_user(carol, upn="carol.jones@example.com", mail="carol.jones@example.com")
    provider.refresh()

    provider.revoke(someone, rbac(PROD), context())

    assert azure.assignments() == set()
    with pytest.raises(ProviderError, match="no Microsoft Entra ID user"):
        provider.revoke(someone, pim(PROD), context())
