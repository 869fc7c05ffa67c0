"""``jit-bot import aws`` against moto in server mode, run as a process over HTTP the way
an operator runs it: a chaotic estate in, drafts that pass the bot's own loader out, and
every assignment of today accounted for."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from moto import settings as moto_settings

from bot.app import default_providers, load_checked_config
from bot.settings import Settings
from tests.fakes.aws import MotoAws
from tests.fakes.aws_estate import ChaoticEstate, seed_chaos
from tests.fakes.processes import run_cli

Grant = tuple[str, str]  # (permission set name, account id)


# The import only reads: every test of this module shares one seeded estate and one run.
@pytest.fixture(scope="module")
def chaos(moto: MotoAws) -> ChaoticEstate:
    return seed_chaos(moto)


@pytest.fixture(scope="module")
def imported(
    moto: MotoAws, chaos: ChaoticEstate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    where = tmp_path_factory.mktemp("import")
    done = run_cli(["import", "aws", "--output", str(where / "out")], moto.environ())
    assert done.returncode == 0, done.stderr
    (where / "stdout").write_text(done.stdout)
    yield where / "out"


def _held_today(moto: MotoAws, chaos: ChaoticEstate) -> dict[str, set[Grant]]:
    """Each person → (permission set, account) they hold, groups expanded, asked of moto."""
    sso, store = moto.client("sso-admin"), moto.client("identitystore")
    emails = {uid: email for email, uid in chaos.users.items()}
    members = {
        gid: [
            m["MemberId"]["UserId"]
            for m in store.list_group_memberships(IdentityStoreId=chaos.store_id, GroupId=gid)[
                "GroupMemberships"
            ]
        ]
        for gid in chaos.groups.values()
    }
    held: dict[str, set[Grant]] = {}
    for ps_name, ps_arn in chaos.permission_sets.items():
        for account_id in chaos.accounts.values():
            for a in sso.list_account_assignments(
                InstanceArn=chaos.instance_arn, AccountId=account_id, PermissionSetArn=ps_arn
            )["AccountAssignments"]:
                ids = (
                    members[a["PrincipalId"]]
                    if a["PrincipalType"] == "GROUP"
                    else [a["PrincipalId"]]
                )
                for uid in ids:
                    held.setdefault(emails[uid], set()).add((ps_name, account_id))
    return held


def _read(out: Path) -> tuple[dict[str, Any], list[dict[str, str]]]:
    roles = yaml.safe_load((out / "roles.yaml").read_text())["roles"]
    with (out / "mapping.csv").open(newline="") as rows:
        return roles, list(csv.DictReader(rows))


def _grants(role: dict[str, Any], environment: str) -> set[Grant]:
    return {
        (t["permission_set"], account)
        for t in role["environments"][environment]
        for account in t["accounts"]
    }


def test_the_drafts_pass_the_bots_own_loader_and_its_live_check(
    moto: MotoAws, imported: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in moto.environ().items():
        monkeypatch.setenv(name, value)  # boto3's default chain, as the bot's process has
    settings = Settings(
        bot_token="",
        signing_secret="",
        roles_file=str(imported / "roles.yaml"),
        approvers_file=str(imported / "approvers.yaml"),
    )
    for live in (False, True):
        config, _ = load_checked_config(settings, default_providers(moto.environ()), live=live)
        assert len(config.roles) == 4
        assert {t.provider for ts in config.targets.values() for t in ts} == {"aws"}


def test_mapping_reproduces_every_assignment_and_nobody_is_given_more_than_today(
    moto: MotoAws, chaos: ChaoticEstate, imported: Path
) -> None:
    roles, rows = _read(imported)
    held = _held_today(moto, chaos)

    mapped: dict[str, set[Grant]] = {}
    given: dict[str, set[Grant]] = {}
    for row in rows:
        grant = (row["permission_set"], row["account_id"])
        assert grant in _grants(roles[row["role"]], row["environment"]), row
        mapped.setdefault(row["person"], set()).add(grant)
        given.setdefault(row["person"], set()).update(
            _grants(roles[row["role"]], row["environment"])
        )
    assert mapped == held
    assert len({(r["account_id"], r["permission_set"], r["principal"]) for r in rows}) == (
        chaos.assignments
    )
    # Accounts are the mining's grain: dave holds s3-read-logs on dev-a only, and his
    # roles offer it there only, though others hold it on dev-b as well.
    assert given == held
    report = (imported / "report.md").read_text()
    assert "## Wider than today\n\nNobody" in report


def test_per_account_copies_and_duplicates_become_one_role_each(
    chaos: ChaoticEstate, imported: Path
) -> None:
    roles, _ = _read(imported)
    sets_of = {
        name: {t["permission_set"] for ts in role["environments"].values() for t in ts}
        for name, role in roles.items()
    }
    copies = {f"ProdReadOnly-{chaos.accounts[a]}" for a in ("prod-a", "prod-b")}

    for together in (copies, {"Admin", "AdminCopy"}, {"ec2-stop", "logs-tail"}):
        # the members of a merged group always travel together
        assert all(together <= sets or not together & sets for sets in sets_of.values())
        assert any(together <= sets for sets in sets_of.values())
    assert len(roles) == 4  # the minimum for this estate
    assert not any("Unused" in sets for sets in sets_of.values())
    text = (imported / "roles.yaml").read_text()
    assert all(f"'{account}'" in text for account in chaos.accounts.values() if account in text)


def test_the_report_headline_counts_the_estate_and_the_roles(
    moto: MotoAws, chaos: ChaoticEstate, imported: Path
) -> None:
    accounts = len(moto.client("organizations").list_accounts()["Accounts"])
    headline = (
        f"{len(chaos.permission_sets)} permission sets × {accounts} accounts "
        f"({chaos.assignments} assignments, 5 people) → 4 roles"
    )
    report = (imported / "report.md").read_text()

    assert (imported.parent / "stdout").read_text().strip() == headline
    assert f"**{headline}**" in report
    assert "- Unused" in report  # the dead set
    assert "Admin, AdminCopy" in report
    assert "## Near-duplicates (Jaccard similarity ≥ 0.8)\n\nNone." in report


def test_prod_needs_the_admins_approval_and_dev_holders_are_approved_automatically(
    imported: Path,
) -> None:
    approvers = yaml.safe_load((imported / "approvers.yaml").read_text())

    # alice alone cannot approve her own requests: a Slack user group is proposed beside her
    assert approvers["groups"] == {"aws-admins": ["alice@example.com", "@aws-admins"]}
    for rule in approvers["rules"][:-1]:
        if rule["environments"] == ["prod"]:
            assert rule["approvers"] == ["aws-admins"] and "auto_approve" not in rule
        else:
            assert rule["environments"] == ["dev"] and rule["auto_approve"] is True
            assert set(rule["requesters"]) <= {
                "bob@example.com",
                "carol@example.com",
                "dave@example.com",
            }
    assert approvers["rules"][-1] == {
        "roles": ["*"],
        "environments": ["*"],
        "approvers": ["aws-admins"],
    }


def test_environments_from_a_tag(moto: MotoAws, chaos: ChaoticEstate, tmp_path: Path) -> None:
    done = run_cli(
        ["import", "aws", "--output", str(tmp_path), "--environments", "tag:env"],
        moto.environ(),
    )

    assert done.returncode == 0, done.stderr
    roles = yaml.safe_load((tmp_path / "roles.yaml").read_text())["roles"]
    assert {env for role in roles.values() for env in role["environments"]} == {"prod", "dev"}


def test_an_environments_file_with_a_bad_line_is_named_and_nothing_is_written(
    moto: MotoAws, chaos: ChaoticEstate, tmp_path: Path
) -> None:
    mapping = tmp_path / "envs.txt"
    mapping.write_text(f"{chaos.accounts['prod-a']} prod\nprod-b is production\n")

    done = run_cli(
        ["import", "aws", "--output", str(tmp_path / "out"), "--environments", str(mapping)],
        moto.environ(),
    )

    assert done.returncode == 2
    assert f"{mapping}:2: 'prod-b is production'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_credentials_that_cannot_read_give_a_clear_error_and_exit_2(
    moto: MotoAws, chaos: ChaoticEstate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # moto then checks every request's keys against its IAM, which knows none of ours.
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)

    done = run_cli(["import", "aws", "--output", str(tmp_path / "out")], moto.environ())

    assert done.returncode == 2
    # moto answers sso-admin's refusal in XML where AWS answers JSON, so botocore names
    # it by its HTTP status; the operation and AWS's own words still reach the user.
    assert ("\n" + done.stderr).count(
        "\njit-bot import aws: cannot read the AWS estate: AWS ListInstances: "
    ) == 1
    assert "InvalidClientTokenId" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("profile", "said"),
    [
        pytest.param("", "no AWS credentials found; set AWS_PROFILE", id="none"),
        pytest.param("nope", "AWS credentials: The config profile (nope)", id="no_such_profile"),
    ],
)
def test_missing_credentials_are_said_at_once(tmp_path: Path, profile: str, said: str) -> None:
    nowhere = str(tmp_path / "none")
    environ = {
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SHARED_CREDENTIALS_FILE": nowhere,
        "AWS_CONFIG_FILE": nowhere,
        "AWS_EC2_METADATA_DISABLED": "true",
    } | ({"AWS_PROFILE": profile} if profile else {})

    done = run_cli(["import", "aws", "--output", str(tmp_path / "out")], environ)

    assert done.returncode == 2
    assert f"jit-bot import aws: {said}" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_permissions_boundary_is_read_and_said_in_the_proposed_set(imported: Path) -> None:
    roles, _ = _read(imported)
    (admin,) = [
        name
        for name, role in roles.items()
        if any(t["permission_set"] == "Admin" for ts in role["environments"].values() for t in ts)
    ]
    proposed = json.loads((imported / "permission-sets" / f"{admin}.json").read_text())

    assert "within boundary no-iam-users" in roles[admin]["description"]
    # alice's role also replaces the ProdReadOnly copies, which have no boundary: one
    # merged set would cap them, or free Admin of its cap, so the proposal asks for review
    assert proposed["ReplacesPermissionSets"][:2] == ["Admin", "AdminCopy"]
    assert proposed["ReviewBoundaries"] == ["none", "customer /no-iam-users"]


def test_roles_are_named_after_the_team_or_the_set_and_one_person_roles_are_exceptions(
    imported: Path,
) -> None:
    roles, rows = _read(imported)
    given: dict[str, set[str]] = {}
    for row in rows:
        given.setdefault(row["role"], set()).add(row["person"])

    # the developers group brings everyone to its role; dave's own s3-read-logs on one
    # account fits no shared role and is named after the set that carries it
    assert given["developers"] == {"bob@example.com", "carol@example.com"}
    assert given["s3-read-logs"] == {"dave@example.com"}
    assert "s3:getobject" in roles["s3-read-logs"]["description"]
    report = (imported / "report.md").read_text()
    exceptions = report.split("## Exceptions (one-person roles)")[1].split("##")[0]
    alone = {name for name, people in given.items() if len(people) == 1}
    assert {
        line.split(" | ")[0].strip("| ") for line in exceptions.splitlines()[6:] if line
    } == alone
    assert "| s3-read-logs | dave@example.com |" in exceptions
