"""``jit-bot import gcp`` against FakeGoogle, run as a process through the official
clients the way an operator runs it: a chaotic resource tree in, drafts that pass the
bot's own loader out, and every binding of a person today accounted for."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.app import default_providers, load_checked_config
from bot.settings import Settings
from tests.fakes.gcp import FakeGoogle
from tests.fakes.gcp_estate import DEV, ORGANIZATION, PROD, ChaoticGcp, seed_gcp_chaos
from tests.fakes.processes import run_cli

Grant = tuple[str, str]  # (IAM role, resource)
BASIC = {"roles/owner", "roles/editor", "roles/viewer"}


def _run(google: FakeGoogle, key: Path, out: Path, *args: str) -> Any:
    return run_cli(["import", "gcp", *args, "--output", str(out)], google.environ(key))


@pytest.fixture(scope="module")
def chaos(google_server: FakeGoogle) -> Iterator[ChaoticGcp]:
    yield seed_gcp_chaos(google_server)
    assert not google_server.internal_errors, google_server.internal_errors


@pytest.fixture(scope="module")
def key(google_server: FakeGoogle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return google_server.service_account_key(tmp_path_factory.mktemp("gcp") / "key.json")


@pytest.fixture(scope="module")
def imported(
    google_server: FakeGoogle,
    chaos: ChaoticGcp,
    key: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The whole organization imported once; the tests below only read the files."""
    out = tmp_path_factory.mktemp("import") / "out"
    done = _run(google_server, key, out, "--organization", ORGANIZATION)
    assert done.returncode == 0, done.stderr
    (out.parent / "stdout").write_text(done.stdout)
    return out


@pytest.fixture
def google(empty_google: FakeGoogle) -> FakeGoogle:
    """A fresh chaotic estate, for the tests that change it or read only part of it."""
    seed_gcp_chaos(empty_google)
    return empty_google


def _read(out: Path) -> tuple[dict[str, Any], list[dict[str, str]]]:
    roles = yaml.safe_load((out / "roles.yaml").read_text())["roles"]
    with (out / "mapping.csv").open(newline="") as rows:
        return roles, list(csv.DictReader(rows))


def _grants(role: dict[str, Any], environment: str | None = None) -> set[Grant]:
    """(IAM role, resource) for every resource each target of the role grants on."""
    found: set[Grant] = set()
    for env, targets in role["environments"].items():
        if environment not in (None, env):
            continue
        for t in targets:
            found |= {(t["role"], f"projects/{p}") for p in t.get("projects", [])}
            found |= {(t["role"], f"folders/{f}") for f in t.get("folders", [])}
            if t.get("organization"):
                found.add((t["role"], f"organizations/{t['organization']}"))
    return found


def _settings(out: Path) -> Settings:
    return Settings(
        bot_token="",
        signing_secret="",
        roles_file=str(out / "roles.yaml"),
        approvers_file=str(out / "approvers.yaml"),
    )


def test_the_drafts_pass_the_bots_own_loader_and_its_live_check(
    google_server: FakeGoogle, imported: Path, key: Path
) -> None:
    providers = default_providers(google_server.environ(key))
    for live in (False, True):
        config, _ = load_checked_config(_settings(imported), providers, live=live)
        assert len(config.roles) == 4
        assert {t.provider for ts in config.targets.values() for t in ts} == {"gcp"}


def test_mapping_reproduces_every_binding_of_a_person_and_nobody_is_given_more_than_today(
    chaos: ChaoticGcp, imported: Path
) -> None:
    roles, rows = _read(imported)
    held: dict[str, set[Grant]] = {}
    for person, role, resource in chaos.held():
        held.setdefault(person, set()).add((role, resource))

    mapped: dict[str, set[Grant]] = {}
    given: dict[str, set[Grant]] = {}
    for row in rows:
        grant = (row["iam_role"], row["resource"])
        if grant[0] in BASIC:  # listed, but no role can grant it
            assert row["person"] == row["role"] == row["environment"] == "", row
            mapped.setdefault(row["principal"], set()).add(grant)
            continue
        mapped.setdefault(row["person"], set()).add(grant)
        assert grant in _grants(roles[row["role"]], row["environment"]), row
        given.setdefault(row["person"], set()).update(_grants(roles[row["role"]]))
    assert mapped == held
    # Resources are the mining's grain: dave holds compute.viewer on acme-dev-a only, and
    # his roles offer it there only, though the developers hold it on acme-dev-b too.
    assert given == {p: {g for g in grants if g[0] not in BASIC} for p, grants in held.items()}
    assert "## Wider than today\n\nNobody" in (imported / "report.md").read_text()


def test_per_project_copies_and_duplicates_become_one_capability_each(
    chaos: ChaoticGcp, imported: Path
) -> None:
    roles, _ = _read(imported)
    through = {
        name: {t["role"] for ts in role["environments"].values() for t in ts}
        for name, role in roles.items()
    }
    copies = {f"projects/{p}/roles/auditor" for p in ("acme-prod-a", "acme-prod-b")}
    org = chaos.organization
    duplicates = {f"{org}/roles/breakGlass", f"{org}/roles/breakGlassCopy"}

    for together in (copies, duplicates):
        assert all(together <= used or not together & used for used in through.values())
        assert any(together <= used for used in through.values())
    report = (imported / "report.md").read_text()
    assert "| projects/acme-prod-a/roles/auditor, projects/acme-prod-b/roles/auditor " in report
    assert "| projects/{project}/roles/auditor |" in report
    assert f"- {org}/roles/legacyKms" in report  # the dead custom role
    for role, (_, drafts) in _custom_roles(imported).items():
        assert drafts["name"] == f"{org}/roles/jit_{role.replace('-', '_')}"
        assert drafts["stage"] == "GA" and drafts["title"] and drafts["includedPermissions"]


def _custom_roles(out: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    return {
        path.stem: (path, json.loads(path.read_text()))
        for path in (out / "custom-roles").glob("*.json")
    }


def test_the_report_says_what_the_import_left_out(imported: Path) -> None:
    report = (imported / "report.md").read_text()
    stdout = (imported.parent / "stdout").read_text().strip()

    assert stdout == "10 roles × 8 resources (14 assignments, 5 people) → 4 roles"
    assert f"**{stdout}**" in report
    assert "- 1 conditional binding member(s) skipped" in report
    assert "(allUsers 1, domain 1, serviceAccount 1)" in report
    assert "deleted, disabled or unknown roles skipped (projects/acme-dev-b/roles/old)" in report
    assert "- 1 binding member(s) of basic roles" in report
    assert "Only alice@example.com holds admin-like access today" in report


def test_groups_the_directory_will_not_tell_are_kept_out_and_said(
    google: FakeGoogle, key: Path, tmp_path: Path
) -> None:
    google.directory_denied = True

    done = _run(google, key, tmp_path / "out", "--organization", ORGANIZATION)

    assert done.returncode == 0, done.stderr
    _, rows = _read(tmp_path / "out")
    assert {r["principal_type"] for r in rows} == {"USER"}
    report = (tmp_path / "out" / "report.md").read_text()
    assert "binding(s) of 2 group(s) kept out (developers@example.com, sre@example.com)" in report


def test_a_folder_is_read_with_what_is_under_it_and_environments_come_from_a_label(
    google: FakeGoogle, key: Path, tmp_path: Path
) -> None:
    done = _run(google, key, tmp_path / "out", "--folder", PROD, "--environments", "label:env")

    assert done.returncode == 0, done.stderr
    roles, rows = _read(tmp_path / "out")
    assert {r["resource"] for r in rows} == {
        f"folders/{PROD}",
        "projects/acme-prod-a",
        "projects/acme-prod-b",
    }
    # the folder's own bindings are in its own environment: folders have no labels
    assert {env for role in roles.values() for env in role["environments"]} == {
        "production",
        "prod",
    }
    # the organization above was readable: the custom roles are proposed there
    assert all(
        d["name"].startswith(f"organizations/{ORGANIZATION}/roles/")
        for _, d in _custom_roles(tmp_path / "out").values()
    )


def test_consolidated_drafts_grant_the_proposed_custom_roles_and_still_load(
    google: FakeGoogle, key: Path, tmp_path: Path
) -> None:
    done = _run(google, key, tmp_path / "out", "--folder", DEV, "--consolidate")

    assert done.returncode == 0, done.stderr
    roles, _ = _read(tmp_path / "out")
    proposed = {d["name"] for _, d in _custom_roles(tmp_path / "out").values()}
    assert {
        t["role"] for _, r in roles.items() for ts in r["environments"].values() for t in ts
    } == (proposed)
    providers = default_providers(google.environ(key))
    config, _ = load_checked_config(_settings(tmp_path / "out"), providers, live=False)
    assert config.roles


def test_an_environments_file_with_a_bad_line_is_named_and_nothing_is_written(
    google: FakeGoogle, key: Path, tmp_path: Path
) -> None:
    mapping = tmp_path / "envs.txt"
    mapping.write_text("projects/acme-prod-a prod\nacme-prod-b is production\n")

    done = _run(
        google, key, tmp_path / "out", "--project", "acme-prod-a", "--environments", str(mapping)
    )

    assert done.returncode == 2
    assert f"jit-bot import gcp: {mapping}:2: 'acme-prod-b is production'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
    assert google.calls == []  # refused before Google was asked


def test_an_environments_file_names_each_resource_with_bindings(
    google: FakeGoogle, key: Path, tmp_path: Path
) -> None:
    mapping = tmp_path / "envs.txt"
    mapping.write_text("projects/acme-dev-a dev  # the first\n")

    done = _run(google, key, tmp_path / "out", "--folder", DEV, "--environments", str(mapping))

    assert done.returncode == 2
    assert "no environment for projects/acme-dev-b (ACME-DEV-B)" in done.stderr
    assert not (tmp_path / "out").exists()
    mapping.write_text("projects/acme-dev-a dev\nprojects/acme-dev-b,dev-b\n")
    done = _run(google, key, tmp_path / "out", "--folder", DEV, "--environments", str(mapping))
    assert done.returncode == 0, done.stderr
    roles, _ = _read(tmp_path / "out")
    assert {env for role in roles.values() for env in role["environments"]} == {"dev", "dev-b"}


def test_credentials_google_refuses_give_one_clear_line_and_exit_2(
    google: FakeGoogle, tmp_path: Path
) -> None:
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(google.service_account_info(key_id="f0f0", known=False)))

    done = _run(google, forged, tmp_path / "out", "--organization", ORGANIZATION)

    assert done.returncode == 2
    assert done.stderr.startswith("jit-bot import gcp: cannot read the GCP estate: organization ")
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("node", "said"),
    [
        pytest.param(
            ("--folder", "999"), "folder 999: get refused (403 PERMISSION_DENIED)", id="folder"
        ),
        pytest.param(
            ("--project", "no-such-project"), "project no-such-project: get refused", id="project"
        ),
    ],
)
def test_a_node_that_does_not_exist_is_named_and_nothing_is_written(
    google: FakeGoogle, key: Path, tmp_path: Path, node: tuple[str, str], said: str
) -> None:
    done = _run(google, key, tmp_path / "out", *node)

    assert done.returncode == 2
    assert f"jit-bot import gcp: cannot read the GCP estate: {said}" in done.stderr
    assert "it may not exist, or the credentials lack the read-only permissions" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        pytest.param(("--folder", "prod"), "'prod' is not a folder id", id="folder"),
        pytest.param(("--organization", "org/1"), "'org/1' is not an organization id", id="org"),
        pytest.param(("--project", "Acme_Prod"), "'Acme_Prod' is not a project id", id="project"),
        pytest.param(("--folder", "1", "--project", "acme-prod"), "not allowed with", id="two"),
        pytest.param((), "one of the arguments --organization --folder --project", id="none"),
    ],
)
def test_the_node_is_one_organization_folder_or_project_id(
    tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    done = run_cli(["import", "gcp", *args, "--output", str(tmp_path / "out")], {})

    assert done.returncode == 2
    assert said in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
