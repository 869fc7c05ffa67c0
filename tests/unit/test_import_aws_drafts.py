"""From an estate as read to the files written, without AWS: the drafts load with the
bot's own loader in the cases the moto estate does not reach, and everything taken from
the estate is shown as itself in report.md."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from bot.config import load_config
from bot.importer.aws.convert import imported
from bot.importer.aws.environments import environments
from bot.importer.aws.estate import Account, Assignment, Estate, PermissionSet
from bot.importer.outputs import Outcome
from bot.importer.propose import Options, propose, write_outputs
from providers.aws import AwsTarget

READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"


def _estate(people: dict[str, str], groups: dict[str, str], *extra: Assignment) -> Estate:
    sets = {
        "arn:ps/ro": PermissionSet("arn:ps/ro", "ReadOnly", "PT1H", (READ_ONLY,), (), None),
        "arn:ps/dead": PermissionSet("arn:ps/dead", "Dead", None, (), ("/legacy",), None),
    }
    accounts = {
        "111111111111": Account("111111111111", "web", "Prod"),
        "222222222222": Account("222222222222", "lab", "Sandbox"),
        "333333333333": Account("333333333333", "api", "Prod"),
    }
    assignments = (
        Assignment("111111111111", "arn:ps/ro", "GROUP", "g1"),
        Assignment("222222222222", "arn:ps/ro", "USER", "u2"),
        Assignment("222222222222", "arn:ps/ro", "GROUP", "empty"),
        *extra,
    )
    members = {"g1": ("u1",), "empty": ()}
    return Estate(sets, accounts, assignments, people, groups, members)


def _write(estate: Estate, out: Path, options: Options | None = None) -> Outcome:
    found = imported(estate, environments("ou", estate.accounts))
    outcome = propose(found, options or Options())
    write_outputs(outcome, out)
    return outcome


def test_without_admin_like_holders_the_approver_group_is_a_handle_to_create(
    tmp_path: Path,
) -> None:
    estate = _estate(
        {"u1": "ann@example.com", "u2": "ben@example.org"}, {"g1": "web", "empty": "e"}
    )

    outcome = _write(estate, tmp_path)

    config = load_config(tmp_path / "roles.yaml", tmp_path / "approvers.yaml", {"aws": AwsTarget})
    assert config.groups == {"aws-admins": ["@aws-admins"]}
    assert config.settings.allowed_email_domains == ["example.com", "example.org"]
    report = (tmp_path / "report.md").read_text()
    assert "Nobody holds admin-like access today" in report
    assert "also lists the Slack user group @aws-admins" in report
    assert outcome.drafts.admins == ()


def test_an_assignment_that_reaches_nobody_is_still_a_row_of_mapping_csv(tmp_path: Path) -> None:
    estate = _estate(
        {"u1": "ann@example.com", "u2": "ben@example.org"}, {"g1": "web", "empty": "e"}
    )

    _write(estate, tmp_path)

    rows = (tmp_path / "mapping.csv").read_text().splitlines()
    assert len(rows) == 1 + 3
    assert "222222222222,lab,ReadOnly,GROUP,e,,," in rows


def test_names_from_the_estate_are_shown_as_themselves_in_the_report(tmp_path: Path) -> None:
    hostile = "<img src=x onerror=alert(1)>|x"
    # ben also holds ReadOnly on api: with two extra cells allowed, one role serves both
    # people, the hostile-named member of web gains ReadOnly on lab and api, and the
    # report lists that under their name.
    also = Assignment("333333333333", "arn:ps/ro", "USER", "u2")
    estate = _estate({"u1": hostile, "u2": "ben@example.org"}, {"g1": "web", "empty": "e"}, also)

    outcome = _write(estate, tmp_path, Options(max_overgrant=2))

    report = (tmp_path / "report.md").read_text()
    assert "<img" not in report
    assert "| &lt;img src=x onerror=alert(1)&gt;\\|x | ReadOnly | api (333333333333) |" in report
    assert "- Dead" in report  # and the dead set is listed
    assert len(outcome.mining.roles) == 1


def _bucket_set(arn: str, name: str, effect_key: str) -> PermissionSet:
    inline = (
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", '
        f'"{effect_key}": "arn:aws:s3:::logs-111111111111/*", '
        '"Condition": {"StringEquals": {"aws:ResourceAccount": "111111111111"}}}]}'
    )
    return PermissionSet(arn, name, "PT4H", (), (), inline)


def test_consolidating_grants_one_proposed_permission_set_per_role(tmp_path: Path) -> None:
    estate = _estate({"u1": "ann@example.com", "u2": "ben@example.org"}, {"g1": "web"})
    sets = dict(estate.permission_sets)
    sets["arn:ps/logs"] = _bucket_set("arn:ps/logs", "Logs-111111111111", "NotResource")
    both = (*estate.assignments, Assignment("111111111111", "arn:ps/logs", "GROUP", "g1"))
    estate = Estate(sets, estate.accounts, both, estate.people, estate.groups, estate.members)

    outcome = _write(estate, tmp_path, Options(consolidate=True))

    config = load_config(tmp_path / "roles.yaml", tmp_path / "approvers.yaml", {"aws": AwsTarget})
    web = outcome.drafts.names[outcome.mining.assignments["ann@example.com"][0]]
    created, document = outcome.drafts.proposals[web]
    assert [t.permission_set for t in config.targets[(web, "prod")]] == [created]
    written = json.loads((tmp_path / "permission-sets" / f"{web}.json").read_text())
    assert written == document and created == document["Name"] == f"jit-{web}"[:32]
    assert document["ManagedPolicies"] == [READ_ONLY]
    assert document["SessionDuration"] == "PT4H"  # the longest of the sets it replaces
    assert document["ReplacesPermissionSets"] == ["Logs-111111111111", "ReadOnly"]
    # The account the set was copied for becomes the account the session is in, and a
    # NotResource stays a NotResource (an Allow on every other resource otherwise).
    assert document["InlinePolicy"]["Statement"] == [
        {
            "Effect": "Allow",
            "Action": ["s3:getobject"],
            "NotResource": ["arn:aws:s3:::logs-${aws:PrincipalAccount}/*"],
            "Condition": {"StringEquals": {"aws:ResourceAccount": "${aws:PrincipalAccount}"}},
        }
    ]


def test_standing_csv_lists_each_assignment_a_role_replaces_with_that_role(
    tmp_path: Path,
) -> None:
    formula = '=HYPERLINK("http://evil")'
    estate = _estate({"u1": "ann@example.com", "u2": "ben@example.org"}, {"g1": formula})

    outcome = _write(estate, tmp_path)

    with (tmp_path / "standing.csv").open(newline="") as rows:
        standing = list(csv.DictReader(rows))
    names = {p: outcome.drafts.names[r[0]] for p, r in outcome.mining.assignments.items()}
    assert [(r["account_id"], r["principal"], r["covered_by"]) for r in standing] == [
        # a spreadsheet shows the group's name as text instead of running it
        ("111111111111", f"'{formula}", names["ann@example.com"]),
        ("222222222222", "ben@example.org", names["ben@example.org"]),
        # the empty group reaches no person: what it serves is not jit-bot's to replace
    ]
    assert "2 of 3 assignments" in (tmp_path / "report.md").read_text()
