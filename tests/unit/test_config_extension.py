"""The config of extending access: a rule's ``extend_without_approval_up_to`` and a role's
``remind_before_expiry``, what loads and each mistake reported with file, line, path and
what was expected (the same tables as tests/unit/test_config.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import format_loc
from tests.unit.test_config import APPROVERS, ROLES, line_of, load, problems, replaced

RULE = "  - roles: [prod-support]\n    environments: [prod]\n    approvers: [sre-leads]\n"
ROLE = "    max_duration: 4h\n"


def test_a_rule_may_extend_without_approval_and_a_role_says_when_to_remind(
    tmp_path: Path,
) -> None:
    approvers = replaced(APPROVERS, RULE, RULE + "    extend_without_approval_up_to: 30m\n")
    roles = replaced(ROLES, ROLE, ROLE + "    remind_before_expiry: 15m\n")

    config = load(tmp_path, roles=roles, approvers=approvers)

    assert config.rules[1].extend_without_approval_up_to == timedelta(minutes=30)
    assert [r.extend_without_approval_up_to for i, r in enumerate(config.rules) if i != 1] == [
        None
    ] * (len(config.rules) - 1)
    assert config.roles["prod-support"].remind_before_expiry == timedelta(minutes=15)
    # By default ten minutes; null turns the reminder off.
    assert config.roles["db-admin"].remind_before_expiry == timedelta(minutes=10)
    off = replaced(ROLES, ROLE, ROLE + "    remind_before_expiry: null\n")
    assert load(tmp_path, roles=off).roles["prod-support"].remind_before_expiry is None


@pytest.mark.parametrize(
    ("roles", "approvers", "file", "path", "at", "says"),
    [
        pytest.param(
            ROLES,
            replaced(APPROVERS, RULE, RULE + "    extend_without_approval_up_to: 0m\n"),
            "approvers.yaml",
            "rules[1].extend_without_approval_up_to",
            "extend_without_approval_up_to: 0m",
            "'0m' is zero; expected a duration",
            id="zero-extension",
        ),
        pytest.param(
            ROLES,
            replaced(APPROVERS, RULE, RULE + "    extend_without_approval_up_to: 30\n"),
            "approvers.yaml",
            "rules[1].extend_without_approval_up_to",
            "extend_without_approval_up_to: 30",
            "30 has no unit",
            id="extension-without-unit",
        ),
        pytest.param(
            ROLES,
            replaced(
                APPROVERS,
                "    auto_approve: true\n",
                "    auto_approve: true\n    extend_without_approval_up_to: 1h\n",
            ),
            "approvers.yaml",
            "rules[0]",
            "- environments: [dev]",
            "has both auto_approve: true and extend_without_approval_up_to; expected one",
            id="extension-on-auto-approve",
        ),
        pytest.param(
            replaced(ROLES, ROLE, ROLE + "    remind_before_expiry: 0s\n"),
            APPROVERS,
            "roles.yaml",
            "roles.prod-support.remind_before_expiry",
            "remind_before_expiry: 0s",
            "'0s' is zero; expected a duration",
            id="zero-reminder",
        ),
        pytest.param(
            replaced(ROLES, ROLE, ROLE + "    remind_before_expiry: soon\n"),
            APPROVERS,
            "roles.yaml",
            "roles.prod-support.remind_before_expiry",
            "remind_before_expiry: soon",
            "expected a duration",
            id="reminder-not-a-duration",
        ),
    ],
)
def test_a_wrong_extension_setting_is_reported_with_file_line_path_and_expectation(
    tmp_path: Path, roles: str, approvers: str, file: str, path: str, at: str, says: str
) -> None:
    issues = problems(tmp_path, roles=roles, approvers=approvers)

    assert len(issues) == 1, "\n".join(map(str, issues))
    issue = issues[0]
    assert Path(issue.file) == tmp_path / file
    assert format_loc(issue.loc) == path
    text = roles if file == "roles.yaml" else approvers
    assert issue.line == line_of(text, at)
    assert says in issue.message
