"""What a security review of `jit-bot import` found, each kept from coming back: a set
that names another account is not a copy, merged definitions get names of their own,
widened roles are not auto-approved, approvers come from production, an estate without
emails is said, and estate text cannot link or run in the report and the CSV files."""

from __future__ import annotations

import csv
import json
import re
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from bot.cli import main
from bot.config import load_config
from bot.importer.access import CannotImport
from bot.importer.aws.convert import imported
from bot.importer.aws.environments import environments
from bot.importer.aws.estate import Account, Assignment, Estate, PermissionSet
from bot.importer.outputs import Outcome
from bot.importer.propose import Options, propose, write_outputs
from bot.importer.report import escape
from bot.importer.terminal import show
from providers.aws import AwsTarget

ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
HUB, STAGING, PROD, SANDBOX = "999999999999", "111111111111", "222222222222", "333333333333"


def _assume(account: str) -> str:
    statement = {
        "Effect": "Allow",
        "Action": "sts:AssumeRole",
        "Resource": f"arn:aws:iam::{account}:role/Deploy",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _set(name: str, managed: tuple[str, ...] = (), inline: str | None = None) -> PermissionSet:
    return PermissionSet(f"arn:ps/{name}", name, "PT1H", managed, (), inline)


def _estate(
    sets: list[PermissionSet],
    assignments: list[tuple[str, str, str]],  # (account, set name, user)
    groups: dict[str, tuple[str, ...]] | None = None,
    people: dict[str, str] | None = None,
) -> Estate:
    accounts = {
        HUB: Account(HUB, "hub", "Shared-Prod"),
        STAGING: Account(STAGING, "staging", "Staging"),
        PROD: Account(PROD, "prod", "Prod"),
        SANDBOX: Account(SANDBOX, "sandbox", "Sandbox"),
    }
    groups = groups or {}
    kinds = {name: "GROUP" for name in groups}
    held = tuple(
        Assignment(account, f"arn:ps/{ps}", kinds.get(who, "USER"), who)
        for account, ps, who in assignments
    )
    everyone = {u for _, _, u in assignments if u not in groups} | {
        u for members in groups.values() for u in members
    }
    people = people or {u: f"{u}@example.com" for u in everyone}
    return Estate(
        {ps.arn: ps for ps in sets}, accounts, held, people, {g: g for g in groups}, groups
    )


def _write(estate: Estate, out: Path, options: Options | None = None) -> Outcome:
    outcome = propose(imported(estate, environments("ou", estate.accounts)), options or Options())
    write_outputs(outcome, out)
    return outcome


def _given(outcome: Outcome, person: str) -> set[tuple[str, str]]:
    roles = outcome.drafts.roles["roles"]
    return {
        (t["permission_set"], account)
        for mined in outcome.mining.assignments[person]
        for targets in roles[outcome.drafts.names[mined]]["environments"].values()
        for t in targets
        for account in t["accounts"]
    }


def test_a_set_that_names_another_account_is_not_a_copy_of_one_naming_a_third(
    tmp_path: Path,
) -> None:
    # Both are assigned on the hub; one assumes a role in staging, the other in prod.
    staging, prod = (
        _set("DeployStaging", inline=_assume(STAGING)),
        _set("DeployProd", inline=_assume(PROD)),
    )
    estate = _estate([staging, prod], [(HUB, "DeployStaging", "alice"), (HUB, "DeployProd", "bob")])

    outcome = _write(estate, tmp_path)

    assert _given(outcome, "alice@example.com") == {("DeployStaging", HUB)}
    assert _given(outcome, "bob@example.com") == {("DeployProd", HUB)}
    assert (
        "None: each of the permission sets grants something its own."
        in (tmp_path / "report.md").read_text()
    )


def test_a_copy_for_its_own_account_still_merges_and_keeps_naming_its_account(
    tmp_path: Path,
) -> None:
    copies = [_set(f"Deploy-{a}", inline=_assume(a)) for a in (STAGING, PROD)]
    estate = _estate(
        copies, [(STAGING, f"Deploy-{STAGING}", "alice"), (PROD, f"Deploy-{PROD}", "alice")]
    )

    outcome = _write(estate, tmp_path, Options(consolidate=True))

    (document,) = [doc for _, doc in outcome.drafts.proposals.values()]
    assert document["InlinePolicy"]["Statement"][0]["Resource"] == [
        "arn:aws:iam::${aws:PrincipalAccount}:role/Deploy"
    ]


def test_merged_definitions_cut_to_one_name_get_names_of_their_own(tmp_path: Path) -> None:
    teams = {
        "platform-engineering-team-aws-admins": ("alice",),
        "platform-engineering-team-aws-readers": ("bob",),
    }
    estate = _estate(
        [_set("Admin", (ADMIN,)), _set("ReadOnly", (READ_ONLY,))],
        [
            (SANDBOX, "Admin", "platform-engineering-team-aws-admins"),
            (SANDBOX, "ReadOnly", "platform-engineering-team-aws-readers"),
        ],
        teams,
    )

    outcome = _write(estate, tmp_path, Options(consolidate=True))

    created = [name for name, _ in outcome.drafts.proposals.values()]
    assert len(set(created)) == 2 and all(len(name) <= 32 for name in created)
    for name in created:
        assert (
            json.loads(
                (tmp_path / "permission-sets").joinpath(f"{_role(outcome, name)}.json").read_text()
            )["Name"]
            == name
        )
    load_config(tmp_path / "roles.yaml", tmp_path / "approvers.yaml", {"aws": AwsTarget})


def _role(outcome: Outcome, created: str) -> str:
    return next(role for role, (name, _) in outcome.drafts.proposals.items() if name == created)


def test_a_role_widened_by_consolidating_is_not_approved_automatically(tmp_path: Path) -> None:
    # alice and bob hold Admin on the sandbox and ReadOnly on staging: one merged set
    # on both would give them Admin on staging too.
    estate = _estate(
        [_set("Admin", (ADMIN,)), _set("ReadOnly", (READ_ONLY,))],
        [
            (SANDBOX, "Admin", "team"),
            (STAGING, "ReadOnly", "team"),
        ],
        {"team": ("alice", "bob")},
    )
    estate = Estate(
        estate.permission_sets,
        {**estate.accounts, STAGING: Account(STAGING, "staging", "Sandbox")},
        estate.assignments,
        estate.people,
        estate.groups,
        estate.members,
    )

    exact = _write(estate, tmp_path / "exact")
    merged = _write(estate, tmp_path / "merged", Options(consolidate=True))

    def auto(outcome: Outcome) -> list[dict[str, object]]:
        return [r for r in outcome.drafts.approvers["rules"] if r.get("auto_approve")]

    assert [r["requesters"] for r in auto(exact)] == [["alice@example.com", "bob@example.com"]]
    assert auto(merged) == []
    assert "team: 2 more cells" in (tmp_path / "merged" / "report.md").read_text()


def test_approvers_come_from_production_admins_when_there_are_some(tmp_path: Path) -> None:
    estate = _estate(
        [_set("Admin", (ADMIN,))],
        [(SANDBOX, "Admin", "dev"), (PROD, "Admin", "ops1"), (PROD, "Admin", "ops2")],
    )

    outcome = _write(estate, tmp_path)

    assert outcome.drafts.approvers["groups"] == {
        "aws-admins": ["ops1@example.com", "ops2@example.com"]
    }


def test_an_estate_without_emails_is_said_in_one_line(tmp_path: Path) -> None:
    estate = _estate(
        [_set("ReadOnly", (READ_ONLY,))], [(PROD, "ReadOnly", "u1")], people={"u1": "alice"}
    )

    with pytest.raises(CannotImport, match="nobody in the estate has an email address"):
        _write(estate, tmp_path)
    assert not (tmp_path / "roles.yaml").exists()


def test_estate_text_neither_links_in_markdown_nor_runs_in_a_spreadsheet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "https://" not in escape("see https://evil.example/sso-login")
    assert "www." not in escape("www.evil.example")
    assert (
        escape("arn:aws:iam::aws:policy/ReadOnlyAccess") == "arn:aws:iam::aws:policy/ReadOnlyAccess"
    )
    matrix = tmp_path / "m.txt"
    matrix.write_text("=cmd|x perm\nalice @SUM(1)\n")

    assert main(["import", "matrix", str(matrix), "--output", str(tmp_path / "out")]) == 0

    cells = [
        cell
        for name in ("roles.csv", "assignments.csv")
        for row in csv.reader((tmp_path / "out" / name).open())
        for cell in row
    ]
    assert "'=cmd|x" in cells and "'@SUM(1)" in cells
    assert not any(c.startswith(("=", "@")) for c in cells)


def test_a_terminal_gets_the_before_and_after_as_bars(tmp_path: Path) -> None:
    estate = _estate(
        [_set("ReadOnly", (READ_ONLY,)), _set("Dead", (ADMIN,))],
        [(PROD, "ReadOnly", "team"), (STAGING, "ReadOnly", "alice")],
        {"team": ("alice", "bob")},
    )
    outcome = _write(estate, tmp_path)
    screen, pipe = StringIO(), StringIO()

    show(outcome, Console(file=screen, force_terminal=True, width=100))
    show(outcome, Console(file=pipe, force_terminal=False, width=100))

    drawn = screen.getvalue()
    assert pipe.getvalue() == ""  # pipes and logs get the one headline line only
    for figure, count in (
        ("permission sets today", 2),
        ("of them assigned to nobody", 1),
        ("proposed roles", len(outcome.mining.roles)),
        ("standing assignments today", 2),
        ("replaced by requests", 2),
    ):
        assert re.search(rf"{figure}\S*\s*│\s*\S*{count}\b", drawn), (figure, drawn)
    assert "█" in drawn
