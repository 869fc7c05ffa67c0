"""The AWS provider (IAM Identity Center) in two halves.

With botocore's Stubber: the states moto never produces — creations and deletions still
IN_PROGRESS, FAILED with AWS's reason, the overall deadline, throttling and conflicts, a
refused call, an ambiguous or unknown user, zero or several Identity Center instances.
Time is a fake clock: sleeping is recorded and moves the clock, nothing really waits.

Against moto in server mode (over HTTP, as the bot reaches AWS): organizational units
expanded to their accounts, names resolved to ARNs, standing access, caches and
refresh(), live validation, the inventory, assuming a role through STS, and the
strictness of the target model.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from pydantic import ValidationError

from providers import aws_sessions
from providers.aws import AwsClients, AwsCredentials, AwsProvider, AwsTarget
from providers.base import GrantContext, GrantOutcome, Holding, Principal, ProviderError
from providers.sessions import Denial
from tests.fakes.aws import REGION, MotoAws, Seeded

ALICE = Principal(slack_user_id="UALICE", email="alice@example.com")
BOB = Principal(slack_user_id="UBOB", email="bob@example.com")
CONTEXT = GrantContext(
    request_id="req-1",
    role="prod-support",
    environment="prod",
    reason="INC-123",
    expires_at=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
)

# ------------------------------------------------------------------ Stubber half

INSTANCE = "arn:aws:sso:::instance/ssoins-1111111111111111"
STORE = "d-1111111111"
OTHER_INSTANCE = "arn:aws:sso:::instance/ssoins-2222222222222222"
OTHER_STORE = "d-2222222222"
PS = "arn:aws:sso:::permissionSet/ssoins-1111111111111111/ps-1111111111111111"
ACCOUNT = "111111111111"
USER_ID = "90676b2e-0001-4a5b-8c9d-0123456789ab"
OTHER_USER_ID = "90676b2e-0002-4a5b-8c9d-0123456789ab"
REQUEST_ID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
TARGET = AwsTarget(permission_set=PS, accounts=[ACCOUNT])


@dataclass
class FakeClock:
    """monotonic() reads it; sleep() records the delay and moves it on."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


@dataclass
class Stubbed:
    clients: AwsClients
    clock: FakeClock
    calls: list[tuple[str, str]]
    sso: Stubber
    store: Stubber

    def provider(self, **options: Any) -> AwsProvider:
        settings: dict[str, Any] = {"deadline": 60.0, "attempts": 4} | options
        return AwsProvider(
            self.clients, sleep=self.clock.sleep, monotonic=self.clock.monotonic, **settings
        )

    def operations(self, name: str) -> int:
        return sum(1 for _, operation in self.calls if operation == name)


@pytest.fixture
def stubbed() -> Iterator[Stubbed]:
    calls: list[tuple[str, str]] = []
    session = boto3.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="not-a-secret", region_name=REGION
    )
    clients = AwsClients(session, region=REGION)
    # AwsClients caches one client per service: stubbing the cached one stubs the provider's.
    # The Stubber answers in "before-call" and stops that event there, so AwsClients'
    # on_call hook never sees stubbed calls; they are counted one step earlier instead.
    for service in ("sso-admin", "identitystore"):
        client = clients.client(service)
        signing_name = client.meta.service_model.signing_name

        def count(model: Any, signing_name: str = signing_name, **_: Any) -> None:
            calls.append((signing_name, model.name))

        client.meta.events.register("before-parameter-build", count)
    sso = Stubber(clients.client("sso-admin"))
    store = Stubber(clients.client("identitystore"))
    with sso, store:
        yield Stubbed(clients, FakeClock(), calls, sso, store)


def _instances(stub: Stubber, *pairs: tuple[str, str]) -> None:
    stub.add_response(
        "list_instances",
        {"Instances": [{"InstanceArn": arn, "IdentityStoreId": store} for arn, store in pairs]},
        {},
    )


def _user_lookup(
    stub: Stubber, *, by_email: str | None, by_name: str | None, store: str = STORE
) -> None:
    for path, found in (("emails.value", by_email), ("userName", by_name)):
        params = {
            "IdentityStoreId": store,
            "AlternateIdentifier": {
                "UniqueAttribute": {"AttributePath": path, "AttributeValue": ALICE.email}
            },
        }
        if found is None:
            stub.add_client_error(
                "get_user_id",
                service_error_code="ResourceNotFoundException",
                service_message="USER not found.",
                http_status_code=404,
                expected_params=params,
            )
        else:
            answer = {
                "UserId": found,
                "IdentityStoreId": store,
                "UserArn": f"arn:aws:identitystore::123456789012:identitystore/{store}/user/x",
            }
            stub.add_response("get_user_id", answer, expected_params=params)


def _assignment(instance: str = INSTANCE) -> dict[str, str]:
    return {
        "InstanceArn": instance,
        "TargetId": ACCOUNT,
        "TargetType": "AWS_ACCOUNT",
        "PermissionSetArn": PS,
        "PrincipalType": "USER",
        "PrincipalId": USER_ID,
    }


def _not_assigned_yet(stub: Stubber, instance: str = INSTANCE) -> None:
    stub.add_response(
        "list_account_assignments",
        {"AccountAssignments": []},
        {"InstanceArn": instance, "AccountId": ACCOUNT, "PermissionSetArn": PS},
    )


def _status(state: str, reason: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"Status": state, "RequestId": REQUEST_ID}
    if reason:
        status["FailureReason"] = reason
    return status


def _ready_to_create(stubbed: Stubbed) -> None:
    """The lookups a grant makes before it creates the assignment."""
    _instances(stubbed.sso, (INSTANCE, STORE))
    _user_lookup(stubbed.store, by_email=USER_ID, by_name=USER_ID)
    _not_assigned_yet(stubbed.sso)


def _creation(stub: Stubber, state: str, reason: str | None = None) -> None:
    stub.add_response(
        "create_account_assignment",
        {"AccountAssignmentCreationStatus": _status(state, reason)},
        _assignment(),
    )


def _creation_polled(stub: Stubber, state: str, reason: str | None = None) -> None:
    stub.add_response(
        "describe_account_assignment_creation_status",
        {"AccountAssignmentCreationStatus": _status(state, reason)},
        {"InstanceArn": INSTANCE, "AccountAssignmentCreationRequestId": REQUEST_ID},
    )


def _deletion(stub: Stubber, state: str) -> None:
    stub.add_response(
        "delete_account_assignment",
        {"AccountAssignmentDeletionStatus": _status(state)},
        _assignment(),
    )


def _deletion_polled(stub: Stubber, state: str, reason: str | None = None) -> None:
    stub.add_response(
        "describe_account_assignment_deletion_status",
        {"AccountAssignmentDeletionStatus": _status(state, reason)},
        {"InstanceArn": INSTANCE, "AccountAssignmentDeletionRequestId": REQUEST_ID},
    )


def _refuse(stub: Stubber, operation: str, code: str, status: int = 400) -> None:
    stub.add_client_error(
        operation,
        service_error_code=code,
        service_message=f"{code} (stubbed)",
        http_status_code=status,
    )


def test_grant_polls_an_in_progress_creation_with_growing_delays_until_it_succeeds(
    stubbed: Stubbed,
) -> None:
    _ready_to_create(stubbed)
    _creation(stubbed.sso, "IN_PROGRESS")
    _creation_polled(stubbed.sso, "IN_PROGRESS")
    _creation_polled(stubbed.sso, "SUCCEEDED")

    outcome = stubbed.provider().grant(ALICE, TARGET, CONTEXT)

    assert outcome == GrantOutcome(preexisting=False, principal=f"Identity Store user {USER_ID}")
    stubbed.sso.assert_no_pending_responses()
    assert stubbed.operations("DescribeAccountAssignmentCreationStatus") == 2
    first, second = stubbed.clock.sleeps
    assert 0.4 <= first <= 0.6  # 0.5 s ±20 % jitter
    assert 0.8 <= second <= 1.2  # doubled
    assert second > first


def test_a_failed_creation_surfaces_aws_failure_reason(stubbed: Stubbed) -> None:
    reason = "Received a 404 status error: Not supported policy arn:aws:iam::aws:policy/Gone."
    _ready_to_create(stubbed)
    _creation(stubbed.sso, "IN_PROGRESS")
    _creation_polled(stubbed.sso, "FAILED", reason)

    with pytest.raises(ProviderError) as raised:
        stubbed.provider().grant(ALICE, TARGET, CONTEXT)

    assert reason in str(raised.value)
    assert "FAILED" in str(raised.value) and ACCOUNT in str(raised.value)
    assert raised.value.retryable is False


def test_a_creation_failed_at_once_is_not_polled(stubbed: Stubbed) -> None:
    _ready_to_create(stubbed)
    _creation(stubbed.sso, "FAILED", "Principal does not exist")

    with pytest.raises(ProviderError, match="Principal does not exist"):
        stubbed.provider().grant(ALICE, TARGET, CONTEXT)

    assert stubbed.operations("DescribeAccountAssignmentCreationStatus") == 0
    assert stubbed.clock.sleeps == []


def test_a_creation_still_in_progress_at_the_deadline_is_a_retryable_error(
    stubbed: Stubbed,
) -> None:
    _ready_to_create(stubbed)
    _creation(stubbed.sso, "IN_PROGRESS")
    for _ in range(20):  # more than the deadline allows; the rest stay unused
        _creation_polled(stubbed.sso, "IN_PROGRESS")
    started = stubbed.clock.now

    with pytest.raises(ProviderError) as raised:
        stubbed.provider(deadline=5.0).grant(ALICE, TARGET, CONTEXT)

    assert raised.value.retryable is True
    assert "IN_PROGRESS" in str(raised.value) and "5s" in str(raised.value)
    waited = stubbed.clock.now - started
    assert 5.0 < waited <= 5.0 + 10.0 * 1.2  # past the deadline by at most one delay
    assert 3 <= stubbed.operations("DescribeAccountAssignmentCreationStatus") <= 5


@pytest.mark.parametrize(
    "codes",
    [
        ["ThrottlingException", "ThrottlingException"],
        ["ConflictException", "ConflictException"],
        ["ThrottlingException", "ConflictException"],
    ],
)
def test_throttled_or_conflicting_creation_is_retried_with_jittered_backoff(
    stubbed: Stubbed, codes: list[str]
) -> None:
    _ready_to_create(stubbed)
    for code in codes:
        _refuse(stubbed.sso, "create_account_assignment", code)
    _creation(stubbed.sso, "SUCCEEDED")

    assert stubbed.provider().grant(ALICE, TARGET, CONTEXT).preexisting is False

    stubbed.sso.assert_no_pending_responses()
    assert stubbed.operations("CreateAccountAssignment") == 3
    first, second = stubbed.clock.sleeps
    assert 0.25 <= first <= 0.5  # uniform(b/2, b) with b = 0.5 s, then b doubles
    assert 0.5 <= second <= 1.0


def test_retries_give_up_after_the_configured_attempts_and_say_it_may_work_later(
    stubbed: Stubbed,
) -> None:
    _ready_to_create(stubbed)
    for _ in range(3):
        _refuse(stubbed.sso, "create_account_assignment", "ThrottlingException")

    with pytest.raises(ProviderError) as raised:
        stubbed.provider(attempts=3).grant(ALICE, TARGET, CONTEXT)

    assert raised.value.retryable is True
    assert "ThrottlingException" in str(raised.value)
    assert len(stubbed.clock.sleeps) == 2  # no sleep after the last attempt


def test_a_refused_creation_fails_at_once_naming_the_operation_and_the_code(
    stubbed: Stubbed,
) -> None:
    _ready_to_create(stubbed)
    _refuse(stubbed.sso, "create_account_assignment", "AccessDeniedException")

    with pytest.raises(ProviderError) as raised:
        stubbed.provider().grant(ALICE, TARGET, CONTEXT)

    assert "CreateAccountAssignment" in str(raised.value)
    assert "AccessDeniedException" in str(raised.value)
    assert raised.value.retryable is False
    assert stubbed.operations("CreateAccountAssignment") == 1
    assert stubbed.clock.sleeps == []


def test_revoking_an_assignment_that_is_already_gone_succeeds(stubbed: Stubbed) -> None:
    _instances(stubbed.sso, (INSTANCE, STORE))
    _user_lookup(stubbed.store, by_email=USER_ID, by_name=USER_ID)
    _refuse(stubbed.sso, "delete_account_assignment", "ResourceNotFoundException", 404)

    stubbed.provider().revoke(ALICE, TARGET, CONTEXT)

    stubbed.sso.assert_no_pending_responses()
    assert stubbed.operations("DescribeAccountAssignmentDeletionStatus") == 0
    assert stubbed.clock.sleeps == []


def test_revoking_for_a_user_deleted_from_identity_center_succeeds(stubbed: Stubbed) -> None:
    _instances(stubbed.sso, (INSTANCE, STORE))
    _user_lookup(stubbed.store, by_email=None, by_name=None)

    stubbed.provider().revoke(ALICE, TARGET, CONTEXT)  # no delete call is stubbed

    stubbed.store.assert_no_pending_responses()
    assert stubbed.operations("DeleteAccountAssignment") == 0


def test_granting_to_a_user_missing_from_identity_center_still_fails(stubbed: Stubbed) -> None:
    _instances(stubbed.sso, (INSTANCE, STORE))
    _user_lookup(stubbed.store, by_email=None, by_name=None)

    with pytest.raises(ProviderError, match="no IAM Identity Center user"):
        stubbed.provider().grant(ALICE, TARGET, CONTEXT)
    assert stubbed.operations("CreateAccountAssignment") == 0


def test_revoke_polls_an_in_progress_deletion_until_it_succeeds(stubbed: Stubbed) -> None:
    _instances(stubbed.sso, (INSTANCE, STORE))
    _user_lookup(stubbed.store, by_email=USER_ID, by_name=USER_ID)
    _deletion(stubbed.sso, "IN_PROGRESS")
    _deletion_polled(stubbed.sso, "IN_PROGRESS")
    _deletion_polled(stubbed.sso, "SUCCEEDED")

    stubbed.provider().revoke(ALICE, TARGET, CONTEXT)

    stubbed.sso.assert_no_pending_responses()
    first, second = stubbed.clock.sleeps
    assert 0.4 <= first <= 0.6 and 0.8 <= second <= 1.2


def test_revoke_removes_the_user_recorded_at_grant_even_if_renamed_since(
    stubbed: Stubbed,
) -> None:
    # Renamed in the IdP since the grant: the email names nobody now, and looking it up
    # would find nothing to remove. The recorded id still names the user.
    _instances(stubbed.sso, (INSTANCE, STORE))
    _deletion(stubbed.sso, "SUCCEEDED")
    renamed = dataclasses.replace(ALICE, recorded=f"Identity Store user {USER_ID}")

    stubbed.provider().revoke(renamed, TARGET, CONTEXT)

    stubbed.sso.assert_no_pending_responses()
    assert stubbed.operations("GetUserId") == 0


def test_a_failed_deletion_is_an_error_with_aws_reason(stubbed: Stubbed) -> None:
    _instances(stubbed.sso, (INSTANCE, STORE))
    _user_lookup(stubbed.store, by_email=USER_ID, by_name=USER_ID)
    _deletion(stubbed.sso, "IN_PROGRESS")
    _deletion_polled(stubbed.sso, "FAILED", "Internal failure deleting the role")

    with pytest.raises(ProviderError, match="revoking 111111111111 FAILED: Internal failure"):
        stubbed.provider().revoke(ALICE, TARGET, CONTEXT)


# ------------------------------------------------------------------ live sessions

DENY = Denial("JitBotEndSessionsR1", USER_ID, datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC))


def _inline(stub: Stubber, document: str) -> None:
    stub.add_response(
        "get_inline_policy_for_permission_set",
        {"InlinePolicy": document} if document else {},  # AWS omits an absent policy
        {"InstanceArn": INSTANCE, "PermissionSetArn": PS},
    )


def _provisioning(stub: Stubber, state: str, *, polled: bool = False, reason: str = "") -> None:
    status = _status(state, reason or None)
    if polled:
        stub.add_response(
            "describe_permission_set_provisioning_status",
            {"PermissionSetProvisioningStatus": status},
            {"InstanceArn": INSTANCE, "ProvisionPermissionSetRequestId": REQUEST_ID},
        )
    else:
        stub.add_response(
            "provision_permission_set",
            {"PermissionSetProvisioningStatus": status},
            {
                "InstanceArn": INSTANCE,
                "PermissionSetArn": PS,
                "TargetType": "ALL_PROVISIONED_ACCOUNTS",
            },
        )


def test_writing_a_deny_reprovisions_every_account_and_polls_until_it_succeeds(
    stubbed: Stubbed,
) -> None:
    _instances(stubbed.sso, (INSTANCE, STORE))
    _inline(stubbed.sso, "")
    stubbed.sso.add_response(
        "put_inline_policy_to_permission_set",
        {},
        {
            "InstanceArn": INSTANCE,
            "PermissionSetArn": PS,
            "InlinePolicy": json.dumps(
                {"Version": "2012-10-17", "Statement": [aws_sessions.deny_statement(DENY)]},
                separators=(",", ":"),
            ),
        },
    )
    _provisioning(stubbed.sso, "IN_PROGRESS")
    _provisioning(stubbed.sso, "IN_PROGRESS", polled=True)
    _provisioning(stubbed.sso, "SUCCEEDED", polled=True)

    assert stubbed.provider().write_denials(TARGET, [DENY]) is True

    stubbed.sso.assert_no_pending_responses()
    assert len(stubbed.clock.sleeps) == 2


def test_a_failed_provisioning_fails_the_write_with_aws_reason(stubbed: Stubbed) -> None:
    _instances(stubbed.sso, (INSTANCE, STORE))
    _inline(stubbed.sso, "")
    stubbed.sso.add_response("put_inline_policy_to_permission_set", {}, None)
    _provisioning(stubbed.sso, "FAILED", reason="Role is being modified")

    with pytest.raises(ProviderError, match=r"provisioning permission set .* Role is being"):
        stubbed.provider().write_denials(TARGET, [DENY])


def test_a_policy_that_already_says_it_is_not_written_again(stubbed: Stubbed) -> None:
    _instances(stubbed.sso, (INSTANCE, STORE))
    current = {"Version": "2012-10-17", "Statement": [aws_sessions.deny_statement(DENY)]}
    _inline(stubbed.sso, json.dumps(current, indent=2))

    assert stubbed.provider().write_denials(TARGET, [DENY]) is False
    assert stubbed.operations("ProvisionPermissionSet") == 0


def test_an_enforced_write_provisions_again_a_policy_that_already_says_it(
    stubbed: Stubbed,
) -> None:
    # A revocation retried after its provisioning FAILED finds its Deny already written.
    _instances(stubbed.sso, (INSTANCE, STORE))
    current = {"Version": "2012-10-17", "Statement": [aws_sessions.deny_statement(DENY)]}
    _inline(stubbed.sso, json.dumps(current))
    _provisioning(stubbed.sso, "SUCCEEDED")

    assert stubbed.provider().write_denials(TARGET, [DENY], enforce=True) is False

    stubbed.sso.assert_no_pending_responses()
    assert stubbed.operations("PutInlinePolicyToPermissionSet") == 0
    assert stubbed.operations("ProvisionPermissionSet") == 1


def test_the_session_scope_names_the_user_recorded_at_grant_without_a_lookup(
    stubbed: Stubbed,
) -> None:
    # The user may be deleted or renamed since: the recorded id is the one to deny.
    _instances(stubbed.sso, (INSTANCE, STORE))
    stubbed.sso.add_response(
        "describe_permission_set",
        {"PermissionSet": {"Name": "ProdSupport", "SessionDuration": "PT2H"}},
        {"InstanceArn": INSTANCE, "PermissionSetArn": PS},
    )

    scope = stubbed.provider().session_scope(
        ALICE, TARGET, recorded=f"Identity Store user {OTHER_USER_ID}"
    )

    assert scope is not None
    assert (scope.principal_id, scope.lifetime) == (OTHER_USER_ID, timedelta(hours=2))
    assert stubbed.operations("GetUserId") == 0


THEIRS = {"Sid": "ReadLogs", "Effect": "Allow", "Action": "logs:Get*", "Resource": "*"}


@pytest.mark.parametrize(
    ("document", "denials", "expected"),
    [
        pytest.param("", [DENY], [aws_sessions.deny_statement(DENY)], id="into-nothing"),
        pytest.param(
            json.dumps({"Version": "2012-10-17", "Statement": THEIRS}),
            [DENY],
            [THEIRS, aws_sessions.deny_statement(DENY)],
            id="beside-a-single-statement",
        ),
        pytest.param(
            json.dumps(
                {"Version": "2012-10-17", "Statement": [THEIRS, aws_sessions.deny_statement(DENY)]}
            ),
            [],
            [THEIRS],
            id="lifted-leaving-theirs",
        ),
        pytest.param(
            json.dumps({"Version": "2012-10-17", "Statement": [aws_sessions.deny_statement(DENY)]}),
            [],
            None,
            id="lifted-leaving-nothing",
        ),
    ],
)
def test_jit_bot_statements_merge_with_the_rest_of_the_inline_policy(
    document: str, denials: list[Denial], expected: list[dict[str, Any]] | None
) -> None:
    merged, changed = aws_sessions.with_denials(document, denials, where="ps")
    assert changed
    assert (json.loads(merged)["Statement"] if merged else None) == expected


def test_an_inline_policy_that_is_not_json_is_not_overwritten() -> None:
    with pytest.raises(ProviderError, match="not JSON; fix it by hand"):
        aws_sessions.with_denials("{oops", [DENY], where="ps")


def test_the_deny_names_the_user_and_the_revocation_time() -> None:
    assert aws_sessions.statement_id("R-2ABC") == "JitBotEndSessionsR2ABC"
    assert aws_sessions.deny_statement(DENY)["Condition"] == {
        "StringEquals": {"identitystore:UserId": USER_ID},
        "DateLessThan": {"aws:TokenIssueTime": "2024-05-01T12:00:01Z"},
    }


def test_the_deny_time_is_rounded_up_to_the_second_iam_compares() -> None:
    late = Denial("JitBotEndSessionsR1", USER_ID, datetime(2024, 5, 1, 12, 0, 1, 5, tzinfo=UTC))
    condition = aws_sessions.deny_statement(late)["Condition"]["DateLessThan"]
    assert condition == {"aws:TokenIssueTime": "2024-05-01T12:00:02Z"}


def test_end_sessions_is_on_by_default_and_not_part_of_the_access_key() -> None:
    off = AwsTarget(permission_set=PS, accounts=[ACCOUNT], end_sessions=False)
    assert TARGET.end_sessions is True
    assert off.key() == TARGET.key()


def test_an_email_matching_one_user_by_email_and_another_by_user_name_is_ambiguous(
    stubbed: Stubbed,
) -> None:
    _instances(stubbed.sso, (INSTANCE, STORE))
    _user_lookup(stubbed.store, by_email=USER_ID, by_name=OTHER_USER_ID)

    with pytest.raises(ProviderError) as raised:
        stubbed.provider().grant(ALICE, TARGET, CONTEXT)

    assert "alice@example.com matches 2" in str(raised.value)
    assert stubbed.operations("CreateAccountAssignment") == 0


def test_an_unknown_user_is_an_error_that_says_to_provision_them(stubbed: Stubbed) -> None:
    _instances(stubbed.sso, (INSTANCE, STORE))
    _user_lookup(stubbed.store, by_email=None, by_name=None)

    with pytest.raises(ProviderError) as raised:
        stubbed.provider().grant(ALICE, TARGET, CONTEXT)

    assert "alice@example.com" in str(raised.value)
    assert "provision" in str(raised.value)
    assert raised.value.retryable is False


def test_a_user_found_only_by_user_name_is_used(stubbed: Stubbed) -> None:
    _instances(stubbed.sso, (INSTANCE, STORE))
    _user_lookup(stubbed.store, by_email=None, by_name=USER_ID)
    _not_assigned_yet(stubbed.sso)
    _creation(stubbed.sso, "SUCCEEDED")  # expects PrincipalId=USER_ID

    assert stubbed.provider().grant(ALICE, TARGET, CONTEXT).preexisting is False
    stubbed.sso.assert_no_pending_responses()


def test_user_lookups_are_cached(stubbed: Stubbed) -> None:
    provider = stubbed.provider()
    _ready_to_create(stubbed)
    _creation(stubbed.sso, "SUCCEEDED")
    provider.grant(ALICE, TARGET, CONTEXT)
    _deletion(stubbed.sso, "SUCCEEDED")

    provider.revoke(ALICE, TARGET, CONTEXT)

    assert stubbed.operations("GetUserId") == 2  # by email and by user name, once
    assert stubbed.operations("ListInstances") == 1


@pytest.mark.parametrize(
    ("instances", "expected"),
    [
        ([], "found 0 Identity Center instances"),
        (
            [(INSTANCE, STORE), (OTHER_INSTANCE, OTHER_STORE)],
            "found 2 Identity Center instances; set instance_arn",
        ),
    ],
    ids=["none", "two"],
)
def test_instance_discovery_needs_exactly_one_instance(
    stubbed: Stubbed, instances: list[tuple[str, str]], expected: str
) -> None:
    _instances(stubbed.sso, *instances)

    with pytest.raises(ProviderError, match=expected):
        stubbed.provider().grant(ALICE, TARGET, CONTEXT)


def test_instance_arn_chooses_among_several_instances(stubbed: Stubbed) -> None:
    _instances(stubbed.sso, (INSTANCE, STORE), (OTHER_INSTANCE, OTHER_STORE))
    # The user is looked up in the chosen instance's identity store ...
    _user_lookup(stubbed.store, by_email=USER_ID, by_name=USER_ID, store=OTHER_STORE)
    _not_assigned_yet(stubbed.sso, OTHER_INSTANCE)
    # ... and the assignment is created in the chosen instance.
    stubbed.sso.add_response(
        "create_account_assignment",
        {"AccountAssignmentCreationStatus": _status("SUCCEEDED")},
        _assignment(OTHER_INSTANCE),
    )
    target = TARGET.model_copy(update={"instance_arn": OTHER_INSTANCE})

    assert stubbed.provider().grant(ALICE, target, CONTEXT).preexisting is False
    stubbed.sso.assert_no_pending_responses()
    stubbed.store.assert_no_pending_responses()


def test_an_instance_arn_that_does_not_exist_is_named(stubbed: Stubbed) -> None:
    _instances(stubbed.sso, (INSTANCE, STORE))
    target = TARGET.model_copy(update={"instance_arn": OTHER_INSTANCE})

    with pytest.raises(ProviderError, match=f"instance {OTHER_INSTANCE} not found"):
        stubbed.provider().grant(ALICE, target, CONTEXT)


def test_is_granted_reads_every_page_of_assignments(stubbed: Stubbed) -> None:
    _instances(stubbed.sso, (INSTANCE, STORE))
    _user_lookup(stubbed.store, by_email=USER_ID, by_name=USER_ID)
    listing = {"InstanceArn": INSTANCE, "AccountId": ACCOUNT, "PermissionSetArn": PS}
    other = _assignment() | {"PrincipalId": OTHER_USER_ID}
    mine = _assignment()
    for key in ("InstanceArn", "TargetId", "TargetType"):
        other.pop(key)
        mine.pop(key)
    stubbed.sso.add_response(
        "list_account_assignments",
        {"AccountAssignments": [other | {"AccountId": ACCOUNT}], "NextToken": "page-2"},
        listing,
    )
    stubbed.sso.add_response(
        "list_account_assignments",
        {"AccountAssignments": [mine | {"AccountId": ACCOUNT}]},
        listing | {"NextToken": "page-2"},
    )

    assert stubbed.provider().is_granted(ALICE, TARGET) is True
    stubbed.sso.assert_no_pending_responses()


# ------------------------------------------------------------------ moto half


@pytest.fixture
def seeded(aws: Seeded) -> Seeded:
    """The kit's freshly seeded moto, under this module's name for it."""
    return aws


@pytest.fixture
def calls() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def provider(moto: MotoAws, calls: list[tuple[str, str]]) -> AwsProvider:
    clients = AwsClients(
        moto.session(),
        region=REGION,
        endpoint_url=moto.endpoint,
        on_call=lambda service, op: calls.append((service, op)),
    )
    return AwsProvider(clients, sleep=_never_sleep)


def _never_sleep(seconds: float) -> None:
    raise AssertionError(f"moto answers at once; nothing should wait ({seconds}s)")


def _assign_directly(moto: MotoAws, seeded: Seeded, email: str, account: str, ps: str) -> None:
    """What an administrator does by hand in the console: access outside jit-bot."""
    moto.client("sso-admin").create_account_assignment(
        InstanceArn=seeded.instance_arn,
        TargetId=seeded.accounts[account],
        TargetType="AWS_ACCOUNT",
        PermissionSetArn=seeded.permission_sets[ps],
        PrincipalType="USER",
        PrincipalId=seeded.users[email],
    )


def test_organizational_units_expand_to_their_accounts_including_nested_ones(
    provider: AwsProvider, seeded: Seeded
) -> None:
    accounts = seeded.accounts
    target = AwsTarget(
        permission_set="ProdSupport",
        accounts=[accounts["shared"], accounts["prod-a"]],  # prod-a is also in the OU
        organizational_units=[seeded.ous["prod"]],
    )

    units = provider.expand(target)

    flat = [a for u in units if isinstance(u, AwsTarget) for a in u.accounts]
    assert sorted(flat) == sorted(accounts[n] for n in ("shared", "prod-a", "prod-b", "prod-eu-1"))
    assert len(flat) == len(set(flat)) == len(units)  # one unit per account, no duplicates
    for unit in units:
        assert isinstance(unit, AwsTarget)
        assert unit.organizational_units == []
        assert unit.permission_set == seeded.permission_sets["ProdSupport"]
        assert unit.instance_arn == seeded.instance_arn


def test_a_nested_organizational_unit_alone_expands_to_its_own_accounts(
    provider: AwsProvider, seeded: Seeded
) -> None:
    target = AwsTarget(permission_set="ReadOnly", organizational_units=[seeded.ous["prod-eu"]])

    units = provider.expand(target)

    assert [u.accounts for u in units if isinstance(u, AwsTarget)] == [
        [seeded.accounts["prod-eu-1"]]
    ]


def test_names_resolve_to_arns_and_describe_speaks_in_names(
    provider: AwsProvider, seeded: Seeded
) -> None:
    account = seeded.accounts["prod-a"]
    target = AwsTarget(permission_set="Admin", accounts=[account])

    (unit,) = provider.expand(target)

    assert isinstance(unit, AwsTarget)
    assert unit.permission_set == seeded.permission_sets["Admin"]
    expected = f"AWS account {account}: permission set `Admin`"
    assert provider.describe(unit) == expected
    assert provider.describe(target) == expected


def test_describe_lists_accounts_and_organizational_units(
    provider: AwsProvider, seeded: Seeded
) -> None:
    target = AwsTarget(
        permission_set="ProdSupport",
        accounts=[seeded.accounts["shared"]],
        organizational_units=[seeded.ous["prod"]],
    )

    text = provider.describe(target)

    assert seeded.accounts["shared"] in text and seeded.ous["prod"] in text
    assert "`ProdSupport`" in text


def test_grant_then_revoke_changes_what_aws_holds(
    provider: AwsProvider, moto: MotoAws, seeded: Seeded
) -> None:
    (unit,) = provider.expand(
        AwsTarget(permission_set="ProdSupport", accounts=[seeded.accounts["prod-a"]])
    )

    assert provider.grant(ALICE, unit, CONTEXT).preexisting is False
    assert moto.assignments(seeded) == {("alice@example.com", "prod-a", "ProdSupport")}
    assert provider.is_granted(ALICE, unit) is True
    assert provider.is_granted(BOB, unit) is False

    provider.revoke(ALICE, unit, CONTEXT)
    assert moto.assignments(seeded) == set()
    assert provider.is_granted(ALICE, unit) is False


def test_a_target_still_naming_an_organizational_unit_is_granted_on_its_accounts(
    provider: AwsProvider, moto: MotoAws, seeded: Seeded
) -> None:
    # Regression: grant/revoke/is_granted once looked only at explicit accounts, so an
    # unexpanded OU-only target was "granted" (even "preexisting") with nothing granted.
    target = AwsTarget(permission_set="ReadOnly", organizational_units=[seeded.ous["prod-eu"]])

    assert provider.is_granted(ALICE, target) is False
    assert provider.grant(ALICE, target, CONTEXT).preexisting is False
    assert moto.assignments(seeded) == {("alice@example.com", "prod-eu-1", "ReadOnly")}
    assert provider.is_granted(ALICE, target) is True

    provider.revoke(ALICE, target, CONTEXT)
    assert moto.assignments(seeded) == set()


def test_granting_on_an_empty_organizational_unit_claims_no_standing_access(
    provider: AwsProvider, moto: MotoAws, seeded: Seeded
) -> None:
    org = moto.client("organizations")
    empty = org.create_organizational_unit(ParentId=seeded.ous["prod"], Name="empty")
    target = AwsTarget(
        permission_set="ReadOnly", organizational_units=[empty["OrganizationalUnit"]["Id"]]
    )

    assert provider.expand(target) == []
    assert provider.grant(ALICE, target, CONTEXT).preexisting is False
    assert provider.validate(target, live=True) == [
        f"organizational unit {empty['OrganizationalUnit']['Id']} holds no accounts"
    ]


def test_standing_access_is_reported_as_preexisting_and_revoke_stays_idempotent(
    provider: AwsProvider, moto: MotoAws, seeded: Seeded, calls: list[tuple[str, str]]
) -> None:
    _assign_directly(moto, seeded, "alice@example.com", "prod-a", "ProdSupport")
    (unit,) = provider.expand(
        AwsTarget(permission_set="ProdSupport", accounts=[seeded.accounts["prod-a"]])
    )

    outcome = provider.grant(ALICE, unit, CONTEXT)

    assert outcome.preexisting is True
    assert outcome.detail
    assert ("sso", "CreateAccountAssignment") not in calls  # nothing was created
    assert moto.assignments(seeded) == {("alice@example.com", "prod-a", "ProdSupport")}
    # Whether to revoke standing access is the domain's decision; the provider's revoke
    # must stay safe to repeat whatever it finds.
    provider.revoke(ALICE, unit, CONTEXT)
    provider.revoke(ALICE, unit, CONTEXT)
    assert moto.assignments(seeded) == set()


def test_an_unknown_user_is_found_as_soon_as_they_are_provisioned(
    provider: AwsProvider, moto: MotoAws, seeded: Seeded
) -> None:
    dave = Principal(slack_user_id="UDAVE", email="dave@example.com")
    (unit,) = provider.expand(
        AwsTarget(permission_set="ProdSupport", accounts=[seeded.accounts["shared"]])
    )
    with pytest.raises(ProviderError, match=r"dave@example\.com.*provision"):
        provider.grant(dave, unit, CONTEXT)

    seeded.users[dave.email] = moto.add_user(seeded, dave.email)

    # A failed lookup is not cached, so no refresh() is needed for a new user.
    provider.grant(dave, unit, CONTEXT)
    assert ("dave@example.com", "shared", "ProdSupport") in moto.assignments(seeded)


def test_a_user_found_by_user_name_only_gets_the_grant(
    provider: AwsProvider, moto: MotoAws, seeded: Seeded
) -> None:
    # The directory's email differs from Slack's, but the user name is the Slack email.
    user_id = moto.add_user(seeded, "erin@corp.example.com", user_name="erin@example.com")
    erin = Principal(slack_user_id="UERIN", email="erin@example.com")
    (unit,) = provider.expand(
        AwsTarget(permission_set="ReadOnly", accounts=[seeded.accounts["shared"]])
    )

    provider.grant(erin, unit, CONTEXT)

    listed = moto.client("sso-admin").list_account_assignments(
        InstanceArn=seeded.instance_arn,
        AccountId=seeded.accounts["shared"],
        PermissionSetArn=seeded.permission_sets["ReadOnly"],
    )["AccountAssignments"]
    assert [a["PrincipalId"] for a in listed] == [user_id]


def test_refresh_forgets_a_cached_user_after_they_are_provisioned_again(
    provider: AwsProvider, moto: MotoAws, seeded: Seeded
) -> None:
    (unit,) = provider.expand(
        AwsTarget(permission_set="ProdSupport", accounts=[seeded.accounts["prod-b"]])
    )
    assert provider.is_granted(ALICE, unit) is False  # caches alice's user id
    store = moto.client("identitystore")
    store.delete_user(IdentityStoreId=seeded.identity_store_id, UserId=seeded.users[ALICE.email])
    seeded.users[ALICE.email] = moto.add_user(seeded, ALICE.email)  # a new user id
    _assign_directly(moto, seeded, ALICE.email, "prod-b", "ProdSupport")

    assert provider.is_granted(ALICE, unit) is False  # still the cached, old id
    provider.refresh()
    assert provider.is_granted(ALICE, unit) is True


def test_refresh_picks_up_an_account_added_to_an_organizational_unit(
    provider: AwsProvider, moto: MotoAws, seeded: Seeded
) -> None:
    target = AwsTarget(permission_set="ProdSupport", organizational_units=[seeded.ous["prod"]])
    before = {a for u in provider.expand(target) if isinstance(u, AwsTarget) for a in u.accounts}
    org = moto.client("organizations")
    created = org.create_account(Email="prod-c@aws.example.com", AccountName="prod-c")
    new_account = created["CreateAccountStatus"]["AccountId"]
    org.move_account(
        AccountId=new_account,
        SourceParentId=org.list_roots()["Roots"][0]["Id"],
        DestinationParentId=seeded.ous["prod"],
    )

    cached = {a for u in provider.expand(target) if isinstance(u, AwsTarget) for a in u.accounts}
    provider.refresh()
    after = {a for u in provider.expand(target) if isinstance(u, AwsTarget) for a in u.accounts}

    assert cached == before
    assert after == before | {new_account}


def test_live_validation_warns_about_long_sessions(provider: AwsProvider, seeded: Seeded) -> None:
    admin = AwsTarget(
        permission_set="Admin",
        accounts=[seeded.accounts["prod-a"]],
        organizational_units=[seeded.ous["prod"]],
    )
    support = AwsTarget(permission_set="ProdSupport", accounts=[seeded.accounts["prod-a"]])

    (warning,) = provider.validate(admin, live=True)
    assert "`Admin`" in warning and "8:00:00" in warning
    assert provider.validate(support, live=True) == []
    assert provider.validate(admin, live=False) == []


def test_live_validation_rejects_a_permission_set_that_does_not_exist(
    provider: AwsProvider, seeded: Seeded
) -> None:
    target = AwsTarget(permission_set="PowerUser", accounts=[seeded.accounts["prod-a"]])

    with pytest.raises(ProviderError, match="no permission set named `PowerUser`"):
        provider.validate(target, live=True)


def test_live_validation_rejects_an_account_outside_the_organization(
    provider: AwsProvider, seeded: Seeded
) -> None:
    target = AwsTarget(permission_set="ProdSupport", accounts=["999999999999"])

    with pytest.raises(ProviderError, match=r"999999999999.*AccountNotFoundException"):
        provider.validate(target, live=True)


def test_live_validation_rejects_an_organizational_unit_that_does_not_exist(
    provider: AwsProvider, seeded: Seeded
) -> None:
    missing = "ou-zzzz-zzzzzzzz"
    target = AwsTarget(permission_set="ProdSupport", organizational_units=[missing])

    with pytest.raises(ProviderError, match=missing):
        provider.validate(target, live=True)


def test_inventory_lists_user_assignments_by_email(
    provider: AwsProvider, moto: MotoAws, seeded: Seeded
) -> None:
    accounts = seeded.accounts
    target = AwsTarget(
        permission_set="ProdSupport", accounts=[accounts["prod-a"], accounts["prod-b"]]
    )
    prod_a, prod_b = provider.expand(target)
    provider.grant(ALICE, prod_a, CONTEXT)
    provider.grant(BOB, prod_a, CONTEXT)
    _assign_directly(moto, seeded, "carol@example.com", "prod-b", "ProdSupport")
    _assign_directly(moto, seeded, "carol@example.com", "prod-b", "Admin")  # another set
    moto.client("sso-admin").create_account_assignment(  # groups are not people
        InstanceArn=seeded.instance_arn,
        TargetId=accounts["prod-a"],
        TargetType="AWS_ACCOUNT",
        PermissionSetArn=seeded.permission_sets["ProdSupport"],
        PrincipalType="GROUP",
        PrincipalId="9067aaaa-bbbb-cccc-dddd-eeeeffff0000",
    )

    holdings = provider.inventory(target)

    assert holdings is not None
    assert sorted(holdings, key=lambda h: (h.email, h.unit.key())) == [
        Holding(email="alice@example.com", unit=prod_a),
        Holding(email="bob@example.com", unit=prod_a),
        Holding(email="carol@example.com", unit=prod_b),
    ]


ROLE_ARN = "arn:aws:iam::123456789012:role/jit-bot"  # moto's default account holds the seed


def _assuming_clients(
    moto: MotoAws, calls: list[tuple[str, str]], session: boto3.Session
) -> AwsClients:
    return AwsClients(
        session,
        region=REGION,
        endpoint_url=moto.endpoint,
        default=AwsCredentials(assume_role_arn=ROLE_ARN, external_id="jit-bot-external-id"),
        on_call=lambda service, op: calls.append((service, op)),
    )


def test_a_configured_role_is_assumed_and_its_credentials_are_used(
    moto: MotoAws, seeded: Seeded
) -> None:
    calls: list[tuple[str, str]] = []
    sent: list[dict[str, Any]] = []
    issued: list[str] = []
    session = moto.session()
    session.events.register(
        "provide-client-params.sts.AssumeRole", lambda params, **_: sent.append(dict(params))
    )
    session.events.register(
        "after-call.sts.AssumeRole",
        lambda parsed, **_: issued.append(parsed["Credentials"]["AccessKeyId"]),
    )
    clients = _assuming_clients(moto, calls, session)
    provider = AwsProvider(clients, sleep=_never_sleep)
    (unit,) = provider.expand(
        AwsTarget(permission_set="ProdSupport", accounts=[seeded.accounts["shared"]])
    )

    provider.grant(ALICE, unit, CONTEXT)

    assert calls[0] == ("sts", "AssumeRole")
    assert sent[0]["RoleArn"] == ROLE_ARN
    assert sent[0]["ExternalId"] == "jit-bot-external-id"
    credentials = clients.client("sso-admin")._get_credentials()
    assert credentials is not None
    assert credentials.access_key in issued
    assert credentials.access_key != "testing"
    assert moto.assignments(seeded) == {("alice@example.com", "shared", "ProdSupport")}


def test_the_role_to_assume_can_come_from_the_environment(
    moto: MotoAws, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in moto.environ().items():
        monkeypatch.setenv(name, value)
    environ = moto.environ() | {
        "JIT_AWS_ASSUME_ROLE_ARN": ROLE_ARN,
        "JIT_AWS_EXTERNAL_ID": "jit-bot-external-id",
    }
    # from_environ builds its own boto3 session (the default chain); watch what it sends.
    sent: list[dict[str, Any]] = []
    session = boto3.Session()
    session.events.register(
        "provide-client-params.sts.AssumeRole", lambda params, **_: sent.append(dict(params))
    )
    built = boto3.Session
    monkeypatch.setattr(boto3, "Session", lambda *a, **kw: built(*a, **kw) if a or kw else session)
    clients = AwsClients.from_environ(environ)
    provider = AwsProvider(clients, sleep=_never_sleep)

    (unit,) = provider.expand(
        AwsTarget(permission_set="ReadOnly", accounts=[seeded.accounts["shared"]])
    )
    provider.grant(BOB, unit, CONTEXT)

    credentials = clients.client("sso-admin")._get_credentials()
    assert credentials is not None and credentials.access_key != "testing"
    assert credentials.token  # temporary credentials from STS carry a session token
    assert sent  # once per service client
    assert all(
        params
        == {"RoleArn": ROLE_ARN, "RoleSessionName": "jit-bot", "ExternalId": "jit-bot-external-id"}
        for params in sent
    ), sent
    assert ("bob@example.com", "shared", "ReadOnly") in moto.assignments(seeded)


def test_a_role_on_the_target_is_assumed_for_that_target(
    moto: MotoAws, seeded: Seeded, provider: AwsProvider, calls: list[tuple[str, str]]
) -> None:
    target = AwsTarget(
        permission_set="ProdSupport",
        accounts=[seeded.accounts["shared"]],
        assume_role_arn=ROLE_ARN,
        external_id="per-target-id",
    )

    (unit,) = provider.expand(target)
    provider.grant(ALICE, unit, CONTEXT)

    assert ("sts", "AssumeRole") in calls
    assert moto.assignments(seeded) == {("alice@example.com", "shared", "ProdSupport")}


# ------------------------------------------------------------------ the target model


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"accounts": ["111111111111"], "external_id": "abc-123"},
            "external_id only makes sense with assume_role_arn",
        ),
        ({"accounts": ["11111111111"]}, "'11111111111' is not an AWS account id; expected 12"),
        ({"accounts": [111111111111]}, "valid string"),  # unquoted in YAML: an int
        ({"organizational_units": ["prod"]}, "'prod' is not an organizational unit id"),
        ({}, "expected 'accounts' and/or 'organizational_units'"),
        ({"accounts": [], "organizational_units": []}, "expected 'accounts' and/or"),
        (
            {"accounts": ["111111111111"], "assume_role_arn": "jit-bot"},
            "'jit-bot' is not an IAM role ARN",
        ),
        (
            {"accounts": ["111111111111"], "instance_arn": "ssoins-1"},
            "is not an Identity Center instance ARN",
        ),
        ({"accounts": ["111111111111"], "permision_set": "x"}, "Extra inputs are not permitted"),
    ],
    ids=[
        "external-id-without-role",
        "eleven-digits",
        "unquoted-account",
        "bad-ou",
        "nowhere",
        "empty-lists",
        "bad-role-arn",
        "bad-instance-arn",
        "unknown-key",
    ],
)
def test_the_target_model_rejects_what_cannot_work(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AwsTarget.model_validate({"provider": "aws", "permission_set": "ProdSupport"} | fields)


def test_the_target_model_accepts_permission_set_arns_and_nested_ou_ids() -> None:
    target = AwsTarget.model_validate(
        {
            "provider": "aws",
            "permission_set": PS,
            "organizational_units": ["ou-ab12-cd34ef56", "r-ab12"],
            "assume_role_arn": ROLE_ARN,
            "external_id": "jit-bot-external-id",
        }
    )
    assert target.accounts == []


def test_every_expanded_unit_has_a_stable_key(provider: AwsProvider, seeded: Seeded) -> None:
    target = AwsTarget(permission_set="ProdSupport", organizational_units=[seeded.ous["prod"]])
    first = sorted(u.key() for u in provider.expand(target))
    provider.refresh()
    assert sorted(u.key() for u in provider.expand(target)) == first
