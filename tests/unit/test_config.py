"""roles.yaml and approvers.yaml: what loads, and how every kind of mistake is reported.

Each broken case changes one thing in a valid pair of files and expects exactly the
problem it introduced, reported as ``file:line: path.inside.file: what is wrong; expected
…``. Line numbers are found by searching the broken file for the offending text, so the
tables stay readable when the base files grow."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from bot.app import default_providers
from bot.config import (
    ConfigError,
    ConfigIssue,
    JitConfig,
    Role,
    format_loc,
    line_in,
    load_config,
)
from bot.durations import InvalidDuration, format_duration, parse_duration
from providers.base import TargetSpec
from providers.fake import FakeTarget
from providers.kubernetes import KubernetesTarget
from providers.webhook import WebhookTarget
from tests.kit.configs import roles_yaml, target

TARGET_MODELS: dict[str, type[TargetSpec]] = {"fake": FakeTarget, "webhook": WebhookTarget}

# The workspace's two roles with fake targets, as a file starts: no blank first line.
ROLES = roles_yaml(
    prod=target("fake", resource="prod-db"),
    staging=target("fake", resource="staging-db"),
    db_prod=target("fake", resource="db-prod"),
    db_dev=target("fake", resource="db-dev"),
).lstrip("\n")

APPROVERS = textwrap.dedent(
    """\
    groups:
      sre-leads: ["@SRE-Leads", Lead@Example.com]
      security: [USEC1]
    rules:
      - environments: [dev]
        roles: ["*"]
        auto_approve: true
      - roles: [prod-support]
        environments: [prod]
        approvers: [sre-leads]
      - roles: [db-admin]
        environments: [prod]
        approvers: [sre-leads, security]
        required_approvals: 2
      - roles: ["*"]
        environments: ["*"]
        approvers: [security]
    settings:
      pending_ttl: 1h
    """
)

CATCH_ALL_RULE = """\
  - roles: ["*"]
    environments: ["*"]
    approvers: [security]
"""


def write(tmp_path: Path, roles: str = ROLES, approvers: str = APPROVERS) -> tuple[Path, Path]:
    roles_path, approvers_path = tmp_path / "roles.yaml", tmp_path / "approvers.yaml"
    roles_path.write_text(roles, encoding="utf-8")
    approvers_path.write_text(approvers, encoding="utf-8")
    return roles_path, approvers_path


def load(tmp_path: Path, roles: str = ROLES, approvers: str = APPROVERS) -> JitConfig:
    return load_config(*write(tmp_path, roles, approvers), TARGET_MODELS)


def problems(tmp_path: Path, roles: str = ROLES, approvers: str = APPROVERS) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, roles, approvers)
    return caught.value.issues


def replaced(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the base file must hold {old!r} exactly once"
    return text.replace(old, new)


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the only occurrence of ``needle`` in ``text`` (a leading newline
    in ``needle`` only anchors it to the start of its line)."""
    assert text.count(needle) == 1, f"{needle!r} must occur exactly once in the broken file"
    start = text.index(needle) + len(needle) - len(needle.lstrip("\n"))
    return text[:start].count("\n") + 1


# --- one mistake, one precise message -------------------------------------------------


@dataclass(frozen=True)
class Broken:
    """Replace ``old`` by ``new`` in ``edit``; expect one issue in ``reported_in`` at
    ``path``, on the line holding ``at``, whose message contains ``says``."""

    edit: str
    old: str
    new: str
    path: str
    at: str
    says: str
    reported_in: str = ""


BROKEN = [
    pytest.param(
        Broken(
            "roles.yaml",
            "    max_duration: 4h\n",
            "    max_duration: 4h\n    max_durration: 2h\n",
            path="roles.prod-support.max_durration",
            at="max_durration",
            says="unknown key 'max_durration' (did you mean 'max_duration'?); expected one of: "
            "description, max_duration, default_duration, requesters, allow_guests, environments",
        ),
        id="unknown_key_in_a_role_names_the_allowed_keys_and_the_likely_one",
    ),
    pytest.param(
        Broken(
            "roles.yaml",
            "roles:\n",
            "version: 2\nroles:\n",
            path="version",
            at="version: 2",
            says="unknown key 'version'; expected one of: roles",
        ),
        id="unknown_top_level_key_in_roles_file",
    ),
    pytest.param(
        Broken(
            "roles.yaml",
            "resource: prod-db\n",
            "resource: prod-db\n          region: eu-west-1\n",
            path="roles.prod-support.environments.prod[0].region",
            at="region: eu-west-1",
            says="unknown key 'region'; expected one of: provider, resource",
        ),
        id="unknown_key_in_a_target_names_the_providers_fields",
    ),
    pytest.param(
        Broken(
            "roles.yaml",
            "- provider: fake\n          resource: staging-db",
            "- provider: awz\n          resource: staging-db",
            path="roles.prod-support.environments.staging[0].provider",
            at="provider: awz",
            says="unknown provider 'awz'; expected one of: fake, webhook",
        ),
        id="unknown_provider_lists_the_known_providers",
    ),
    pytest.param(
        Broken(
            "roles.yaml",
            "- provider: fake\n          resource: staging-db",
            "- resource: staging-db",
            path="roles.prod-support.environments.staging[0].provider",
            at="- resource: staging-db",
            says="required key 'provider' is missing; expected one of: fake, webhook",
        ),
        id="target_without_provider",
    ),
    pytest.param(
        Broken(
            "roles.yaml",
            "- provider: fake\n          resource: staging-db",
            "- staging-db",
            path="roles.prod-support.environments.staging[0]",
            at="- staging-db",
            says="expected a mapping with a 'provider' key, got 'staging-db'",
        ),
        id="target_that_is_not_a_mapping",
    ),
    pytest.param(
        Broken(
            "roles.yaml",
            "default_duration: 1h",
            "default_duration: 5h",
            path="roles.prod-support.default_duration",
            at="default_duration: 5h",
            says="5h is longer than max_duration 4h; expected at most 4h",
        ),
        id="default_duration_over_max_duration",
    ),
    pytest.param(
        Broken(
            "roles.yaml",
            "max_duration: 4h",
            "max_duration: 4 hours",
            path="roles.prod-support.max_duration",
            at="max_duration: 4 hours",
            says="'4 hours' is not a duration; expected a duration such as 30m, 2h or 1h30m",
        ),
        id="malformed_duration",
    ),
    pytest.param(
        Broken(
            "roles.yaml",
            "max_duration: 4h",
            "max_duration: 90",
            path="roles.prod-support.max_duration",
            at="max_duration: 90",
            says="90 has no unit; expected a duration such as 30m, 2h or 1h30m",
        ),
        id="duration_without_a_unit",
    ),
    pytest.param(
        Broken(
            "roles.yaml",
            "max_duration: 2h",
            "max_duration: 0m",
            path="roles.db-admin.max_duration",
            at="max_duration: 0m",
            says="'0m' is zero; expected a duration such as 30m, 2h or 1h30m",
        ),
        id="zero_duration",
    ),
    pytest.param(
        Broken(
            "roles.yaml",
            "    max_duration: 2h\n",
            "",
            path="roles.db-admin.max_duration",
            at="  db-admin:",
            says="required key 'max_duration' is missing; expected it in roles.db-admin",
        ),
        id="missing_max_duration_points_at_the_role",
    ),
    pytest.param(
        Broken(
            "roles.yaml",
            'requesters: ["@engineering"]',
            "requesters: [engineering]",
            path="roles.prod-support.requesters[0]",
            at="requesters: [engineering]",
            says="'engineering' is not a valid entry (did you mean '@engineering'? user-group "
            "handles start with @); expected a Slack user id (U0123ABCD), an email address "
            "or a user-group handle (@sre-leads)",
        ),
        id="requester_that_is_not_a_user_id_email_or_handle",
    ),
    pytest.param(
        Broken(
            "roles.yaml",
            'requesters: ["@engineering"]',
            "requesters: []",
            path="roles.prod-support.requesters",
            at="requesters: []",
            says="is empty; expected at least 1 entry "
            "(leave requesters out to mean every full member)",
        ),
        id="empty_requester_list_would_mean_nobody",
    ),
    pytest.param(
        Broken(
            "approvers.yaml",
            "    required_approvals: 2\n",
            "    required_approvals: 2\n    requesters: []\n",
            path="rules[2].requesters",
            at="requesters: []",
            says="is empty; expected at least 1 entry",
        ),
        id="rule_with_an_empty_requester_list_would_never_apply",
    ),
    pytest.param(
        Broken(
            "roles.yaml",
            "staging:\n        - provider: fake\n          resource: staging-db",
            "staging: []",
            path="roles.prod-support.environments.staging",
            at="staging: []",
            says="is empty; expected at least 1 target (a mapping with a 'provider' key)",
        ),
        id="environment_with_an_empty_target_list",
    ),
    pytest.param(
        Broken(
            "roles.yaml",
            "staging:\n        - provider: fake\n          resource: staging-db",
            "staging:",
            path="roles.prod-support.environments.staging",
            at="staging:",
            says="expected a list such as [a, b], got nothing (an empty value)",
        ),
        id="environment_with_no_value",
    ),
    pytest.param(
        Broken(
            "roles.yaml",
            "environments:\n      prod:\n        - provider: fake\n          resource: db-prod\n"
            "      dev:\n        - provider: fake\n          resource: db-dev\n",
            "environments: {}\n",
            path="roles.db-admin.environments",
            at="environments: {}",
            says="is empty; expected at least 1 environment",
        ),
        id="role_without_environments",
    ),
    pytest.param(
        Broken(
            "roles.yaml",
            "description: Fix data by hand",
            "description: [Fix, data]",
            path="roles.db-admin.description",
            at="description: [Fix, data]",
            says="expected text, got a list",
        ),
        id="wrong_type_says_what_it_got",
    ),
    pytest.param(
        Broken(
            "approvers.yaml",
            "    required_approvals: 2\n",
            "    required_approval: 2\n",
            path="rules[2].required_approval",
            at="required_approval: 2",
            says="unknown key 'required_approval' (did you mean 'required_approvals'?); "
            "expected one of: roles, environments, requesters, approvers, required_approvals, "
            "auto_approve, allow_self_approval",
        ),
        id="unknown_key_in_a_rule",
    ),
    pytest.param(
        Broken(
            "approvers.yaml",
            "  pending_ttl: 1h\n",
            "  pending_ttl: 1h\n  self_approval: true\n",
            path="settings.self_approval",
            at="self_approval: true",
            says="unknown key 'self_approval' (did you mean 'allow_self_approval'?); "
            "expected one of: pending_ttl, allow_self_approval, sweep_interval",
        ),
        id="unknown_key_in_settings",
    ),
    pytest.param(
        Broken(
            "approvers.yaml",
            "approvers: [sre-leads]\n",
            "approvers: [sre-lead]\n",
            path="rules[1].approvers[0]",
            at="approvers: [sre-lead]",
            says="unknown group 'sre-lead' (did you mean 'sre-leads'?); "
            "expected one of: security, sre-leads",
        ),
        id="rule_naming_an_unknown_group",
    ),
    pytest.param(
        Broken(
            "approvers.yaml",
            "roles: [prod-support]",
            "roles: [prod-suport]",
            path="rules[1].roles[0]",
            at="roles: [prod-suport]",
            says="unknown role 'prod-suport' (did you mean 'prod-support'?); "
            "expected '*' or one of: prod-support, db-admin",
        ),
        id="rule_naming_an_unknown_role",
    ),
    pytest.param(
        Broken(
            "approvers.yaml",
            "environments: [prod]\n    approvers: [sre-leads]\n",
            "environments: [prdo]\n    approvers: [sre-leads]\n",
            path="rules[1].environments[0]",
            at="environments: [prdo]",
            says="unknown environment 'prdo' (did you mean 'prod'?); "
            "expected '*' or one of: dev, prod, staging",
        ),
        id="rule_naming_an_unknown_environment",
    ),
    pytest.param(
        Broken(
            "approvers.yaml",
            "    auto_approve: true\n",
            "    auto_approve: true\n    approvers: [security]\n",
            path="rules[0]",
            at="- environments: [dev]",
            says="has both auto_approve: true and approvers; expected one or the other",
        ),
        id="auto_approve_rule_with_approvers",
    ),
    pytest.param(
        Broken(
            "approvers.yaml",
            "    approvers: [sre-leads]\n",
            "",
            path="rules[1]",
            at="- roles: [prod-support]",
            says="has neither approvers nor auto_approve; expected approvers (group names "
            "from 'groups') or auto_approve: true",
        ),
        id="rule_with_neither_approvers_nor_auto_approve",
    ),
    pytest.param(
        Broken(
            "approvers.yaml",
            CATCH_ALL_RULE,
            "",
            path="roles.prod-support.environments.staging",
            at="staging:",
            says="can approve role 'prod-support' in 'staging'; expected a rule whose roles "
            "and environments match it (or '*')",
            reported_in="roles.yaml",
        ),
        id="role_that_no_rule_can_approve_is_reported_where_the_role_is",
    ),
    pytest.param(
        Broken(
            "approvers.yaml",
            "Lead@Example.com]",
            "Lead at Example]",
            path="groups.sre-leads[1]",
            at="Lead at Example",
            says="'Lead at Example' is not a valid entry; expected a Slack user id",
        ),
        id="group_member_that_is_not_a_user_id_email_or_handle",
    ),
    pytest.param(
        Broken(
            "approvers.yaml",
            "security: [USEC1]",
            "security: []",
            path="groups.security",
            at="security: []",
            says="is empty; expected at least 1 member",
        ),
        id="empty_group_could_never_approve",
    ),
    pytest.param(
        Broken(
            "approvers.yaml",
            "required_approvals: 2",
            "required_approvals: 0",
            path="rules[2].required_approvals",
            at="required_approvals: 0",
            says="0 is too small; expected at least 1",
        ),
        id="zero_required_approvals",
    ),
    pytest.param(
        Broken(
            "approvers.yaml",
            "auto_approve: true",
            "auto_approve: maybe",
            path="rules[0].auto_approve",
            at="auto_approve: maybe",
            says="expected true or false, got 'maybe'",
        ),
        id="auto_approve_that_is_not_a_boolean",
    ),
    pytest.param(
        Broken(
            "approvers.yaml",
            "roles: [db-admin]",
            "roles: db-admin",
            path="rules[2].roles",
            at="roles: db-admin",
            says="expected a list such as [a, b], got 'db-admin'",
        ),
        id="rule_roles_given_as_a_single_string",
    ),
    pytest.param(
        Broken(
            "approvers.yaml",
            "  pending_ttl: 1h\n",
            "  pending_ttl: 1h\n  sweep_interval: 5m\n",
            path="settings.sweep_interval",
            at="sweep_interval: 5m",
            says="5m is too long; expected at most 30s",
        ),
        id="sweep_interval_too_long_for_the_revocation_backstop",
    ),
    pytest.param(
        Broken(
            "approvers.yaml",
            "  pending_ttl: 1h\n",
            "  pending_ttl: 1h\n  keep_sent_messages: 2h\n",
            path="settings.keep_sent_messages",
            at="keep_sent_messages: 2h",
            says="2h is too short; expected at least 1d",
        ),
        id="sent_messages_kept_less_than_a_day",
    ),
    pytest.param(
        Broken(
            "approvers.yaml",
            "  pending_ttl: 1h\n",
            "  pending_ttl: soon\n",
            path="settings.pending_ttl",
            at="pending_ttl: soon",
            says="'soon' is not a duration; expected a duration such as 30m",
        ),
        id="malformed_duration_in_settings",
    ),
    pytest.param(
        Broken(
            "roles.yaml",
            "    default_duration: 1h\n",
            "    default_duration: 1h\n    default_duration: 2h\n",
            path="roles.prod-support.default_duration",
            at="default_duration: 2h",
            says="duplicate key 'default_duration' (first on line 5); expected each key once",
        ),
        id="duplicate_key_is_reported_on_its_second_line",
    ),
    pytest.param(
        Broken(
            "approvers.yaml",
            "  security: [USEC1]\n",
            "  security: [USEC1]\n  sre-leads: [U0SECOND]\n",
            path="groups.sre-leads",
            at="sre-leads: [U0SECOND]",
            says="duplicate key 'sre-leads' (first on line 2); expected each key once",
        ),
        id="group_defined_twice",
    ),
]


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_file_is_reported_with_file_line_path_and_expectation(
    tmp_path: Path, case: Broken
) -> None:
    roles, approvers = ROLES, APPROVERS
    if case.edit == "roles.yaml":
        roles = replaced(roles, case.old, case.new)
    else:
        approvers = replaced(approvers, case.old, case.new)
    reported_in = case.reported_in or case.edit
    text = roles if reported_in == "roles.yaml" else approvers

    issues = problems(tmp_path, roles, approvers)

    assert len(issues) == 1, "\n".join(map(str, issues))
    issue = issues[0]
    expected_line = line_of(text, case.at)
    assert Path(issue.file) == tmp_path / reported_in
    assert format_loc(issue.loc) == case.path
    assert issue.line == expected_line
    assert case.says in issue.message
    assert "expected" in issue.message
    assert str(issue) == f"{tmp_path / reported_in}:{expected_line}: {case.path}: {issue.message}"


def test_a_role_name_that_is_not_lower_case_is_reported_at_the_name(tmp_path: Path) -> None:
    roles = replaced(ROLES, "  db-admin:", "  DB_Admin:")

    issues = problems(tmp_path, roles)

    assert len(issues) == 1, "\n".join(map(str, issues))
    assert format_loc(issues[0].loc) == "roles.DB_Admin"
    assert issues[0].line == line_of(roles, "DB_Admin:")
    assert "expected lower-case letters, digits, '-' and '_'" in issues[0].message


def test_a_role_name_too_long_for_slacks_menus_is_reported_at_the_name(tmp_path: Path) -> None:
    long = "db-admin-" + "x" * 56  # 65 characters; a menu option shows 75 with a description
    roles = replaced(ROLES, "  db-admin:", f"  {long}:")

    issues = problems(tmp_path, roles)

    assert len(issues) == 1, "\n".join(map(str, issues))
    assert format_loc(issues[0].loc) == f"roles.{long}"
    assert issues[0].line == line_of(roles, f"{long}:")
    assert "is 65 characters long; expected a name of at most 64 characters" in issues[0].message
    at_the_limit = problems(tmp_path, replaced(ROLES, "  db-admin:", f"  {long[:64]}:"))
    assert not any("characters long" in issue.message for issue in at_the_limit)


# --- YAML itself -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "at", "says"),
    [
        pytest.param(
            'requesters: ["@engineering"]',
            "requesters: [@engineering]",
            "requesters: [@engineering]",
            'expected the value in quotes, such as "@sre-leads"',
            id="unquoted_handle_starting_with_at",
        ),
        pytest.param(
            "description: Fix data by hand",
            "description: Fix: data by hand",
            "description: Fix: data",
            "mapping values are not allowed here; expected one 'key: value' per line",
            id="unquoted_colon_in_a_value",
        ),
        pytest.param(
            "    description: Fix data by hand\n",
            "\tdescription: Fix data by hand\n",
            "\tdescription",
            "expected spaces for indentation; YAML does not allow tabs",
            id="tab_indentation",
        ),
        pytest.param(
            "    max_duration: 2h\n    environments:",
            "    max_duration: 2h\n   environments:",
            "\n   environments:",
            "expected this line to be indented like the lines around it",
            id="line_indented_less_than_its_siblings",
        ),
    ],
)
def test_a_yaml_syntax_error_names_the_file_line_and_a_fix(
    tmp_path: Path, old: str, new: str, at: str, says: str
) -> None:
    roles = replaced(ROLES, old, new)

    issues = problems(tmp_path, roles)

    assert len(issues) == 1, "\n".join(map(str, issues))
    issue = issues[0]
    line = line_of(roles, at)
    assert (issue.file, issue.loc, issue.line) == (str(tmp_path / "roles.yaml"), (), line)
    assert issue.message.startswith("YAML syntax error at column ")
    assert says in issue.message
    assert str(issue).startswith(f"{tmp_path / 'roles.yaml'}:{line}: YAML syntax error")


def test_a_top_level_list_instead_of_a_mapping_names_the_expected_keys(tmp_path: Path) -> None:
    issues = problems(tmp_path, approvers="- sre-leads\n- security\n")

    assert [str(i) for i in issues] == [
        f"{tmp_path / 'approvers.yaml'}:1: the file holds a list; expected a mapping at the "
        "top of the file (with the keys groups:, rules:, settings:)"
    ]


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    _, approvers_path = write(tmp_path)
    missing = tmp_path / "nope" / "roles.yaml"

    with pytest.raises(ConfigError) as caught:
        load_config(missing, approvers_path, TARGET_MODELS)

    assert [str(i) for i in caught.value.issues] == [
        f"{missing}: cannot read file: No such file or directory; expected a readable file"
    ]


def test_an_empty_roles_file_asks_for_roles(tmp_path: Path) -> None:
    issues = problems(tmp_path, roles="# nothing yet\n")

    assert [(format_loc(i.loc), i.message) for i in issues] == [
        ("roles", "required key 'roles' is missing; expected it at the top of the file")
    ]


def test_a_file_without_rules_asks_for_rules(tmp_path: Path) -> None:
    issues = problems(tmp_path, approvers="groups:\n  security: [USEC1]\nrules: []\n")

    assert [(format_loc(i.loc), i.line, i.message) for i in issues] == [
        ("rules", 3, "is empty; expected at least 1 rule")
    ]


def test_problems_in_both_files_are_reported_together_in_file_and_line_order(
    tmp_path: Path,
) -> None:
    roles = replaced(ROLES, "provider: fake\n          resource: staging-db", "provider: awz")
    roles = replaced(roles, "max_duration: 2h", "max_duration: 2 hours")
    roles = replaced(roles, "    max_duration: 4h\n", "    max_duration: 4h\n    owner: sre\n")
    approvers = replaced(APPROVERS, "required_approvals: 2", "required_approvals: 0")
    approvers = replaced(approvers, "  pending_ttl: 1h\n", "  pending_ttl: 1h\n  colour: red\n")

    with pytest.raises(ConfigError) as caught:
        load(tmp_path, roles, approvers)

    found = [(Path(i.file).name, i.line, format_loc(i.loc)) for i in caught.value.issues]
    assert found == [
        ("roles.yaml", line_of(roles, "owner"), "roles.prod-support.owner"),
        (
            "roles.yaml",
            line_of(roles, "awz"),
            "roles.prod-support.environments.staging[0].provider",
        ),
        ("roles.yaml", line_of(roles, "2 hours"), "roles.db-admin.max_duration"),
        ("approvers.yaml", line_of(approvers, ": 0"), "rules[2].required_approvals"),
        ("approvers.yaml", line_of(approvers, "colour"), "settings.colour"),
    ]
    assert str(caught.value).splitlines() == [str(i) for i in caught.value.issues]


def test_cross_file_problems_are_reported_together(tmp_path: Path) -> None:
    roles = replaced(ROLES, "default_duration: 1h", "default_duration: 8h")
    approvers = replaced(APPROVERS, "approvers: [sre-leads]\n", "approvers: [sre-lead]\n")
    approvers = replaced(approvers, "roles: [db-admin]", "roles: [db-admn]")

    issues = problems(tmp_path, roles, approvers)

    assert [(Path(i.file).name, format_loc(i.loc)) for i in issues] == [
        ("roles.yaml", "roles.prod-support.default_duration"),
        ("approvers.yaml", "rules[1].approvers[0]"),
        ("approvers.yaml", "rules[2].roles[0]"),
    ]


def test_yaml_errors_in_both_files_are_reported_together(tmp_path: Path) -> None:
    roles = replaced(ROLES, 'requesters: ["@engineering"]', "requesters: [@engineering]")
    approvers = replaced(APPROVERS, "security: [USEC1]", "security: [USEC1")

    issues = problems(tmp_path, roles, approvers)

    assert [Path(i.file).name for i in issues] == ["roles.yaml", "approvers.yaml"]
    assert all(i.message.startswith("YAML syntax error") and i.line for i in issues)


def test_line_in_finds_a_path_in_a_file_for_problems_found_after_loading(
    tmp_path: Path,
) -> None:
    roles_path, _ = write(tmp_path)

    assert (
        line_in(roles_path, ("roles", "db-admin", "environments", "dev", 0))
        == line_of(ROLES, "resource: db-dev") - 1
    )
    assert line_in(roles_path, ("roles", "db-admin", "nothing-here")) == line_of(ROLES, "db-admin:")
    assert line_in(tmp_path / "absent.yaml", ("roles",)) is None


# --- what a valid pair of files loads into ----------------------------------------------


def test_a_valid_config_parses_every_target_into_its_providers_model(tmp_path: Path) -> None:
    config = load(tmp_path)

    assert config.targets == {
        ("prod-support", "prod"): [FakeTarget(resource="prod-db")],
        ("prod-support", "staging"): [FakeTarget(resource="staging-db")],
        ("db-admin", "prod"): [FakeTarget(resource="db-prod")],
        ("db-admin", "dev"): [FakeTarget(resource="db-dev")],
    }
    assert all(isinstance(t, FakeTarget) for ts in config.targets.values() for t in ts)
    assert list(config.roles) == ["prod-support", "db-admin"]
    assert config.environments("prod-support") == ["prod", "staging"]
    assert config.roles["prod-support"].max_duration == timedelta(hours=4)
    assert config.roles["prod-support"].requesters == ["@engineering"]
    assert config.roles["db-admin"].requesters is None
    assert [len(r.approvers) for r in config.rules] == [0, 1, 2, 1]
    assert config.rules[2].required_approvals == 2
    assert config.settings.pending_ttl == timedelta(hours=1)
    assert config.settings.allow_self_approval is False
    assert (config.roles_file, config.approvers_file) == (
        str(tmp_path / "roles.yaml"),
        str(tmp_path / "approvers.yaml"),
    )


def test_handles_and_emails_are_lower_cased_and_user_ids_kept(tmp_path: Path) -> None:
    config = load(tmp_path)

    assert config.groups == {"sre-leads": ["@sre-leads", "lead@example.com"], "security": ["USEC1"]}


def test_the_example_files_at_the_repo_root_load() -> None:
    root = Path(__file__).resolve().parents[2]

    models = {name: p.target_model for name, p in default_providers({}).items()}

    config = load_config(root / "roles.yaml", root / "approvers.yaml", models)

    assert config.roles
    assert all(targets for targets in config.targets.values())


@pytest.mark.parametrize(
    ("max_duration", "default_duration", "effective"),
    [
        pytest.param("4h", "2h", timedelta(hours=2), id="explicit_default_is_used"),
        pytest.param("4h", None, timedelta(hours=1), id="no_default_means_one_hour"),
        pytest.param("30m", None, timedelta(minutes=30), id="no_default_is_capped_by_max"),
        pytest.param("2h", "2h", timedelta(hours=2), id="default_may_equal_max"),
    ],
)
def test_effective_default_duration(
    max_duration: str, default_duration: str | None, effective: timedelta
) -> None:
    spec: dict[str, object] = {
        "max_duration": max_duration,
        "environments": {"dev": [{"provider": "fake", "resource": "x"}]},
    }
    if default_duration is not None:
        spec["default_duration"] = default_duration

    assert Role.model_validate(spec).effective_default == effective


@pytest.mark.parametrize(
    ("rule_setting", "global_setting", "allowed"),
    [
        pytest.param("", "false", False, id="global_false"),
        pytest.param("", "true", True, id="global_true"),
        pytest.param("    allow_self_approval: true\n", "false", True, id="rule_overrides_to_true"),
        pytest.param(
            "    allow_self_approval: false\n", "true", False, id="rule_overrides_to_false"
        ),
    ],
)
def test_self_approval_is_decided_by_the_rule_then_the_settings(
    tmp_path: Path, rule_setting: str, global_setting: str, allowed: bool
) -> None:
    approvers = replaced(
        APPROVERS, "    approvers: [sre-leads]\n", "    approvers: [sre-leads]\n" + rule_setting
    )
    approvers += f"  allow_self_approval: {global_setting}\n"

    config = load(tmp_path, approvers=approvers)

    assert config.allows_self_approval(config.rules[1]) is allowed


# --- durations -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d", timedelta(days=1)),
        ("45s", timedelta(seconds=45)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("90m", timedelta(minutes=90)),
        (" 2H ", timedelta(hours=2)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
    ],
)
def test_parse_duration_accepts(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "is not a duration"),
        ("   ", "is not a duration"),
        ("1x", "is not a duration"),
        ("h", "is not a duration"),
        ("1.5h", "is not a duration"),
        ("-5m", "is not a duration"),
        ("2 hours", "is not a duration"),
        ("0m", "is zero"),
        ("0h0m", "is zero"),
        ("1h1h", "names the unit 'h' twice"),
    ],
)
def test_parse_duration_rejects(text: str, says: str) -> None:
    with pytest.raises(InvalidDuration) as caught:
        parse_duration(text)

    assert f"'{text}' {says}" in str(caught.value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(minutes=30), "30m"),
        (timedelta(hours=2), "2h"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(days=1), "1d"),
        (timedelta(seconds=45), "45s"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(days=1, hours=1, minutes=1, seconds=1), "1d1h1m1s"),
        (timedelta(0), "0m"),
    ],
)
def test_format_duration_uses_largest_units_first(value: timedelta, text: str) -> None:
    assert format_duration(value) == text


@pytest.mark.parametrize("text", ["30m", "2h", "1h30m", "1d", "45s", "1d2h3m4s"])
def test_format_duration_round_trips(text: str) -> None:
    assert format_duration(parse_duration(text)) == text


# --- allowed_email_domains ---------------------------------------------------------------

WEBHOOK_TARGET = """\
        - provider: webhook
          name: grafana
          url: https://hooks.example.com/grafana
          secret_env: JIT_WEBHOOK_SECRET
"""


def _with_webhook(roles: str = ROLES) -> str:
    return replaced(
        roles,
        "      staging:\n",
        f"{WEBHOOK_TARGET}      staging:\n",
    )


def test_allowed_email_domains_is_required_with_a_provider_that_grants_real_access(
    tmp_path: Path,
) -> None:
    [issue] = problems(tmp_path, roles=_with_webhook())

    assert issue.file.endswith("approvers.yaml")
    assert format_loc(issue.loc) == "settings.allowed_email_domains"
    assert issue.line == line_of(APPROVERS, "\nsettings:")
    assert "is required because" in issue.message and "webhook" in issue.message
    assert "expected a list of email domains" in issue.message
    assert str(issue).startswith(f"{tmp_path / 'approvers.yaml'}:{issue.line}: settings.")


def test_allowed_email_domains_satisfies_the_requirement_and_is_lower_cased(
    tmp_path: Path,
) -> None:
    approvers = APPROVERS + "  allowed_email_domains: [Example.COM, '@corp.example.net']\n"

    config = load(tmp_path, roles=_with_webhook(), approvers=approvers)

    assert config.settings.allowed_email_domains == ["example.com", "corp.example.net"]


KUBE_LOCAL_TARGET = """\
        - provider: kubernetes
          cluster: {kubeconfig: /etc/jit/kubeconfig, context: prod}
          cluster_role: view
          namespaces: [payments]
          user_template: "oidc:{local}"
"""


def test_a_username_without_the_email_domain_is_refused_when_several_domains_are_allowed(
    tmp_path: Path,
) -> None:
    roles = replaced(ROLES, "      staging:\n", f"{KUBE_LOCAL_TARGET}      staging:\n")
    two = APPROVERS + "  allowed_email_domains: [example.com, example.net]\n"

    models = {**TARGET_MODELS, "kubernetes": KubernetesTarget}
    with pytest.raises(ConfigError) as caught:
        load_config(*write(tmp_path, roles, two), models)
    [issue] = caught.value.issues

    assert issue.file.endswith("roles.yaml")
    assert format_loc(issue.loc).endswith("environments.prod[1]")
    assert "a@one and a@other would be one Kubernetes user" in issue.message
    one = APPROVERS + "  allowed_email_domains: [example.com]\n"
    assert load_config(*write(tmp_path, roles, one), models).targets


def test_allowed_email_domains_is_optional_with_only_the_fake_provider(tmp_path: Path) -> None:
    assert load(tmp_path).settings.allowed_email_domains == []


def test_an_allowed_email_domain_that_is_not_a_domain_is_reported(tmp_path: Path) -> None:
    approvers = APPROVERS + "  allowed_email_domains: [example.com, 'alice@example.com']\n"

    [issue] = problems(tmp_path, approvers=approvers)

    assert format_loc(issue.loc) == "settings.allowed_email_domains[1]"
    assert issue.line == line_of(approvers, "allowed_email_domains")
    assert "'alice@example.com' is not an email domain; expected a domain" in issue.message
