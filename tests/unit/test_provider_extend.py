"""Extending a grant in place ("no lapse, no double"), per cloud that ends access by
itself, over the wire: the official Google clients against FakeGoogle, and the official
``AuthorizationManagementClient`` against FakeAzure.

GCP: the request's conditional binding gets the new end in one etag-guarded write, so at
every write the person holds the role through exactly one live binding of the request.
Azure PIM: ``AdminExtend`` keeps the same assignment and moves its schedule's end; RBAC
assignments have no end for Azure to move, so nothing is asked of Azure.

Time is fixed: ``NOW`` for the providers and the fakes alike; waits are recorded.
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from providers.azure import AzureProvider, AzureTarget
from providers.base import GrantContext, Principal, ProviderError
from providers.gcp import GcpClients, GcpProvider, GcpTarget
from tests.fakes.azure import READER, SUBSCRIPTION, FakeAzure
from tests.fakes.gcp import FakeGoogle

NOW = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
ALICE = Principal(slack_user_id="UALICE", email="alice@example.com")
GRANTED = GrantContext(
    request_id="R-7K2M9QXA",
    role="prod-support",
    environment="prod",
    reason="INC-123",
    expires_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
)


def until(moment: datetime) -> GrantContext:
    """The granted request, extended to end at ``moment``."""
    return dataclasses.replace(GRANTED, expires_at=moment)


EXTENDED = until(datetime(2024, 5, 1, 14, 0, tzinfo=UTC))


# ------------------------------------------------------------------ GCP

PROJECT = "projects/acme-prod"
ROLE = "roles/logging.viewer"
TARGET = GcpTarget(role=ROLE, projects=["acme-prod"])
MEMBER = "user:alice@example.com"
# Other people's and tools' bindings, one of them of the very role jit-bot grants.
THEIRS: dict[str, Any] = {
    "version": 3,
    "bindings": [
        {"role": "roles/owner", "members": ["group:platform@example.com"]},
        {
            "role": ROLE,
            "members": ["user:carol@example.com"],
            "condition": {
                "title": "business hours",
                "expression": "request.time.getHours('Europe/Berlin') >= 9",
            },
        },
        {"role": ROLE, "members": ["user:dave@example.com"]},
    ],
    "auditConfigs": [{"service": "allServices", "auditLogConfigs": [{"logType": "DATA_READ"}]}],
}


def ours(ends: str, request_id: str = "R-7K2M9QXA") -> dict[str, Any]:
    """jit-bot's binding for Alice's request, ending at ``ends`` (RFC 3339)."""
    return {
        "role": ROLE,
        "members": [MEMBER],
        "condition": {
            "title": f"jit-bot {request_id}",
            "description": (
                f"jit-bot request {request_id}: alice@example.com as prod-support in prod ({ROLE})"
            ),
            "expression": f'request.time < timestamp("{ends}")',
        },
    }


@pytest.fixture
def google(empty_google: FakeGoogle) -> FakeGoogle:
    empty_google.add_project("acme-prod", copy.deepcopy(THEIRS))
    empty_google.add_folder("123456789012")
    empty_google.add_organization("555555555555")
    return empty_google


@pytest.fixture
def gcp(google: FakeGoogle) -> GcpProvider:
    clients = GcpClients(
        google.credentials(), api_endpoint=google.url, iam_endpoint=google.iam_endpoint
    )
    return GcpProvider(clients, sleep=lambda _: None, now=lambda: NOW)


def test_gcp_extension_moves_the_requests_binding_to_the_new_end_in_one_write(
    gcp: GcpProvider, google: FakeGoogle
) -> None:
    gcp.grant(ALICE, TARGET, GRANTED)
    assert len(google.live_bindings(PROJECT, MEMBER, at=NOW)) == 1
    google.calls.clear()

    gcp.extend(ALICE, TARGET, EXTENDED)

    [live] = google.live_bindings(PROJECT, MEMBER, at=NOW)
    assert live == ours("2024-05-01T14:00:00Z")
    assert len(google.calls_to("setIamPolicy")) == 1
    # Held past the old end, until the new one.
    assert len(google.live_bindings(PROJECT, MEMBER, at=GRANTED.expires_at)) == 1
    assert google.live_bindings(PROJECT, MEMBER, at=EXTENDED.expires_at) == []
    assert gcp.is_granted(ALICE, TARGET) is True


def test_gcp_extension_writes_back_everyone_elses_bindings_untouched(
    gcp: GcpProvider, google: FakeGoogle
) -> None:
    gcp.grant(ALICE, TARGET, GRANTED)
    read = google.policy(PROJECT)
    google.calls.clear()

    gcp.extend(ALICE, TARGET, EXTENDED)

    [write] = google.calls_to("setIamPolicy")
    assert write.body["policy"]["etag"] == read["etag"]  # conditional on what was read
    assert write.body["updateMask"] == "bindings,etag"
    assert write.body["policy"]["bindings"] == [*THEIRS["bindings"], ours("2024-05-01T14:00:00Z")]
    after = google.policy(PROJECT)
    assert after["bindings"] == [*THEIRS["bindings"], ours("2024-05-01T14:00:00Z")]
    assert after["auditConfigs"] == THEIRS["auditConfigs"]


def test_gcp_extension_meeting_a_concurrent_policy_change_reads_again_and_keeps_both(
    gcp: GcpProvider, google: FakeGoogle
) -> None:
    gcp.grant(ALICE, TARGET, GRANTED)
    google.calls.clear()
    erin: dict[str, Any] = {"role": "roles/cloudsql.client", "members": ["user:erin@example.com"]}
    # Another administrator writes the policy after our read, before our write.
    google.before_next(
        "setIamPolicy", lambda: google.add_binding(PROJECT, erin["role"], erin["members"])
    )

    gcp.extend(ALICE, TARGET, EXTENDED)

    assert [c.status for c in google.calls_to("setIamPolicy")] == [409, 200]
    assert len(google.calls_to("getIamPolicy")) == 2
    assert google.policy(PROJECT)["bindings"] == [
        *THEIRS["bindings"],
        ours("2024-05-01T14:00:00Z"),
        erin,
    ]


def test_at_every_write_of_a_gcp_extension_the_person_has_exactly_one_live_binding(
    gcp: GcpProvider, google: FakeGoogle
) -> None:
    target = GcpTarget(
        role=ROLE, projects=["acme-prod"], folders=["123456789012"], organization="555555555555"
    )
    resources = target.resources()
    gcp.grant(ALICE, target, GRANTED)
    writes_before = len(google.policy_writes)
    seen: list[tuple[str, int]] = []

    def look_before_each_write() -> None:
        for resource in resources:
            seen.append((resource, len(google.live_bindings(resource, MEMBER, at=NOW))))
        google.before_next("setIamPolicy", look_before_each_write)

    google.before_next("setIamPolicy", look_before_each_write)
    google.fail_next("setIamPolicy", status=409, message="concurrent policy changes")

    gcp.extend(ALICE, target, EXTENDED)

    written = google.policy_writes[writes_before:]
    assert sorted(resource for resource, _ in written) == sorted(resources)
    for resource, policy in written:
        [live] = FakeGoogle.live_bindings_in(policy, MEMBER, at=NOW)
        assert live["condition"]["expression"].endswith('("2024-05-01T14:00:00Z")'), resource
    assert len(seen) == 4 * len(resources)  # before each of the 4 writes (one refused)
    assert {count for _, count in seen} == {1}
    for resource in resources:
        assert len(google.live_bindings(resource, MEMBER, at=NOW)) == 1


def test_gcp_extension_of_standing_access_writes_nothing(
    gcp: GcpProvider, google: FakeGoogle
) -> None:
    google.add_binding(PROJECT, ROLE, [MEMBER])
    before = google.policy(PROJECT)
    google.calls.clear()

    gcp.extend(ALICE, TARGET, EXTENDED)

    assert google.calls_to("setIamPolicy") == []
    assert google.policy(PROJECT) == before


@pytest.mark.parametrize(
    "again",
    [
        pytest.param(EXTENDED, id="the_same_end_again"),
        pytest.param(until(datetime(2024, 5, 1, 13, 0, tzinfo=UTC)), id="an_earlier_end"),
        pytest.param(until(datetime(2024, 5, 1, 14, 0, 0, 500000, tzinfo=UTC)), id="subsecond"),
    ],
)
def test_gcp_extension_never_shortens_and_writes_nothing_when_already_long_enough(
    gcp: GcpProvider, google: FakeGoogle, again: GrantContext
) -> None:
    gcp.grant(ALICE, TARGET, GRANTED)
    gcp.extend(ALICE, TARGET, EXTENDED)
    before = google.policy(PROJECT)
    google.calls.clear()

    gcp.extend(ALICE, TARGET, again)

    assert google.calls_to("setIamPolicy") == []
    assert google.policy(PROJECT) == before


def test_gcp_extension_of_a_binding_someone_removed_fails_and_writes_nothing(
    gcp: GcpProvider, google: FakeGoogle
) -> None:
    """Removed by an administrator, or by jit-bot's own revocation racing the extension:
    the access has ended, and an extension never brings it back."""
    gcp.grant(ALICE, TARGET, GRANTED)
    google.set_policy(PROJECT, copy.deepcopy(THEIRS))
    google.calls.clear()

    with pytest.raises(ProviderError, match=r"no longer holds roles/logging\.viewer"):
        gcp.extend(ALICE, TARGET, EXTENDED)

    assert google.calls_to("setIamPolicy") == []
    assert google.policy(PROJECT)["bindings"] == THEIRS["bindings"]


def test_gcp_extension_of_an_expired_binding_fails_and_writes_nothing(
    gcp: GcpProvider, google: FakeGoogle
) -> None:
    expired = ours("2024-05-01T09:00:00Z")
    google.add_binding(PROJECT, ROLE, expired["members"], expired["condition"])
    assert google.live_bindings(PROJECT, MEMBER, at=NOW) == []
    google.calls.clear()

    with pytest.raises(ProviderError, match="removed, or expired"):
        gcp.extend(ALICE, TARGET, EXTENDED)

    assert google.calls_to("setIamPolicy") == []


def test_a_revocation_written_between_the_extensions_read_and_write_wins(
    gcp: GcpProvider, google: FakeGoogle
) -> None:
    """The revocation lands after the extension read the policy: the extension's write is
    refused (the etag moved), it reads again, finds the binding gone and writes nothing."""
    gcp.grant(ALICE, TARGET, GRANTED)
    google.before_next("setIamPolicy", lambda: gcp.revoke(ALICE, TARGET, GRANTED))

    with pytest.raises(ProviderError, match="no longer holds"):
        gcp.extend(ALICE, TARGET, EXTENDED)

    assert google.live_bindings(PROJECT, MEMBER, at=NOW) == []
    assert google.policy(PROJECT)["bindings"] == THEIRS["bindings"]


def test_gcp_extension_makes_a_doubled_binding_of_the_request_one(
    gcp: GcpProvider, google: FakeGoogle
) -> None:
    """Someone copied the request's binding by hand: the write that extends it keeps one,
    so the person is left with one live binding of the request."""
    for ends in ("2024-05-01T12:00:00Z", "2024-05-01T11:00:00Z"):
        binding = ours(ends)
        google.add_binding(PROJECT, ROLE, binding["members"], binding["condition"])

    gcp.extend(ALICE, TARGET, EXTENDED)

    assert google.policy(PROJECT)["bindings"] == [
        *THEIRS["bindings"],
        ours("2024-05-01T14:00:00Z"),
    ]


def test_gcp_extension_leaves_another_request_of_the_same_person_alone(
    gcp: GcpProvider, google: FakeGoogle
) -> None:
    other = dataclasses.replace(GRANTED, request_id="R-OTHER001")
    gcp.grant(ALICE, TARGET, other)
    gcp.grant(ALICE, TARGET, GRANTED)

    gcp.extend(ALICE, TARGET, EXTENDED)

    assert google.policy(PROJECT)["bindings"] == [
        *THEIRS["bindings"],
        ours("2024-05-01T12:00:00Z", "R-OTHER001"),
        ours("2024-05-01T14:00:00Z"),
    ]


# ------------------------------------------------------------------ Azure

PROD = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/prod"
ALICE_UPN = "alice@example.com"


@pytest.fixture
def azure(empty_azure: FakeAzure) -> FakeAzure:
    empty_azure.now = lambda: NOW  # PIM checks schedule starts against the provider's clock
    empty_azure.add_user(ALICE_UPN, mail=ALICE_UPN)
    return empty_azure


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def azure_provider(azure: FakeAzure, waits: list[float]) -> AzureProvider:
    return AzureProvider(azure.clients(), sleep=waits.append, now=lambda: NOW)


def pim(scope: str = PROD) -> AzureTarget:
    return AzureTarget(role="Reader", scopes=[scope], mode="pim")


def extensions(azure: FakeAzure) -> list[dict[str, Any]]:
    return [
        r["properties"] | {"name": r["name"]}
        for r in azure.schedule_requests()
        if r["properties"]["requestType"] == "AdminExtend"
    ]


def test_pim_extension_sends_admin_extend_and_keeps_the_same_assignment(
    azure_provider: AzureProvider, azure: FakeAzure
) -> None:
    azure_provider.grant(ALICE, pim(), GRANTED)
    [assignment] = azure.assignments_at(PROD, ALICE_UPN)

    azure_provider.extend(ALICE, pim(), EXTENDED)

    [request] = extensions(azure)
    assert request["scheduleInfo"] == {
        "startDateTime": "2024-05-01T10:00:00.000Z",
        "expiration": {"type": "AfterDateTime", "endDateTime": "2024-05-01T14:00:00.000Z"},
    }
    assert request["justification"].startswith(
        "jit-bot R-7K2M9QXA extends prod-support in prod until 2024-05-01 14:00Z"
    )
    assert request["ticketInfo"] == {"ticketNumber": "R-7K2M9QXA", "ticketSystem": "jit-bot"}
    assert request["roleDefinitionId"].endswith(f"/roleDefinitions/{READER}")
    assert request["status"] == "Provisioned"
    assert azure.assignments_at(PROD, ALICE_UPN) == [assignment]
    [schedule] = azure.schedules_at(PROD, ALICE_UPN)
    assert schedule["assignment"] == assignment
    assert schedule["end"] == EXTENDED.expires_at


def test_pim_extension_ends_on_the_minute_after_a_new_end_between_minutes(
    azure_provider: AzureProvider, azure: FakeAzure
) -> None:
    azure_provider.grant(ALICE, pim(), GRANTED)

    azure_provider.extend(ALICE, pim(), until(datetime(2024, 5, 1, 14, 0, 20, tzinfo=UTC)))

    [request] = extensions(azure)
    assert request["scheduleInfo"]["expiration"]["endDateTime"] == "2024-05-01T14:01:00.000Z"
    [schedule] = azure.schedules_at(PROD, ALICE_UPN)
    assert schedule["end"] == datetime(2024, 5, 1, 14, 1, tzinfo=UTC)


def test_at_every_call_of_a_pim_extension_the_person_has_one_assignment_and_schedule(
    azure_provider: AzureProvider, azure: FakeAzure
) -> None:
    azure_provider.grant(ALICE, pim(), GRANTED)
    seen: list[tuple[int, int]] = []
    azure.after_each_call(
        lambda _: seen.append(
            (len(azure.assignments_at(PROD, ALICE_UPN)), len(azure.schedules_at(PROD, ALICE_UPN)))
        )
    )

    azure_provider.extend(ALICE, pim(), EXTENDED)

    assert len(seen) >= 2  # the schedule read and the AdminExtend at least
    assert set(seen) == {(1, 1)}


@pytest.mark.parametrize(
    "again",
    [
        pytest.param(EXTENDED, id="the_same_end_again"),
        pytest.param(until(datetime(2024, 5, 1, 13, 0, tzinfo=UTC)), id="an_earlier_end"),
    ],
)
def test_pim_extension_never_shortens_and_sends_nothing_when_already_long_enough(
    azure_provider: AzureProvider, azure: FakeAzure, again: GrantContext
) -> None:
    azure_provider.grant(ALICE, pim(), GRANTED)
    azure_provider.extend(ALICE, pim(), EXTENDED)

    azure_provider.extend(ALICE, pim(), again)

    assert len(extensions(azure)) == 1
    [schedule] = azure.schedules_at(PROD, ALICE_UPN)
    assert schedule["end"] == EXTENDED.expires_at


def test_a_pim_extension_whose_answer_was_lost_is_retried_into_success(
    azure_provider: AzureProvider, azure: FakeAzure
) -> None:
    azure_provider.grant(ALICE, pim(), GRANTED)
    [assignment] = azure.assignments_at(PROD, ALICE_UPN)
    # PIM took the extension but the gateway timed out; the resent PUT of the same
    # request name is refused (names are not reused), and the request it names is ours.
    azure.fail_next(
        504,
        "GatewayTimeout",
        "timed out",
        method="PUT",
        path_contains="/roleAssignmentScheduleRequests/",
        lose_answer=True,
    )

    azure_provider.extend(ALICE, pim(), EXTENDED)

    puts = azure.calls_to("PUT", "/roleAssignmentScheduleRequests/")
    assert [c.status for c in puts[1:]] == [504, 409]
    assert len(extensions(azure)) == 1
    assert azure.assignments_at(PROD, ALICE_UPN) == [assignment]
    [schedule] = azure.schedules_at(PROD, ALICE_UPN)
    assert schedule["end"] == EXTENDED.expires_at


def test_extending_a_pim_assignment_that_is_gone_fails_saying_so(
    azure_provider: AzureProvider, azure: FakeAzure
) -> None:
    azure_provider.grant(ALICE, pim(), GRANTED)
    azure.expire(GRANTED.expires_at)  # Azure ended it by itself

    with pytest.raises(ProviderError, match="the assignment is gone") as raised:
        azure_provider.extend(ALICE, pim(), EXTENDED)

    assert not raised.value.retryable
    assert azure.assignments_at(PROD, ALICE_UPN) == []
    assert azure.schedules_at(PROD, ALICE_UPN) == []
    assert [c.status for c in azure.calls_to("PUT", "/roleAssignmentScheduleRequests/")] == [
        201,
        400,
    ]


def test_a_pim_extension_past_the_roles_maximum_fails_and_the_old_end_stays(
    azure_provider: AzureProvider, azure: FakeAzure
) -> None:
    azure_provider.grant(ALICE, pim(), GRANTED)
    azure.set_maximum_duration(PROD, timedelta(hours=3))

    with pytest.raises(ProviderError, match="ExpirationRule") as raised:
        azure_provider.extend(ALICE, pim(), EXTENDED)

    assert not raised.value.retryable
    [schedule] = azure.schedules_at(PROD, ALICE_UPN)
    assert schedule["end"] == GRANTED.expires_at


def test_rbac_extension_asks_azure_nothing(azure_provider: AzureProvider, azure: FakeAzure) -> None:
    target = AzureTarget(role="Reader", scopes=[PROD], mode="rbac")
    azure_provider.grant(ALICE, target, GRANTED)
    [assignment] = azure.assignments_at(PROD, ALICE_UPN)
    calls = len(azure.calls)

    azure_provider.extend(ALICE, target, EXTENDED)

    assert len(azure.calls) == calls
    assert azure.assignments_at(PROD, ALICE_UPN) == [assignment]
