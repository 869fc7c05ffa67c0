"""approvers.yaml's ``break_glass``: what loads, and each mistake reported with file,
line, path and what was expected (the same tables as tests/unit/test_config.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import BreakGlass, format_loc
from bot.settings import Settings
from tests.unit.test_config import APPROVERS, CATCH_ALL_RULE, line_of, load, problems, replaced

# The prod-support rule of the base file, and the same rule allowing break-glass.
RULE = "  - roles: [prod-support]\n    environments: [prod]\n    approvers: [sre-leads]\n"


def with_break_glass(block: str) -> str:
    return replaced(APPROVERS, RULE, RULE + block)


def test_a_rule_may_allow_break_glass_within_its_roles_maximum(tmp_path: Path) -> None:
    approvers = with_break_glass("    break_glass: {max_duration: 1h, per_person_per_day: 2}\n")

    config = load(tmp_path, approvers=approvers)

    assert config.rules[1].break_glass == BreakGlass(
        max_duration=timedelta(hours=1), per_person_per_day=2
    )
    assert all(rule.break_glass is None for i, rule in enumerate(config.rules) if i != 1)


@pytest.mark.parametrize(
    ("block", "path", "at", "says"),
    [
        pytest.param(
            "    break_glass: {max_duration: 1h, per_person_per_day: 2, approve: yes}\n",
            "rules[1].break_glass.approve",
            "approve: yes",
            "unknown key 'approve'; expected one of: max_duration, per_person_per_day",
            id="unknown-key",
        ),
        pytest.param(
            "    break_glass:\n      max_duration: 5h\n      per_person_per_day: 2\n",
            "rules[1].break_glass.max_duration",
            "max_duration: 5h",
            "5h is longer than role 'prod-support' allows (max_duration 4h); expected at most 4h",
            id="over-the-roles-maximum",
        ),
        pytest.param(
            "    break_glass:\n      max_duration: 1h\n      per_person_per_day: 0\n",
            "rules[1].break_glass.per_person_per_day",
            "per_person_per_day: 0",
            "is too small; expected at least 1",
            id="no-quota",
        ),
        pytest.param(
            "    break_glass:\n      max_duration: 1h\n      per_person_per_day: -3\n",
            "rules[1].break_glass.per_person_per_day",
            "per_person_per_day: -3",
            "is too small; expected at least 1",
            id="negative-quota",
        ),
        pytest.param(
            "    break_glass:\n      max_duration: 90\n      per_person_per_day: 1\n",
            "rules[1].break_glass.max_duration",
            "max_duration: 90",
            "90 has no unit",
            id="duration-without-unit",
        ),
        pytest.param(
            "    break_glass:\n      per_person_per_day: 1\n",
            "rules[1].break_glass.max_duration",
            "break_glass:",
            "max_duration",
            id="no-maximum",
        ),
    ],
)
def test_a_wrong_break_glass_is_reported_with_file_line_path_and_expectation(
    tmp_path: Path, block: str, path: str, at: str, says: str
) -> None:
    approvers = with_break_glass(block)

    issues = problems(tmp_path, approvers=approvers)

    assert len(issues) == 1, "\n".join(map(str, issues))
    issue = issues[0]
    assert Path(issue.file) == tmp_path / "approvers.yaml"
    assert format_loc(issue.loc) == path
    assert issue.line == line_of(approvers, at)
    assert says in issue.message
    assert "expected" in issue.message


def test_break_glass_on_an_auto_approve_rule_is_an_error(tmp_path: Path) -> None:
    approvers = replaced(
        APPROVERS,
        "    auto_approve: true\n",
        "    auto_approve: true\n    break_glass: {max_duration: 1h, per_person_per_day: 1}\n",
    )

    issues = problems(tmp_path, approvers=approvers)

    assert [format_loc(i.loc) for i in issues] == ["rules[0]"], "\n".join(map(str, issues))
    assert "has both auto_approve: true and break_glass; expected approvers" in issues[0].message


def test_the_security_channel_is_read_from_jit_security_channel() -> None:
    secrets = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}

    assert Settings.from_env({**secrets, "JIT_SECURITY_CHANNEL": "C0SEC"}).security_channel == (
        "C0SEC"
    )
    assert Settings.from_env({**secrets, "JIT_SECURITY_CHANNEL": ""}).security_channel is None


def test_only_roles_in_the_rules_environments_bound_its_break_glass(tmp_path: Path) -> None:
    # db-admin allows 2h at most but has no staging: a staging-only rule for every role
    # may allow 3h, which prod-support (4h) allows there.
    staging = (
        '  - roles: ["*"]\n    environments: [staging]\n    approvers: [security]\n'
        "    break_glass: {max_duration: 3h, per_person_per_day: 1}\n"
    )
    approvers = replaced(APPROVERS, CATCH_ALL_RULE, staging + CATCH_ALL_RULE)

    config = load(tmp_path, approvers=approvers)

    assert config.rules[-2].environments == ["staging"]
    assert config.rules[-2].break_glass == BreakGlass(
        max_duration=timedelta(hours=3), per_person_per_day=1
    )
