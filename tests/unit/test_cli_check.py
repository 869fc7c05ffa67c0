"""``jit-bot check`` run as a real process, the way an operator or a CI job runs it: it
validates roles.yaml and approvers.yaml, prints the request/approval matrix and exits 0,
or prints every problem as ``file:line: path: message`` on stderr and exits 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from bot.durations import parse_duration

REPO = Path(__file__).resolve().parents[2]
SECRET_ENV = "JIT_WEBHOOK_SECRET"

ROLES = textwrap.dedent(
    """\
    roles:
      prod-support:
        max_duration: 4h
        requesters: ["@engineering", U0LEAD]
        environments:
          prod:
            - provider: webhook
              name: grafana-editor
              url: https://hooks.example.com/grafana
              secret_env: JIT_WEBHOOK_SECRET
          staging:
            - provider: webhook
              name: grafana-editor-staging
              url: https://hooks.example.com/grafana
              secret_env: JIT_WEBHOOK_SECRET
      db-admin:
        max_duration: 90m
        environments:
          prod:
            - provider: webhook
              name: postgres-admin
              url: https://hooks.example.com/postgres
              secret_env: JIT_WEBHOOK_SECRET
          dev:
            - provider: webhook
              name: postgres-admin-dev
              url: https://hooks.example.com/postgres
              secret_env: JIT_WEBHOOK_SECRET
    """
)

APPROVERS = textwrap.dedent(
    """\
    groups:
      sre-leads: ["@sre-leads", lead@example.com]
      security: ["@security"]
    rules:
      - environments: [dev]
        roles: ["*"]
        auto_approve: true
      - roles: [db-admin]
        environments: [prod]
        requesters: ["@dba"]
        approvers: [sre-leads]
      - roles: [db-admin]
        environments: [prod]
        approvers: [sre-leads, security]
        required_approvals: 2
      - roles: [prod-support]
        environments: [prod]
        approvers: [sre-leads]
        allow_self_approval: true
        break_glass: {max_duration: 1h, per_person_per_day: 2}
      - roles: ["*"]
        environments: ["*"]
        approvers: [security]
    settings:
      allowed_email_domains: [example.com]
    """
)

HEADER = [
    "ROLE",
    "ENVIRONMENT",
    "REQUESTERS",
    "APPROVERS",
    "APPROVALS",
    "AUTO",
    "MAX",
    "BREAK-GLASS",
]


def run_check(
    cwd: Path,
    *,
    roles: Path | None = None,
    approvers: Path | None = None,
    secret: str | None = "s3cret",
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JIT_", "SLACK_"))}
    if roles is not None:
        env["JIT_ROLES_FILE"] = str(roles)
    if approvers is not None:
        env["JIT_APPROVERS_FILE"] = str(approvers)
    if secret is not None:
        env[SECRET_ENV] = secret
    # The example's database targets name their servers' URLs by variable; offline
    # checks read only that it is set and holds a connection URL.
    env["JIT_ORDERS_PG_DSN"] = "postgresql://jit_bot@db.example.com:5432/orders"
    env["JIT_ORDERS_MYSQL_DSN"] = "mysql://jit_bot:s3cret@db.example.com:3306/orders"
    return subprocess.run(
        [sys.executable, "-m", "bot", "check"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def write(folder: Path, roles: str = ROLES, approvers: str = APPROVERS) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    roles_path, approvers_path = folder / "roles.yaml", folder / "approvers.yaml"
    roles_path.write_text(roles)
    approvers_path.write_text(approvers)
    return roles_path, approvers_path


def matrix(stdout: str) -> list[list[str]]:
    """The rows of the printed matrix (header excluded), cells split on column gaps."""
    lines = stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == HEADER, stdout
    rows = []
    for line in lines[1:]:
        if not line.strip():
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


def line_of(text: str, needle: str) -> int:
    assert text.count(needle) == 1, needle
    return text[: text.index(needle)].count("\n") + 1


def test_the_repos_example_files_pass_and_every_role_and_environment_is_listed(
    tmp_path: Path,
) -> None:
    result = run_check(tmp_path, roles=REPO / "roles.yaml", approvers=REPO / "approvers.yaml")

    assert result.returncode == 0, result.stderr
    rows = matrix(result.stdout)
    example = yaml.safe_load((REPO / "roles.yaml").read_text())["roles"]
    expected_pairs = {(role, env) for role, spec in example.items() for env in spec["environments"]}
    assert {(row[0], row[1]) for row in rows} == expected_pairs
    for role, _env, requesters, approvers, approvals, auto, max_duration, _glass in rows:
        spec = example[role]
        assert parse_duration(max_duration) == parse_duration(str(spec["max_duration"]))
        if "requesters" not in spec:
            assert requesters == "members"
        else:
            assert all(entry.lower() in requesters for entry in spec["requesters"])
        if auto == "yes":
            assert (approvers, approvals) == ("(auto-approved)", "-")
        else:
            assert auto == "no"
            assert int(approvals) >= 1
            assert approvers
    assert result.stdout.rstrip().endswith(
        f"{REPO / 'roles.yaml'} and {REPO / 'approvers.yaml'} are valid."
    )
    assert "invalid" not in result.stderr


def test_the_matrix_shows_requesters_approvers_approvals_auto_max_and_break_glass(
    tmp_path: Path,
) -> None:
    roles_path, approvers_path = write(tmp_path / "config")

    result = run_check(tmp_path, roles=roles_path, approvers=approvers_path)

    assert result.returncode == 0, result.stderr
    sre = "sre-leads (@sre-leads, lead@example.com)"
    assert matrix(result.stdout) == [
        [
            "prod-support",
            "prod",
            "@engineering, U0LEAD",
            f"{sre}; self-approval allowed",
            "1",
            "no",
            "4h",
            "up to 1h, 2/day",
        ],
        [
            "prod-support",
            "staging",
            "@engineering, U0LEAD",
            "security (@security)",
            "1",
            "no",
            "4h",
            "-",
        ],
        # The DBA-only rule applies first for DBAs; everyone else falls through to the next.
        ["db-admin", "prod", "members ∩ @dba", sre, "1", "no", "1h30m", "-"],
        [
            "db-admin",
            "prod",
            "members except @dba",
            f"{sre}; security (@security)",
            "2",
            "no",
            "1h30m",
            "-",
        ],
        ["db-admin", "dev", "members", "(auto-approved)", "-", "yes", "1h30m", "-"],
    ]


def test_files_are_read_from_the_working_directory_by_default(tmp_path: Path) -> None:
    write(tmp_path)

    result = run_check(tmp_path)

    assert result.returncode == 0, result.stderr
    assert "roles.yaml and approvers.yaml are valid." in result.stdout


def test_a_broken_file_exits_2_with_file_line_path_and_expectation(tmp_path: Path) -> None:
    roles = ROLES.replace(
        "- provider: webhook\n          name: postgres-admin-dev",
        "- provider: awz\n          name: postgres-admin-dev",
    )
    roles_path, approvers_path = write(tmp_path / "config", roles=roles)

    result = run_check(tmp_path, roles=roles_path, approvers=approvers_path)

    assert result.returncode == 2
    assert result.stdout == ""
    line = line_of(roles, "provider: awz")
    assert result.stderr.splitlines() == [
        "jit-bot: configuration is invalid:",
        f"{roles_path}:{line}: roles.db-admin.environments.dev[0].provider: "
        "unknown provider 'awz' (did you mean 'aws'?); "
        "expected one of: aws, azure, gcp, kubernetes, mysql, postgresql, webhook",
    ]


def test_every_problem_of_both_files_is_printed(tmp_path: Path) -> None:
    roles = ROLES.replace("max_duration: 90m", "max_duration: 90 minutes")
    approvers = APPROVERS.replace("approvers: [security]\n", "approvers: [securty]\n")
    roles_path, approvers_path = write(tmp_path / "config", roles, approvers)

    result = run_check(tmp_path, roles=roles_path, approvers=approvers_path)

    assert result.returncode == 2
    assert result.stderr.splitlines()[1:] == [
        f"{roles_path}:{line_of(roles, '90 minutes')}: roles.db-admin.max_duration: "
        "'90 minutes' is not a duration; expected a duration such as 30m, 2h or 1h30m "
        "(a number followed by d, h, m or s)",
        f"{approvers_path}:{line_of(approvers, '[securty]')}: rules[4].approvers[0]: "
        "unknown group 'securty' (did you mean 'security'?); expected one of: security, sre-leads",
    ]


def test_a_yaml_syntax_error_exits_2_with_its_line(tmp_path: Path) -> None:
    approvers = APPROVERS.replace('security: ["@security"]', "security: [@security]")
    roles_path, approvers_path = write(tmp_path / "config", approvers=approvers)

    result = run_check(tmp_path, roles=roles_path, approvers=approvers_path)

    assert result.returncode == 2
    problem = result.stderr.splitlines()[1]
    assert problem.startswith(
        f"{approvers_path}:{line_of(approvers, '[@security]')}: YAML syntax error at column"
    )
    assert 'expected the value in quotes, such as "@sre-leads"' in problem


def test_a_missing_file_exits_2_naming_it(tmp_path: Path) -> None:
    _, approvers_path = write(tmp_path / "config")
    missing = tmp_path / "config" / "rolse.yaml"

    result = run_check(tmp_path, roles=missing, approvers=approvers_path)

    assert result.returncode == 2
    assert f"{missing}: cannot read file: No such file or directory" in result.stderr


@pytest.mark.parametrize("secret", [None, ""], ids=["unset", "empty"])
def test_the_example_files_need_the_webhook_secret_variable(
    tmp_path: Path, secret: str | None
) -> None:
    result = run_check(
        tmp_path, roles=REPO / "roles.yaml", approvers=REPO / "approvers.yaml", secret=secret
    )

    assert result.returncode == 2
    assert result.stdout == ""
    problems = result.stderr.splitlines()[1:]
    assert problems
    for problem in problems:
        assert problem.startswith(f"{REPO / 'roles.yaml'}")
        assert re.search(r": roles\.[a-z0-9_-]+\.environments\.[a-z0-9_-]+\[\d+\]: ", problem)
        assert "the environment variable JIT_WEBHOOK_SECRET is not set or empty" in problem
