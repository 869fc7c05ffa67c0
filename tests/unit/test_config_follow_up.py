"""The config of approvers who answer: a rule's ``remind_after``, ``escalate_to`` with
``escalate_after``, ``notify`` and quiet approver groups; what loads, and each mistake
reported with file, line, path and what was expected (the tables of test_config.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import format_loc
from bot.matrix import render_matrix
from tests.unit.test_config import APPROVERS, ROLES, line_of, load, problems, replaced

RULE = "  - roles: [prod-support]\n    environments: [prod]\n    approvers: [sre-leads]\n"


def _rule(extra: str) -> str:
    return replaced(APPROVERS, RULE, RULE + extra)


def test_a_rule_names_who_is_told_who_is_quiet_when_to_remind_and_whom_to_escalate_to(
    tmp_path: Path,
) -> None:
    approvers = replaced(
        APPROVERS,
        RULE,
        "  - roles: [prod-support]\n    environments: [prod]\n"
        "    approvers: [sre-leads, {group: security, quiet: true}]\n"
        "    notify: [security]\n    remind_after: 5m\n"
        "    escalate_to: security\n    escalate_after: 20m\n",
    )
    config = load(tmp_path, approvers=approvers)
    rule = config.rules[1]
    assert rule.approver_groups == ["sre-leads", "security"]
    assert rule.quiet_groups == ["security"]
    assert rule.notify == ["security"]
    assert rule.remind_after == timedelta(minutes=5)
    assert (rule.escalate_to, rule.escalate_after) == ("security", timedelta(minutes=20))
    # By default: reminded after 15m, never escalated, nobody else told.
    other = config.rules[2]
    assert other.remind_after == timedelta(minutes=15)
    assert (other.escalate_to, other.escalate_after, other.notify) == (None, None, [])
    assert load(tmp_path, approvers=_rule("    remind_after: null\n")).rules[1].remind_after is None


def test_check_shows_quiet_approver_groups(tmp_path: Path) -> None:
    approvers = replaced(
        APPROVERS,
        "    approvers: [sre-leads, security]\n",
        "    approvers: [sre-leads, {group: security, quiet: true}]\n",
    )
    assert "security (quiet)" in render_matrix(load(tmp_path, approvers=approvers))


@pytest.mark.parametrize(
    ("approvers", "path", "at", "says"),
    [
        pytest.param(
            _rule("    escalate_to: managers\n    escalate_after: 30m\n"),
            "rules[1].escalate_to",
            "escalate_to: managers",
            "unknown group 'managers'; expected one of: security, sre-leads",
            id="unknown-escalation-group",
        ),
        pytest.param(
            _rule("    escalate_to: security\n"),
            "rules[1]",
            "- roles: [prod-support]",
            "names only one of escalate_to and escalate_after; expected both",
            id="escalation-without-time",
        ),
        pytest.param(
            _rule("    escalate_to: security\n    escalate_after: 1h\n"),
            "rules[1].escalate_after",
            "escalate_after: 1h",
            "1h is not shorter than settings.pending_ttl (1h), so no request would ever be "
            "escalated; expected less than 1h",
            id="escalation-after-expiry",
        ),
        pytest.param(
            _rule("    notify: [securty]\n"),
            "rules[1].notify[0]",
            "notify: [securty]",
            "unknown group 'securty' (did you mean 'security'?)",
            id="unknown-notify-group",
        ),
        pytest.param(
            replaced(APPROVERS, RULE, RULE.replace("[sre-leads]", "[{group: sre-lead}]")),
            "rules[1].approvers[0].group",
            "approvers: [{group: sre-lead}]",
            "unknown group 'sre-lead' (did you mean 'sre-leads'?)",
            id="unknown-quiet-group",
        ),
        pytest.param(
            replaced(
                APPROVERS, RULE, RULE.replace("[sre-leads]", "[{group: sre-leads, quite: true}]")
            ),
            "rules[1].approvers[0].quite",
            "approvers: [{group: sre-leads, quite: true}]",
            "unknown key 'quite' (did you mean 'quiet'?); expected one of: group, quiet",
            id="quiet-misspelt",
        ),
        pytest.param(
            replaced(APPROVERS, RULE, RULE.replace("[sre-leads]", "[3]")),
            "rules[1].approvers[0]",
            "approvers: [3]",
            "expected a group name, or {group: <name>, quiet: true}",
            id="approver-entry-not-a-name",
        ),
        pytest.param(
            _rule("    remind_after: 2h\n"),
            "rules[1].remind_after",
            "remind_after: 2h",
            "2h is not shorter than settings.pending_ttl (1h), so no reminder would ever be "
            "sent; expected less than 1h, or null for no reminders",
            id="reminder-after-expiry",
        ),
        pytest.param(
            replaced(
                APPROVERS,
                "    auto_approve: true\n",
                "    auto_approve: true\n    notify: [security]\n",
            ),
            "rules[0]",
            "- environments: [dev]",
            "has both auto_approve: true and notify; expected one or the other",
            id="notify-on-auto-approve",
        ),
        pytest.param(
            _rule("    remind_after: 30s\n"),
            "rules[1].remind_after",
            "remind_after: 30s",
            "30s is too short; expected at least 1m",
            id="reminder-too-soon",
        ),
        pytest.param(
            replaced(
                APPROVERS,
                "    auto_approve: true\n",
                "    auto_approve: true\n    escalate_to: security\n    escalate_after: 10m\n",
            ),
            "rules[0]",
            "- environments: [dev]",
            "has both auto_approve: true and escalate_to; expected one",
            id="escalation-on-auto-approve",
        ),
    ],
)
def test_a_wrong_follow_up_setting_is_reported_with_file_line_path_and_expectation(
    tmp_path: Path, approvers: str, path: str, at: str, says: str
) -> None:
    issues = problems(tmp_path, roles=ROLES, approvers=approvers)

    assert len(issues) == 1, "\n".join(map(str, issues))
    issue = issues[0]
    assert Path(issue.file) == tmp_path / "approvers.yaml"
    assert format_loc(issue.loc) == path
    assert issue.line == line_of(approvers, at)
    assert says in issue.message
