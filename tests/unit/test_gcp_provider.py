"""The gcp provider and Google identity, against FakeGoogle over the wire: the official
clients (Resource Manager v3 over REST, IAM admin over gRPC) with anonymous credentials,
or a service-account key whose token endpoint is the fake, exactly as the bot runs them.

Target validation; the IAM policy read-modify-write (nothing of anyone else's is ever
lost, stale etags retried); revocation (idempotent, expired leftovers cleaned, standing
access untouched); who the principal is (domain map); credentials (ADC, impersonation,
domain-wide delegation); ``check --live``; Google groups; errors that say what to fix.
"""

from __future__ import annotations

import copy
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.auth import impersonated_credentials
from google.auth.credentials import AnonymousCredentials
from google.auth.exceptions import DefaultCredentialsError
from google.auth.transport.requests import AuthorizedSession
from google.oauth2 import service_account
from pydantic import ValidationError

from bot.clock import FakeClock
from bot.config import ConfigError, load_config
from bot.errors import DirectoryError, DirectoryUnavailable
from bot.google_groups import SCOPE, GoogleGroups
from bot.slack.directory import SlackDirectory
from providers.base import GrantContext, Principal, ProviderError
from providers.gcp import (
    CLOUD_PLATFORM,
    DomainMap,
    GcpClients,
    GcpProvider,
    GcpTarget,
    GoogleAuth,
)
from tests.conftest import BOB, CAROL, MALLORY
from tests.fakes.gcp import SERVICE_ACCOUNT, FakeGoogle
from tests.fakes.slack_api import FakeSlack

NOW = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
EXPIRES = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ALICE = Principal(slack_user_id="UALICE", email="alice@example.com")
CONTEXT = GrantContext(
    request_id="R-7K2M9QXA",
    role="prod-support",
    environment="prod",
    reason="INC-123",
    expires_at=EXPIRES,
)
PROJECT = "projects/acme-prod"
TARGET = GcpTarget(role="roles/logging.viewer", projects=["acme-prod"])
OURS = {
    "role": "roles/logging.viewer",
    "members": ["user:alice@example.com"],
    "condition": {
        "title": "jit-bot R-7K2M9QXA",
        "description": (
            "jit-bot request R-7K2M9QXA: alice@example.com as prod-support in prod "
            "(roles/logging.viewer)"
        ),
        "expression": 'request.time < timestamp("2024-05-01T12:00:00Z")',
    },
}
# A policy as a real project has one: unconditional and conditional bindings of other
# people and other tools, one of them for the very role jit-bot grants, and audit configs.
UNRELATED: dict[str, Any] = {
    "version": 3,
    "bindings": [
        {"role": "roles/owner", "members": ["group:platform@example.com"]},
        {
            "role": "roles/logging.viewer",
            "members": ["user:carol@example.com", "group:oncall@example.com"],
            "condition": {
                "title": "business hours",
                "description": "Terraform: oncall reads logs in business hours",
                "expression": "request.time.getHours('Europe/Berlin') >= 9",
            },
        },
        {
            "role": "roles/storage.objectViewer",
            "members": ["serviceAccount:etl@acme-prod.iam.gserviceaccount.com"],
            "condition": {
                "title": "only the exports bucket",
                "expression": (
                    'resource.name.startsWith("projects/_/buckets/acme-exports/objects/")'
                ),
            },
        },
        {"role": "roles/logging.viewer", "members": ["user:dave@example.com"]},
    ],
    "auditConfigs": [
        {"service": "allServices", "auditLogConfigs": [{"logType": "DATA_READ"}]},
    ],
}


@pytest.fixture
def google(empty_google: FakeGoogle) -> FakeGoogle:
    empty_google.add_project("acme-prod", copy.deepcopy(UNRELATED))
    empty_google.add_project("acme-staging")
    empty_google.add_folder("123456789012")
    empty_google.add_organization("555555555555")
    return empty_google


@pytest.fixture
def sleeps() -> list[float]:
    return []


def _clients(google: FakeGoogle, credentials: Any = None) -> GcpClients:
    return GcpClients(
        credentials or google.credentials(),
        api_endpoint=google.url,
        iam_endpoint=google.iam_endpoint,
    )


@pytest.fixture
def provider(google: FakeGoogle, sleeps: list[float]) -> GcpProvider:
    return GcpProvider(_clients(google), sleep=sleeps.append, now=lambda: NOW)


def _written(google: FakeGoogle) -> list[dict[str, Any]]:
    """The policies the provider sent with setIamPolicy."""
    return [c.body["policy"] for c in google.calls_to("setIamPolicy")]


# ------------------------------------------------------------------ 1. targets


def test_a_target_names_a_role_and_projects_folders_or_an_organization() -> None:
    target = GcpTarget.model_validate(
        {
            "provider": "gcp",
            "role": "organizations/555555555555/roles/jitDebugger",
            "projects": ["acme-prod", "123456789"],
            "folders": ["folders/123456789012"],  # as the console copies it
            "organization": "555555555555",
        }
    )
    assert target.folders == ["123456789012"]
    assert target.resources() == [
        "projects/acme-prod",
        "projects/123456789",
        "folders/123456789012",
        "organizations/555555555555",
    ]
    GcpTarget(role="projects/acme-prod/roles/jit.debugger", projects=["acme-prod"])


@pytest.mark.parametrize("role", ["roles/owner", "roles/editor", "roles/viewer"])
def test_basic_roles_are_rejected_because_they_cannot_carry_conditions(role: str) -> None:
    with pytest.raises(ValidationError, match="cannot carry IAM conditions"):
        GcpTarget(role=role, projects=["acme-prod"])


def test_config_validation_rejects_a_basic_role_naming_file_path_and_reason(
    tmp_path: Path,
) -> None:
    roles = tmp_path / "roles.yaml"
    approvers = tmp_path / "approvers.yaml"
    roles.write_text(
        textwrap.dedent(
            """\
            roles:
              prod-support:
                max_duration: 2h
                environments:
                  prod:
                    - provider: gcp
                      role: roles/editor
                      projects: [acme-prod]
            """
        )
    )
    approvers.write_text(
        "groups:\n  sre: [U0123ABCD]\nrules:\n  - approvers: [sre]\n",
    )
    with pytest.raises(ConfigError) as raised:
        load_config(roles, approvers, {"gcp": GcpTarget})
    message = str(raised.value)
    assert f"{roles}:7: roles.prod-support.environments.prod[0].role" in message
    assert "basic role roles/editor cannot carry IAM conditions" in message


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"role": "roles/logging.viewer"}, "expected 'projects', 'folders' and/or"),
        ({"role": "logging.viewer", "projects": ["acme-prod"]}, "is not an IAM role"),
        ({"role": "roles/logging.viewer", "projects": ["Acme_Prod"]}, "not a GCP project id"),
        ({"role": "roles/logging.viewer", "folders": ["eng"]}, "not a folder id"),
        ({"role": "roles/logging.viewer", "organization": "acme.com"}, "not a organization id"),
        (
            {"role": "projects/acme-prod/roles/jitDebugger", "projects": ["acme-staging"]},
            "can be granted there only; expected projects: [acme-prod]",
        ),
        ({"role": "roles/logging.viewer", "projects": ["acme-prod"], "zone": "x"}, "zone"),
    ],
)
def test_malformed_targets_are_rejected_with_what_was_expected(
    fields: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        GcpTarget.model_validate({"provider": "gcp", **fields})
    assert expected in str(raised.value)


def test_expand_gives_one_unit_per_resource_each_described_on_one_line(
    provider: GcpProvider,
) -> None:
    target = GcpTarget(
        role="roles/logging.viewer",
        projects=["acme-prod", "acme-staging"],
        folders=["123456789012"],
        organization="555555555555",
    )
    units = provider.expand(target)
    assert [provider.describe(u) for u in units] == [
        "GCP project acme-prod: role `roles/logging.viewer`",
        "GCP project acme-staging: role `roles/logging.viewer`",
        "GCP folder 123456789012: role `roles/logging.viewer`",
        "GCP organization 555555555555: role `roles/logging.viewer`",
    ]


# ------------------------------------------------------------------ 2. grant


def test_grant_adds_a_binding_that_names_the_request_and_ends_at_expiry(
    provider: GcpProvider, google: FakeGoogle
) -> None:
    outcome = provider.grant(ALICE, TARGET, CONTEXT)

    assert not outcome.preexisting
    assert google.policy(PROJECT)["bindings"][-1] == OURS
    [read] = google.calls_to("getIamPolicy")
    assert read.body == {"options": {"requestedPolicyVersion": 3}}
    [write] = google.calls_to("setIamPolicy")
    assert write.body["policy"]["version"] == 3
    assert write.body["updateMask"] == "bindings,etag"
    assert provider.is_granted(ALICE, TARGET) is True


def test_the_policy_written_back_is_the_policy_read_plus_our_binding(
    provider: GcpProvider, google: FakeGoogle
) -> None:
    before = google.policy(PROJECT)

    provider.grant(ALICE, TARGET, CONTEXT)

    [written] = _written(google)
    assert written["etag"] == before["etag"]  # the write was conditional on what we read
    assert written["bindings"] == [*UNRELATED["bindings"], OURS]
    after = google.policy(PROJECT)
    assert after["bindings"] == [*UNRELATED["bindings"], OURS]
    assert after["auditConfigs"] == UNRELATED["auditConfigs"]
    assert after["etag"] != before["etag"]


def test_a_policy_changed_between_read_and_write_is_read_again_and_both_changes_kept(
    provider: GcpProvider, google: FakeGoogle, sleeps: list[float]
) -> None:
    theirs: dict[str, Any] = {"role": "roles/cloudsql.client", "members": ["user:erin@example.com"]}
    # Another administrator writes the policy after our read, before our write.
    google.before_next(
        "setIamPolicy", lambda: google.add_binding(PROJECT, theirs["role"], theirs["members"])
    )

    provider.grant(ALICE, TARGET, CONTEXT)

    assert [c.status for c in google.calls_to("setIamPolicy")] == [409, 200]
    assert len(google.calls_to("getIamPolicy")) == 2
    assert len(sleeps) == 1
    assert google.policy(PROJECT)["bindings"] == [*UNRELATED["bindings"], theirs, OURS]


def test_etag_conflicts_that_never_end_fail_retryably_after_bounded_backoff(
    provider: GcpProvider, google: FakeGoogle, sleeps: list[float]
) -> None:
    google.fail_next("setIamPolicy", status=409, times=100, message="concurrent policy changes")

    with pytest.raises(ProviderError) as raised:
        provider.grant(ALICE, TARGET, CONTEXT)

    assert raised.value.retryable
    assert "kept changing" in str(raised.value)
    assert len(google.calls_to("setIamPolicy")) == 12
    assert len(sleeps) == 11
    assert max(sleeps) <= 4.0
    assert google.policy(PROJECT)["bindings"] == UNRELATED["bindings"]


def test_standing_access_is_reported_and_nothing_is_written(
    provider: GcpProvider, google: FakeGoogle
) -> None:
    google.add_binding(PROJECT, "roles/logging.viewer", ["user:alice@example.com"])
    google.calls.clear()

    outcome = provider.grant(ALICE, TARGET, CONTEXT)

    assert outcome.preexisting
    assert "already holds roles/logging.viewer" in outcome.detail
    assert google.calls_to("setIamPolicy") == []


def test_a_conditional_binding_of_someone_elses_is_not_standing_access(
    provider: GcpProvider, google: FakeGoogle
) -> None:
    """Carol holds the role in business hours only: that is not access to rely on."""
    outcome = provider.grant(Principal("UCAROL", "carol@example.com"), TARGET, CONTEXT)
    assert not outcome.preexisting
    assert len(google.calls_to("setIamPolicy")) == 1


def test_granting_again_for_the_same_request_writes_nothing(
    provider: GcpProvider, google: FakeGoogle
) -> None:
    provider.grant(ALICE, TARGET, CONTEXT)
    provider.grant(ALICE, TARGET, CONTEXT)

    assert len(google.calls_to("setIamPolicy")) == 1
    assert google.policy(PROJECT)["bindings"].count(OURS) == 1


def test_a_requester_without_a_google_account_gets_a_clear_error_and_nothing_changes(
    provider: GcpProvider, google: FakeGoogle
) -> None:
    google.known_users = {"alice@example.com"}
    before = google.policy(PROJECT)

    with pytest.raises(ProviderError) as raised:
        provider.grant(Principal("UMALLORY", "mallory@example.com"), TARGET, CONTEXT)

    assert str(raised.value) == (
        "project acme-prod: setIamPolicy failed (400 INVALID_ARGUMENT): "
        "User mallory@example.com does not exist"
    )
    assert not raised.value.retryable
    assert google.policy(PROJECT) == before


def test_folders_and_organizations_are_granted_through_their_own_apis(
    provider: GcpProvider, google: FakeGoogle
) -> None:
    target = GcpTarget(
        role="roles/logging.viewer", folders=["123456789012"], organization="555555555555"
    )
    for unit in provider.expand(target):
        provider.grant(ALICE, unit, CONTEXT)

    assert [c.path for c in google.calls_to("setIamPolicy")] == [
        "/v3/folders/123456789012:setIamPolicy",
        "/v3/organizations/555555555555:setIamPolicy",
    ]
    for resource in ("folders/123456789012", "organizations/555555555555"):
        assert google.policy(resource)["bindings"] == [OURS]


# ------------------------------------------------------------------ 3. revoke


def test_revoke_removes_our_binding_and_leaves_the_policy_as_it_was(
    provider: GcpProvider, google: FakeGoogle
) -> None:
    provider.grant(ALICE, TARGET, CONTEXT)

    provider.revoke(ALICE, TARGET, CONTEXT)

    after = google.policy(PROJECT)
    assert after["bindings"] == UNRELATED["bindings"]
    assert after["auditConfigs"] == UNRELATED["auditConfigs"]
    assert provider.is_granted(ALICE, TARGET) is False


def test_revoke_is_idempotent_and_writes_nothing_when_there_is_nothing_to_remove(
    provider: GcpProvider, google: FakeGoogle
) -> None:
    provider.grant(ALICE, TARGET, CONTEXT)
    provider.revoke(ALICE, TARGET, CONTEXT)
    provider.revoke(ALICE, TARGET, CONTEXT)
    provider.revoke(
        ALICE, GcpTarget(role="roles/logging.viewer", projects=["acme-staging"]), CONTEXT
    )

    assert len(google.calls_to("setIamPolicy")) == 2  # the grant and the first revoke


def test_revoke_also_drops_expired_jit_bot_bindings_and_nothing_else(
    provider: GcpProvider, google: FakeGoogle
) -> None:
    def jit(member: str, role: str, request_id: str, until: str) -> dict[str, Any]:
        return {
            "role": role,
            "members": [f"user:{member}"],
            "condition": {
                "title": f"jit-bot {request_id}",
                "expression": f'request.time < timestamp("{until}")',
            },
        }

    expired = jit("bob@example.com", "roles/cloudsql.client", "R-OLD00001", "2024-04-30T09:00:00Z")
    live = jit("carol@example.com", "roles/logging.viewer", "R-LIVE0001", "2024-05-01T11:00:00Z")
    # Someone else's expiring binding: not jit-bot's to clean up, even when expired.
    foreign: dict[str, Any] = {
        "role": "roles/compute.viewer",
        "members": ["user:frank@example.com"],
        "condition": {
            "title": "temporary",
            "expression": 'request.time < timestamp("2024-01-01T00:00:00Z")',
        },
    }
    for binding in (expired, live, foreign):
        google.add_binding(PROJECT, binding["role"], binding["members"], binding["condition"])
    provider.grant(ALICE, TARGET, CONTEXT)

    provider.revoke(ALICE, TARGET, CONTEXT)

    assert google.policy(PROJECT)["bindings"] == [*UNRELATED["bindings"], live, foreign]


def test_revoke_never_touches_standing_access(provider: GcpProvider, google: FakeGoogle) -> None:
    google.add_binding(PROJECT, "roles/logging.viewer", ["user:alice@example.com"])
    before = google.policy(PROJECT)["bindings"]

    provider.revoke(ALICE, TARGET, CONTEXT)

    assert google.policy(PROJECT)["bindings"] == before
    assert google.calls_to("setIamPolicy") == []  # nothing of ours to remove
    assert provider.is_granted(ALICE, TARGET) is True


def test_revoke_removes_this_requests_binding_only_by_its_title(
    provider: GcpProvider, google: FakeGoogle
) -> None:
    """Another request of the same person has a binding of its own: it ends with that
    request (or by its condition), so a revocation running while it is being granted
    can never take it away."""
    other = GrantContext("R-OTHER001", "prod-support", "prod", "x", EXPIRES + timedelta(hours=1))
    provider.grant(ALICE, TARGET, other)
    provider.grant(ALICE, TARGET, CONTEXT)
    [others] = [
        b
        for b in google.policy(PROJECT)["bindings"]
        if b.get("condition", {}).get("title") == "jit-bot R-OTHER001"
    ]

    provider.revoke(ALICE, TARGET, CONTEXT)

    assert google.policy(PROJECT)["bindings"] == [*UNRELATED["bindings"], others]
    assert provider.is_granted(ALICE, TARGET) is True
    provider.revoke(ALICE, TARGET, other)
    assert google.policy(PROJECT)["bindings"] == UNRELATED["bindings"]


def test_inventory_lists_who_holds_the_role_through_live_jit_bot_bindings(
    provider: GcpProvider, google: FakeGoogle
) -> None:
    provider.grant(ALICE, TARGET, CONTEXT)
    google.add_binding(
        PROJECT,
        "roles/logging.viewer",
        ["user:bob@example.com"],
        {
            "title": "jit-bot R-GONE0001",
            "expression": 'request.time < timestamp("2024-01-01T00:00:00Z")',
        },
    )

    holdings = provider.inventory(TARGET)

    assert [(h.email, h.unit, h.request_id) for h in holdings or []] == [
        ("alice@example.com", TARGET, CONTEXT.request_id)
    ]


# ------------------------------------------------------------------ 4. who


def test_the_domain_map_turns_the_slack_email_into_the_google_account(
    google: FakeGoogle,
) -> None:
    provider = GcpProvider(
        _clients(google), domain_map=DomainMap.parse("example.org=example.com"), now=lambda: NOW
    )
    slack_alice = Principal("UALICE", "Alice@Example.org")

    outcome = provider.grant(slack_alice, TARGET, CONTEXT)

    assert google.policy(PROJECT)["bindings"][-1]["members"] == ["user:alice@example.com"]
    # What approvers are shown, and what self-approval and distinct votes compare.
    assert outcome.principal == "user:alice@example.com"
    assert provider.account_email("Alice@Example.org") == "alice@example.com"
    [holding] = provider.inventory(TARGET) or []
    assert holding.email == "alice@example.org"  # drift compares with the Slack email
    provider.revoke(slack_alice, TARGET, CONTEXT)
    assert google.policy(PROJECT)["bindings"] == UNRELATED["bindings"]


@pytest.mark.parametrize(
    "value", ["example.org", "example.org=", "a=b=c", "x.org=y.com,x.org=z.com"]
)
def test_a_malformed_domain_map_stops_the_bot_at_start_up(value: str) -> None:
    with pytest.raises(ValueError, match="JIT_GCP_DOMAIN_MAP"):
        GcpProvider.from_environ({"JIT_GCP_DOMAIN_MAP": value})


def test_the_domain_map_keeps_unmapped_domains_and_maps_back_only_when_unambiguous() -> None:
    domains = DomainMap.parse(" example.org = example.com , corp.example=example.com, a.io=b.io")
    assert domains.to_google("bob@example.org") == "bob@example.com"
    assert domains.to_google("bob@elsewhere.net") == "bob@elsewhere.net"
    assert domains.to_slack("bob@example.com") == [
        "bob@example.org",
        "bob@corp.example",
        "bob@example.com",
    ]
    assert domains.slack_email("bob@example.com") == "bob@example.com"  # two candidates
    assert domains.slack_email("bob@b.io") == "bob@a.io"


# ------------------------------------------------------------------ Google groups


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _groups(google: FakeGoogle, clock: FakeClock, **options: Any) -> GoogleGroups:
    return GoogleGroups(
        lambda: AuthorizedSession(google.credentials([SCOPE])),
        clock,
        endpoint=google.url,
        sleep=lambda _: None,
        **options,
    )


def _seed_groups(google: FakeGoogle) -> None:
    google.add_group(
        "sre@example.com",
        ["bob@example.com", "carol@example.com", ("leads@example.com", "GROUP")],
    )
    google.add_group("leads@example.com", ["Lead@Example.com", "gone@example.com"])
    google.set_member_status("leads@example.com", "gone@example.com", "SUSPENDED")


def test_google_group_members_are_read_page_by_page_nested_groups_included(
    google: FakeGoogle, clock: FakeClock
) -> None:
    _seed_groups(google)

    members = _groups(google, clock).members("SRE@example.com")

    assert members == {"bob@example.com", "carol@example.com", "lead@example.com"}
    calls = google.calls_to("members.list")
    assert len(calls) == 2  # five members (the group, a suspended user) three to a page
    assert all(c.path == "/admin/directory/v1/groups/sre@example.com/members" for c in calls)


def test_google_group_members_are_cached_until_the_ttl_or_a_refresh(
    google: FakeGoogle, clock: FakeClock
) -> None:
    _seed_groups(google)
    groups = _groups(google, clock, ttl=timedelta(minutes=5))
    groups.members("sre@example.com")
    google.remove_member("sre@example.com", "carol@example.com")

    assert "carol@example.com" in groups.members("sre@example.com")  # cached
    groups.refresh()
    assert "carol@example.com" not in groups.members("sre@example.com")

    google.add_group("sre@example.com", ["bob@example.com", "carol@example.com"])
    clock.advance(timedelta(minutes=4))
    assert "carol@example.com" not in groups.members("sre@example.com")
    clock.advance(timedelta(minutes=2))
    assert "carol@example.com" in groups.members("sre@example.com")


def test_google_group_members_are_answered_as_the_slack_emails_they_may_have(
    google: FakeGoogle, clock: FakeClock
) -> None:
    google.add_group("sre@example.com", ["bob@example.com"])
    groups = _groups(google, clock, domain_map=DomainMap.parse("example.org=example.com"))

    assert groups.emails("sre@example.com") == {"bob@example.org", "bob@example.com"}


def test_an_unknown_google_group_names_nobody(google: FakeGoogle, clock: FakeClock) -> None:
    assert _groups(google, clock).members("nope@example.com") == frozenset()


def test_a_refused_directory_read_is_a_directory_error_saying_what_to_set_up(
    google: FakeGoogle, clock: FakeClock
) -> None:
    _seed_groups(google)
    google.directory_denied = True

    with pytest.raises(DirectoryError) as raised:
        _groups(google, clock).members("sre@example.com")

    assert "403: Not Authorized to access this resource/api" in str(raised.value)
    assert "JIT_GOOGLE_ADMIN_SUBJECT" in str(raised.value)


def test_directory_outages_are_retried_then_reported(google: FakeGoogle, clock: FakeClock) -> None:
    _seed_groups(google)
    google.fail_next("members.list", status=503, times=2)
    assert "bob@example.com" in _groups(google, clock).members("sre@example.com")

    google.fail_next("members.list", status=503, times=10)
    # No answer is not "nobody": the caller decides nothing from it.
    with pytest.raises(DirectoryUnavailable, match="Google answered 503"):
        _groups(google, clock, attempts=3).members("leads@example.com")


def test_domain_wide_delegation_reads_groups_as_the_configured_workspace_user(
    google: FakeGoogle, clock: FakeClock, tmp_path: Path
) -> None:
    _seed_groups(google)
    key = google.service_account_key(tmp_path / "key.json")
    groups = GoogleGroups.from_environ(
        {**google.environ(key), "JIT_GOOGLE_ADMIN_SUBJECT": "admin@example.com"}, clock
    )

    assert "bob@example.com" in groups.members("sre@example.com")

    [grant] = google.token_grants.items()
    token, claims = grant
    assert claims["iss"] == SERVICE_ACCOUNT
    assert claims["sub"] == "admin@example.com"
    assert claims["scope"] == SCOPE
    assert {c.authorization for c in google.calls_to("members.list")} == {f"Bearer {token}"}


def test_google_group_entries_in_config_are_lower_cased_and_checked(tmp_path: Path) -> None:
    roles = tmp_path / "roles.yaml"
    approvers = tmp_path / "approvers.yaml"
    roles.write_text(
        "roles:\n  r:\n    max_duration: 1h\n    requesters: ['google:Eng@Example.com']\n"
        "    environments:\n      prod:\n        - provider: gcp\n"
        "          role: roles/logging.viewer\n          projects: [acme-prod]\n"
    )
    approvers.write_text(
        "groups:\n  sre: ['google:SRE-Leads@example.com']\nrules:\n  - approvers: [sre]\n"
        "settings:\n  allowed_email_domains: [example.com]\n"
    )
    config = load_config(roles, approvers, {"gcp": GcpTarget})
    assert config.roles["r"].requesters == ["google:eng@example.com"]
    assert config.groups["sre"] == ["google:sre-leads@example.com"]

    approvers.write_text(
        "groups:\n  sre: ['google:sre-leads']\nrules:\n  - approvers: [sre]\n"
        "settings:\n  allowed_email_domains: [example.com]\n"
    )
    with pytest.raises(ConfigError, match="expected google:<group email>"):
        load_config(roles, approvers, {"gcp": GcpTarget})


def test_the_slack_directory_resolves_google_groups_through_slack_emails(
    google: FakeGoogle, clock: FakeClock, slack: FakeSlack
) -> None:
    from slack_sdk import WebClient

    _seed_groups(google)
    google.add_group("mixed@example.com", ["bob@example.com", "nobody@example.com"])
    client = WebClient(token="xoxb-test", base_url=slack.api_url)
    directory = SlackDirectory(client, clock, groups=_groups(google, clock))

    assert directory.resolve(["google:sre@example.com"]) == {BOB, CAROL}
    assert directory.resolve(["google:mixed@example.com"]) == {BOB}  # nobody is not in Slack
    assert directory.is_member(["google:sre@example.com"], CAROL)
    assert not directory.is_member(["google:sre@example.com"], MALLORY)

    google.remove_member("sre@example.com", "carol@example.com")
    assert directory.is_member(["google:sre@example.com"], CAROL)  # cached
    directory.refresh()
    assert not directory.is_member(["google:sre@example.com"], CAROL)


def test_a_google_group_without_a_resolver_is_a_clear_error(
    clock: FakeClock, slack: FakeSlack
) -> None:
    from slack_sdk import WebClient

    directory = SlackDirectory(WebClient(token="xoxb-test", base_url=slack.api_url), clock)
    with pytest.raises(DirectoryError, match="names a Google group, but Google groups are not"):
        directory.resolve(["google:sre@example.com"])


# ------------------------------------------------------------------ 5. credentials


class _Source:
    """Stands in for google.auth.default: records the scopes asked for."""

    def __init__(self, credentials: Any = None, error: Exception | None = None) -> None:
        self.credentials = credentials or AnonymousCredentials()
        self.error = error
        self.scopes: list[list[str]] = []

    def __call__(self, *, scopes: Any) -> tuple[Any, str | None]:
        self.scopes.append(list(scopes))
        if self.error is not None:
            raise self.error
        return self.credentials, "acme-admin"


def test_application_default_credentials_are_used_as_they_are(google: FakeGoogle) -> None:
    source = _Source()
    auth = GoogleAuth(source=source)

    assert auth.credentials([CLOUD_PLATFORM]) is source.credentials
    assert auth.credentials([CLOUD_PLATFORM]) is source.credentials
    assert source.scopes == [[CLOUD_PLATFORM]]  # built once


def test_impersonation_is_configured_in_one_place_and_builds_impersonated_credentials(
    google: FakeGoogle, tmp_path: Path
) -> None:
    key = google.service_account_key(tmp_path / "key.json")
    target = "jit-bot-actor@acme-admin.iam.gserviceaccount.com"
    auth = GoogleAuth.from_environ(
        {"GOOGLE_APPLICATION_CREDENTIALS": str(key), "JIT_GCP_IMPERSONATE_SERVICE_ACCOUNT": target}
    )

    built = auth.credentials([CLOUD_PLATFORM])
    delegated = auth.credentials([SCOPE], subject="admin@example.com")

    assert isinstance(built, impersonated_credentials.Credentials)
    assert built._target_principal == target
    assert built._target_scopes == [CLOUD_PLATFORM]
    assert isinstance(built._source_credentials, service_account.Credentials)
    assert isinstance(delegated, impersonated_credentials.Credentials)
    assert delegated._subject == "admin@example.com"


def test_impersonated_tokens_are_minted_by_iam_credentials_and_used_for_policy_calls(
    google: FakeGoogle, tmp_path: Path
) -> None:
    key = google.service_account_key(tmp_path / "key.json")
    target = "jit-bot-actor@acme-admin.iam.gserviceaccount.com"
    auth = GoogleAuth(
        impersonate=target,
        source=lambda *, scopes: (
            service_account.Credentials.from_service_account_file(str(key), scopes=scopes),
            None,
        ),
        iam_credentials_endpoint=google.url,
    )
    google.require_auth = True
    provider = GcpProvider(
        _clients(google, lambda: auth.credentials([CLOUD_PLATFORM])), now=lambda: NOW
    )

    provider.grant(ALICE, TARGET, CONTEXT)

    [minted] = google.impersonations
    assert minted["account"] == target
    assert minted["scope"] == [CLOUD_PLATFORM]
    used = {c.authorization for c in google.calls if c.operation.endswith("IamPolicy")}
    assert used == {f"Bearer {minted['token']}"}


def test_missing_application_default_credentials_are_a_clear_provider_error(
    google: FakeGoogle,
) -> None:
    auth = GoogleAuth(source=_Source(error=DefaultCredentialsError("Could not find ADC.")))
    provider = GcpProvider(_clients(google, lambda: auth.credentials([CLOUD_PLATFORM])))

    with pytest.raises(ProviderError, match="no Google credentials: Could not find ADC"):
        provider.grant(ALICE, TARGET, CONTEXT)


def test_delegation_needs_a_service_account_and_says_so() -> None:
    auth = GoogleAuth(source=_Source())  # user credentials cannot sign for someone else

    with pytest.raises(ProviderError, match="JIT_GCP_IMPERSONATE_SERVICE_ACCOUNT"):
        auth.credentials([SCOPE], subject="admin@example.com")


def test_building_the_provider_asks_for_no_credentials() -> None:
    """The composition root builds it on every start, GCP or not."""
    provider = GcpProvider.from_environ({})
    assert provider.validate(TARGET) == []


# ------------------------------------------------------------------ 6. check --live


def test_check_live_accepts_a_role_that_exists_and_is_grantable_everywhere(
    provider: GcpProvider, google: FakeGoogle
) -> None:
    target = GcpTarget(
        role="roles/logging.viewer",
        projects=["acme-prod"],
        folders=["123456789012"],
        organization="555555555555",
    )
    assert provider.validate(target, live=True) == []
    # queryGrantableRoles is paged; every page was read for each resource.
    assert len(google.calls_to("QueryGrantableRoles")) > 3
    assert len(google.calls_to("GetRole")) == 1


def test_check_live_refuses_a_role_not_grantable_on_the_resource(
    provider: GcpProvider,
) -> None:
    target = GcpTarget(role="roles/resourcemanager.organizationAdmin", projects=["acme-prod"])
    with pytest.raises(ProviderError) as raised:
        provider.validate(target, live=True)
    assert "roles/resourcemanager.organizationAdmin is not grantable on project acme-prod" in str(
        raised.value
    )


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("roles/loging.viewer", "role roles/loging.viewer does not exist"),
        ("projects/acme-prod/roles/jitDeleted", "is deleted"),
    ],
)
def test_check_live_refuses_unknown_and_deleted_roles(
    provider: GcpProvider, google: FakeGoogle, role: str, expected: str
) -> None:
    google.add_role("projects/acme-prod/roles/jitDeleted", deleted=True)
    with pytest.raises(ProviderError, match=expected):
        provider.validate(GcpTarget(role=role, projects=["acme-prod"]), live=True)


def test_check_live_accepts_a_custom_role_only_on_its_own_project(
    provider: GcpProvider, google: FakeGoogle
) -> None:
    google.add_role("projects/acme-prod/roles/jitDebugger")
    google.add_role("organizations/555555555555/roles/jitReader", stage="DEPRECATED")
    target = GcpTarget(role="projects/acme-prod/roles/jitDebugger", projects=["acme-prod"])
    assert provider.validate(target, live=True) == []
    org_role = GcpTarget(role="organizations/555555555555/roles/jitReader", projects=["acme-prod"])
    assert provider.validate(org_role, live=True) == [
        "role organizations/555555555555/roles/jitReader is DEPRECATED; grants of it may "
        "give nothing"
    ]


def test_check_live_refuses_a_resource_the_bot_cannot_change(
    provider: GcpProvider, google: FakeGoogle
) -> None:
    google.limit_permissions(PROJECT, ["resourcemanager.projects.getIamPolicy"])
    with pytest.raises(ProviderError) as raised:
        provider.validate(TARGET, live=True)
    assert "lacks resourcemanager.projects.setIamPolicy" in str(raised.value)
    assert "roles/resourcemanager.projectIamAdmin" in str(raised.value)


def test_check_live_refuses_a_project_that_does_not_exist(provider: GcpProvider) -> None:
    with pytest.raises(ProviderError, match="project acme-prd: queryGrantableRoles refused"):
        provider.validate(GcpTarget(role="roles/logging.viewer", projects=["acme-prd"]), live=True)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("status", "retryable", "expected"),
    [
        (403, False, "getIamPolicy refused (403 PERMISSION_DENIED): injected"),
        (404, False, "getIamPolicy: injected"),
        (400, False, "getIamPolicy failed (400 INVALID_ARGUMENT): injected"),
        (429, True, "getIamPolicy failed (429 RESOURCE_EXHAUSTED): injected"),
        (503, True, "getIamPolicy failed (503 UNAVAILABLE): injected"),
    ],
)
def test_google_error_answers_become_provider_errors_naming_the_resource(
    provider: GcpProvider, google: FakeGoogle, status: int, retryable: bool, expected: str
) -> None:
    google.fail_next("getIamPolicy", status=status, times=100, message="injected")

    with pytest.raises(ProviderError) as raised:
        provider.grant(ALICE, TARGET, CONTEXT)

    assert str(raised.value).startswith(f"project acme-prod: {expected}")
    assert raised.value.retryable is retryable
    assert len(google.calls_to("getIamPolicy")) == (12 if retryable else 1)


def test_a_resource_google_will_not_show_says_what_the_bot_needs(
    provider: GcpProvider, google: FakeGoogle
) -> None:
    google.deny(PROJECT)
    with pytest.raises(ProviderError) as raised:
        provider.grant(ALICE, TARGET, CONTEXT)
    assert "Permission denied on resource project acme-prod (or it may not exist)" in str(
        raised.value
    )
    assert "needs roles/resourcemanager.projectIamAdmin on it" in str(raised.value)


def test_a_passing_outage_is_ridden_out(
    provider: GcpProvider, google: FakeGoogle, sleeps: list[float]
) -> None:
    google.fail_next("setIamPolicy", status=503, times=2)
    provider.grant(ALICE, TARGET, CONTEXT)
    assert len(sleeps) == 2
    assert google.policy(PROJECT)["bindings"][-1] == OURS


def test_an_unreachable_google_is_a_retryable_error(sleeps: list[float]) -> None:
    provider = GcpProvider(
        GcpClients(AnonymousCredentials(), api_endpoint="http://127.0.0.1:9"),
        sleep=sleeps.append,
        attempts=2,
    )
    with pytest.raises(ProviderError) as raised:
        provider.grant(ALICE, TARGET, CONTEXT)
    assert raised.value.retryable
    assert "Google unreachable" in str(raised.value)
