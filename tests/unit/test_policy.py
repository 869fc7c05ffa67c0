"""The pure decisions of bot/policy.py as tables: which rule applies to whom, who may
request what, why a request is refused, and who may vote on a pending request.

A person is modelled as the set of config entries that name them (their user id, their
email, the @handles of their user groups), so membership needs no Slack."""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import JitConfig, load_config
from bot.directory import Person, Workspace
from bot.errors import (
    BadDuration,
    JitError,
    MissingReason,
    NoApprovalRule,
    NotEligible,
    UnknownEnvironment,
    UnknownRole,
    UnverifiedIdentity,
)
from bot.policy import (
    REFUSAL_TEXT,
    Membership,
    Refusal,
    Standing,
    VoteDecision,
    admits,
    check_identity,
    check_request,
    decide_vote,
    distinct_approvers,
    match_rule,
    may_request,
    requestable_roles,
    standing_of,
)
from providers.fake import FakeTarget

ROLES = """\
roles:
  prod-support:
    max_duration: 4h
    requesters: ["@engineering"]
    environments:
      prod: [{provider: fake, resource: prod-db}]
      staging: [{provider: fake, resource: staging-db}]
  db-admin:
    max_duration: 2h
    environments:
      prod: [{provider: fake, resource: db-prod}]
      dev: [{provider: fake, resource: db-dev}]
  break-glass:
    max_duration: 1h
    requesters: ["@oncall"]
    environments:
      prod: [{provider: fake, resource: everything}]
"""

APPROVERS = """\
groups:
  sre-leads: ["@sre-leads"]
  security: [USEC1]
rules:
  - environments: [dev]                 # 0
    roles: ["*"]
    auto_approve: true
  - roles: [db-admin]                   # 1: DBAs get a lighter path
    environments: [prod]
    requesters: ["@dba"]
    approvers: [sre-leads]
  - roles: [db-admin]                   # 2
    environments: [prod]
    approvers: [security]
    required_approvals: 2
  - roles: [prod-support]               # 3
    environments: [prod]
    approvers: [sre-leads]
    allow_self_approval: true
  - roles: ["*"]                        # 4
    environments: [staging]
    approvers: [security]
  - roles: [break-glass]                # 5: only incident commanders have a rule
    environments: [prod]
    requesters: ["@incident-commanders"]
    approvers: [security]
"""

# People, as the entries that name them.
ENGINEER = ("UENG", "@engineering")
DBA = ("UDBA", "@dba")
ENGINEER_DBA = ("UED", "@engineering", "@dba")
ONCALL = ("UONCALL", "@oncall")
COMMANDER = ("UIC", "@oncall", "@incident-commanders")
NOBODY = ("UNOBODY",)


def member(*names: str) -> Membership:
    def is_member(entries: Sequence[str]) -> bool:
        return any(entry in names for entry in entries)

    return is_member


def never_asked(entries: Sequence[str]) -> bool:
    raise AssertionError(f"membership of {entries} should not have been looked up")


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> JitConfig:
    folder = tmp_path_factory.mktemp("policy")
    (folder / "roles.yaml").write_text(textwrap.dedent(ROLES))
    (folder / "approvers.yaml").write_text(textwrap.dedent(APPROVERS))
    return load_config(
        Path(folder / "roles.yaml"), Path(folder / "approvers.yaml"), {"fake": FakeTarget}
    )


# --- which rule applies ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "environment", "person", "rule_index"),
    [
        pytest.param("db-admin", "dev", NOBODY, 0, id="wildcard_role_rule_for_dev_comes_first"),
        pytest.param("db-admin", "prod", DBA, 1, id="requester_filtered_rule_wins_for_its_people"),
        pytest.param(
            "db-admin", "prod", ENGINEER, 2, id="requester_filtered_rule_is_skipped_for_others"
        ),
        pytest.param(
            "db-admin", "prod", ENGINEER_DBA, 1, id="one_matching_group_is_enough_for_a_filter"
        ),
        pytest.param("prod-support", "prod", ENGINEER, 3, id="specific_rule_before_catch_all"),
        pytest.param("prod-support", "staging", ENGINEER, 4, id="later_wildcard_rule"),
        pytest.param("prod-support", "dev", ENGINEER, 0, id="first_match_wins_over_later_rules"),
        pytest.param("break-glass", "prod", COMMANDER, 5, id="filtered_rule_as_the_only_match"),
        pytest.param("break-glass", "prod", ONCALL, None, id="no_rule_when_the_filter_excludes"),
        pytest.param("db-admin", "qa", DBA, None, id="no_rule_for_an_unruled_environment"),
    ],
)
def test_match_rule_returns_the_first_rule_that_applies_to_the_requester(
    config: JitConfig,
    role: str,
    environment: str,
    person: tuple[str, ...],
    rule_index: int | None,
) -> None:
    matched = match_rule(config, role, environment, member(*person))

    if rule_index is None:
        assert matched is None
    else:
        assert matched == (rule_index, config.rules[rule_index])


def test_an_unfiltered_rule_never_asks_about_membership(config: JitConfig) -> None:
    assert match_rule(config, "prod-support", "prod", never_asked) == (3, config.rules[3])


# --- who may request what -------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "person", "allowed"),
    [
        pytest.param("prod-support", ENGINEER, True, id="member_of_a_requester_group"),
        pytest.param("prod-support", DBA, False, id="not_a_member_of_any_requester_entry"),
        pytest.param(
            "db-admin", NOBODY, True, id="role_without_requesters_is_open_to_every_full_member"
        ),
        pytest.param("break-glass", ONCALL, True, id="another_requester_group"),
        pytest.param("break-glass", ENGINEER, False, id="engineers_are_not_on_call"),
    ],
)
def test_may_request(config: JitConfig, role: str, person: tuple[str, ...], allowed: bool) -> None:
    assert may_request(config, role, member(*person), standing=Standing.MEMBER) is allowed


def test_a_role_without_requesters_never_asks_about_membership(config: JitConfig) -> None:
    assert may_request(config, "db-admin", never_asked, standing=Standing.MEMBER) is True


@pytest.mark.parametrize(
    ("person", "roles"),
    [
        pytest.param(NOBODY, ["db-admin"], id="every_full_member_gets_the_open_roles"),
        pytest.param(ENGINEER, ["prod-support", "db-admin"], id="in_config_order"),
        pytest.param(COMMANDER, ["db-admin", "break-glass"], id="on_call"),
    ],
)
def test_requestable_roles(config: JitConfig, person: tuple[str, ...], roles: list[str]) -> None:
    assert requestable_roles(config, member(*person), standing=Standing.MEMBER) == roles


# --- checking a request ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("person", "role", "environment", "duration", "reason", "error", "field", "message"),
    [
        pytest.param(
            NOBODY,
            "prod-suport",
            "prod",
            "1h",
            "INC-1",
            UnknownRole,
            "role",
            "There is no role `prod-suport`. Roles you may request: db-admin.",
            id="unknown_role_lists_only_the_roles_this_person_may_request",
        ),
        pytest.param(
            ENGINEER,
            "admin",
            "prod",
            "1h",
            "INC-1",
            UnknownRole,
            "role",
            "There is no role `admin`. Roles you may request: prod-support, db-admin.",
            id="unknown_role_for_an_engineer",
        ),
        pytest.param(
            NOBODY,
            "prod-support",
            "prod",
            "1h",
            "INC-1",
            NotEligible,
            "role",
            "You are not among the requesters of `prod-support`. Roles you may request: db-admin.",
            id="not_eligible_names_what_may_be_requested_instead",
        ),
        pytest.param(
            ENGINEER,
            "prod-support",
            "dev",
            "1h",
            "INC-1",
            UnknownEnvironment,
            "environment",
            "`prod-support` has no environment `dev`. Choose one of: prod, staging.",
            id="unknown_environment_lists_the_roles_environments",
        ),
        pytest.param(
            ENGINEER,
            "prod-support",
            "prod",
            "5h",
            "INC-1",
            BadDuration,
            "duration",
            "5h is longer than prod-support allows (4h); ask for 4h or less.",
            id="duration_over_the_maximum_names_the_maximum",
        ),
        pytest.param(
            ENGINEER,
            "prod-support",
            "prod",
            "2 hours",
            "INC-1",
            BadDuration,
            "duration",
            "'2 hours' is not a duration; use a number followed by d, h, m or s, for example "
            "30m, 2h or 1h30m. prod-support allows up to 4h.",
            id="malformed_duration_says_the_format_and_the_maximum",
        ),
        pytest.param(
            ENGINEER,
            "prod-support",
            "prod",
            "0m",
            "INC-1",
            BadDuration,
            "duration",
            "'0m' is zero; a duration must be longer than that. prod-support allows up to 4h.",
            id="zero_duration",
        ),
        pytest.param(
            ENGINEER,
            "prod-support",
            "prod",
            "1h",
            "   ",
            MissingReason,
            "reason",
            "Say why you need access (a ticket or incident id helps the approvers).",
            id="blank_reason",
        ),
        pytest.param(
            ONCALL,
            "break-glass",
            "prod",
            "30m",
            "INC-1",
            NoApprovalRule,
            None,
            "covers `break-glass` in `prod` for you; ask the bot's administrators to add one.",
            id="no_rule_for_this_requester",
        ),
    ],
)
def test_check_request_refuses_with_a_typed_error_that_says_how_to_fix_it(
    config: JitConfig,
    person: tuple[str, ...],
    role: str,
    environment: str,
    duration: str,
    reason: str,
    error: type[JitError],
    field: str | None,
    message: str,
) -> None:
    with pytest.raises(error) as caught:
        check_request(
            config, role, environment, duration, reason, member(*person), standing=Standing.MEMBER
        )

    assert message in str(caught.value)
    assert caught.value.field == field


def test_no_rule_error_names_the_approvers_file(config: JitConfig) -> None:
    with pytest.raises(NoApprovalRule) as caught:
        check_request(
            config, "break-glass", "prod", "30m", "INC-1", member(*ONCALL), standing=Standing.MEMBER
        )

    assert str(caught.value).startswith(f"No rule in {config.approvers_file} covers")


@pytest.mark.parametrize(
    ("person", "role", "environment", "duration", "rule_index", "expected"),
    [
        pytest.param(
            ENGINEER, "prod-support", "prod", "4h", 3, timedelta(hours=4), id="exactly_the_max"
        ),
        pytest.param(
            DBA, "db-admin", "prod", "1h30m", 1, timedelta(minutes=90), id="filtered_rule_picked"
        ),
        pytest.param(NOBODY, "db-admin", "dev", "45m", 0, timedelta(minutes=45), id="auto_rule"),
        pytest.param(
            COMMANDER, "break-glass", "prod", "15m", 5, timedelta(minutes=15), id="break_glass"
        ),
    ],
)
def test_check_request_accepts_and_returns_the_matched_rule(
    config: JitConfig,
    person: tuple[str, ...],
    role: str,
    environment: str,
    duration: str,
    rule_index: int,
    expected: timedelta,
) -> None:
    checked = check_request(
        config,
        role,
        environment,
        duration,
        "  INC-123 db down  ",
        member(*person),
        standing=Standing.MEMBER,
    )

    assert (checked.role, checked.environment, checked.duration) == (role, environment, expected)
    assert checked.reason == "INC-123 db down"
    assert (checked.rule_index, checked.rule) == (rule_index, config.rules[rule_index])


# --- who may vote ---------------------------------------------------------------------

APPROVERS_NOW = frozenset({"UBOB", "UCAROL", "UALICE"})


@pytest.mark.parametrize(
    ("status", "voter", "allow_self", "voted", "decision"),
    [
        pytest.param(
            "pending", "UBOB", False, (), VoteDecision(True), id="an_approver_on_a_pending_request"
        ),
        pytest.param(
            "pending",
            "UCAROL",
            False,
            ("UBOB",),
            VoteDecision(True),
            id="a_second_approver_after_another_voted",
        ),
        pytest.param(
            "approved",
            "UBOB",
            False,
            (),
            VoteDecision(False, Refusal.NOT_PENDING),
            id="not_pending_once_approved",
        ),
        pytest.param(
            "denied",
            "UALICE",
            True,
            ("UALICE",),
            VoteDecision(False, Refusal.NOT_PENDING),
            id="not_pending_is_checked_before_anything_else",
        ),
        pytest.param(
            "pending",
            "UALICE",
            False,
            (),
            VoteDecision(False, Refusal.SELF_APPROVAL),
            id="self_approval_refused_even_for_an_approver",
        ),
        pytest.param(
            "pending",
            "UALICE",
            True,
            (),
            VoteDecision(True),
            id="self_approval_allowed_when_the_rule_allows_it",
        ),
        pytest.param(
            "pending",
            "UMALLORY",
            False,
            (),
            VoteDecision(False, Refusal.NOT_AN_APPROVER),
            id="not_an_approver",
        ),
        pytest.param(
            "pending",
            "UBOB",
            False,
            ("UBOB",),
            VoteDecision(False, Refusal.ALREADY_VOTED),
            id="already_voted",
        ),
    ],
)
def test_decide_vote(
    status: str, voter: str, allow_self: bool, voted: tuple[str, ...], decision: VoteDecision
) -> None:
    assert (
        decide_vote(
            status=status,
            voter=voter,
            requester="UALICE",
            approvers=APPROVERS_NOW,
            allow_self_approval=allow_self,
            voted=voted,
        )
        == decision
    )


def test_allowed_self_approval_still_requires_being_an_approver() -> None:
    decision = decide_vote(
        status="pending",
        voter="UMALLORY",
        requester="UMALLORY",
        approvers=APPROVERS_NOW,
        allow_self_approval=True,
        voted=(),
    )

    assert decision == VoteDecision(False, Refusal.NOT_AN_APPROVER)


def test_every_refusal_has_a_message_that_says_nothing_changed() -> None:
    assert set(REFUSAL_TEXT) == set(Refusal)
    assert all(text.endswith("nothing changed.") for text in REFUSAL_TEXT.values())


ALICE_PRINCIPALS = frozenset({"alice@example.com"})
BOB_PRINCIPALS = frozenset({"bob@example.com"})


@pytest.mark.parametrize(
    ("voter", "voter_principals", "voted", "voted_principals", "allow_self", "decision"),
    [
        pytest.param(
            "UBOB", BOB_PRINCIPALS, (), frozenset(), False, VoteDecision(True), id="other_person"
        ),
        pytest.param(
            "UCAROL",
            ALICE_PRINCIPALS,
            (),
            frozenset(),
            False,
            VoteDecision(False, Refusal.REQUESTERS_PRINCIPAL),
            id="second_account_with_the_requesters_email",
        ),
        pytest.param(
            "UCAROL",
            frozenset({"alice@example.org", "alice@example.com"}),
            (),
            frozenset(),
            False,
            VoteDecision(False, Refusal.REQUESTERS_PRINCIPAL),
            id="account_a_domain_map_folds_onto_the_requester",
        ),
        pytest.param(
            "UCAROL",
            ALICE_PRINCIPALS,
            (),
            frozenset(),
            True,
            VoteDecision(True),
            id="same_principal_allowed_where_self_approval_is",
        ),
        pytest.param(
            "UCAROL",
            BOB_PRINCIPALS,
            ("UBOB",),
            BOB_PRINCIPALS,
            False,
            VoteDecision(False, Refusal.SAME_PRINCIPAL_VOTED),
            id="second_account_of_a_voter_counts_once",
        ),
        pytest.param(
            "UCAROL",
            frozenset({"carol@example.com"}),
            ("UBOB",),
            BOB_PRINCIPALS,
            False,
            VoteDecision(True),
            id="distinct_second_approver",
        ),
        pytest.param(
            "UMALLORY",
            ALICE_PRINCIPALS,
            (),
            frozenset(),
            False,
            VoteDecision(False, Refusal.NOT_AN_APPROVER),
            id="not_an_approver_whatever_the_email",
        ),
    ],
)
def test_decide_vote_compares_principals(
    voter: str,
    voter_principals: frozenset[str],
    voted: tuple[str, ...],
    voted_principals: frozenset[str],
    allow_self: bool,
    decision: VoteDecision,
) -> None:
    assert (
        decide_vote(
            status="pending",
            voter=voter,
            requester="UALICE",
            approvers=APPROVERS_NOW,
            allow_self_approval=allow_self,
            voted=voted,
            voter_principals=voter_principals,
            requester_principals=ALICE_PRINCIPALS,
            voted_principals=voted_principals,
        )
        == decision
    )


@pytest.mark.parametrize(
    ("email", "confirmed", "domains", "refused"),
    [
        pytest.param("alice@example.com", True, ["example.com"], None, id="allowed"),
        pytest.param("alice@example.com", True, [], None, id="no_domains_configured"),
        pytest.param("alice@example.com", False, ["example.com"], "unconfirmed", id="unconfirmed"),
        pytest.param(
            "alice@evil.test", True, ["example.com"], "outside the email domains", id="outside"
        ),
        pytest.param(
            "alice@eu.example.com",
            True,
            ["example.com"],
            "outside the email domains",
            id="subdomain_is_not_its_parent",
        ),
        pytest.param(
            "alice@example.com.evil.test",
            True,
            ["example.com"],
            "outside the email domains",
            id="lookalike_suffix",
        ),
    ],
)
def test_check_identity(
    email: str, confirmed: bool, domains: list[str], refused: str | None
) -> None:
    if refused is None:
        check_identity(email, confirmed, domains, acting="request access")
        return
    with pytest.raises(UnverifiedIdentity, match=refused):
        check_identity(email, confirmed, domains, acting="request access")


# --- whose account is served ------------------------------------------------------------

HOME = Workspace(team_id="T1")
GRID_HOME = Workspace(team_id="T1", enterprise_id="E1")
ORG_WIDE = Workspace(team_id="E1", enterprise_id="E1", enterprise_install=True)


def account(**facts: object) -> Person:
    return Person(**{"user_id": "U1", "email": "u1@example.com", "name": "u1", **facts})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("person", "workspace", "expected"),
    [
        pytest.param(account(team_id="T1"), HOME, Standing.MEMBER, id="full_member"),
        pytest.param(
            account(team_id="T1", is_restricted=True), HOME, Standing.GUEST, id="multi_channel"
        ),
        pytest.param(
            account(team_id="T1", is_ultra_restricted=True),
            HOME,
            Standing.GUEST,
            id="single_channel_guest",
        ),
        pytest.param(account(team_id="T1", is_bot=True), HOME, Standing.BOT, id="bot"),
        pytest.param(account(team_id="T2"), HOME, Standing.FOREIGN, id="another_workspace"),
        pytest.param(
            account(team_id="T1", is_stranger=True), HOME, Standing.FOREIGN, id="stranger"
        ),
        pytest.param(account(), HOME, Standing.FOREIGN, id="no_workspace_known_is_foreign"),
        pytest.param(
            account(team_id="T9", enterprise_id="E1", teams=("T9", "T1")),
            GRID_HOME,
            Standing.MEMBER,
            id="grid_member_whose_home_is_another_workspace_of_the_org",
        ),
        pytest.param(
            account(team_id="T9", enterprise_id="E1", teams=("T9",)),
            GRID_HOME,
            Standing.FOREIGN,
            id="grid_member_not_in_this_workspace",
        ),
        pytest.param(
            account(team_id="T9", enterprise_id="E1"), ORG_WIDE, Standing.MEMBER, id="org_wide"
        ),
        pytest.param(
            account(team_id="T9", enterprise_id="E2"),
            ORG_WIDE,
            Standing.FOREIGN,
            id="org_wide_other_org",
        ),
    ],
)
def test_standing_of(person: Person, workspace: Workspace, expected: Standing) -> None:
    assert standing_of(person, workspace) is expected


def test_guests_are_admitted_only_where_the_role_allows_them(config: JitConfig) -> None:
    guests_welcome = config.roles["db-admin"].model_copy(update={"allow_guests": True})
    config = dataclasses.replace(config, roles={**config.roles, "db-admin": guests_welcome})
    assert admits(config, "prod-support", Standing.MEMBER)
    assert not admits(config, "prod-support", Standing.GUEST)
    assert admits(config, "db-admin", Standing.GUEST)
    for never in (Standing.BOT, Standing.FOREIGN):
        assert not admits(config, "db-admin", never)
    assert not admits(config, "no-such-role", Standing.GUEST)


ALICE_ALT = frozenset({"alice@example.com"})
BOB_MAIL = frozenset({"bob@example.com"})
CAROL_MAIL = frozenset({"carol@example.com"})


@pytest.mark.parametrize(
    ("approvers", "allow_self", "expected"),
    [
        pytest.param({"UBOB": BOB_MAIL, "UCAROL": CAROL_MAIL}, False, 2, id="two_people"),
        pytest.param({"UBOB": BOB_MAIL, "UBOB2": BOB_MAIL}, False, 1, id="two_accounts_one_person"),
        pytest.param({"UALICE": ALICE_ALT, "UBOB": BOB_MAIL}, False, 1, id="requester_by_id"),
        pytest.param(
            {"UALICE2": ALICE_ALT, "UBOB": BOB_MAIL}, False, 1, id="requester_by_principal"
        ),
        pytest.param(
            {"UALICE2": ALICE_ALT, "UBOB": BOB_MAIL}, True, 2, id="requester_where_self_allowed"
        ),
        pytest.param(
            {
                "UBOB": BOB_MAIL,
                "UBOB_ORG": frozenset({"bob@example.org", "bob@example.com"}),
                "UBOB_MAP": frozenset({"bob@example.org"}),
            },
            False,
            1,
            id="accounts_joined_through_a_domain_map",
        ),
        pytest.param({}, False, 0, id="nobody"),
    ],
)
def test_distinct_approvers_counts_people_not_accounts(
    approvers: dict[str, frozenset[str]], allow_self: bool, expected: int
) -> None:
    assert (
        distinct_approvers(
            approvers,
            requester="UALICE",
            requester_principals=ALICE_ALT,
            allow_self_approval=allow_self,
        )
        == expected
    )
