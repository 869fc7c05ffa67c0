"""``jit-bot import azure`` against the Azure fake (ARM and Microsoft Graph over HTTPS,
reached through the official clients), run as a process the way an operator runs it: a
chaotic estate in, drafts that pass the bot's own loader out, and every assignment held
by a person accounted for. The estate is seeded once and only read, so one import serves
the module."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.app import default_providers, load_checked_config
from bot.settings import Settings
from tests.fakes.azure import CLIENT_SECRET, OTHER_SUBSCRIPTION, SUBSCRIPTION, Call, FakeAzure
from tests.fakes.azure_estate import APP_DEV, DATA_DEV, DEV, PROD, ChaoticAzure, seed_chaos
from tests.fakes.processes import run_cli

Grant = tuple[str, str]  # (role definition name, lower-case scope)
SUBSCRIPTIONS = ["--subscription", SUBSCRIPTION, "--subscription", OTHER_SUBSCRIPTION.upper()]


@dataclass(frozen=True)
class Run:
    chaos: ChaoticAzure
    out: Path
    stdout: str
    calls: list[Call]  # what the import asked of Azure


@pytest.fixture(scope="module")
def run(azure_server: FakeAzure, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    chaos = seed_chaos(azure_server)
    azure_server.set_page_size(1)  # every list takes as many pages as it has items
    out = tmp_path_factory.mktemp("azure") / "out"
    done = run_cli(
        ["import", "azure", *SUBSCRIPTIONS, "--output", str(out)], azure_server.environ()
    )
    assert done.returncode == 0, done.stderr
    yield Run(chaos, out, done.stdout, azure_server.calls)
    assert not azure_server.internal_errors, azure_server.internal_errors


def _import(fake: FakeAzure, out: Path, *args: str, **environ: str) -> Any:
    return run_cli(
        ["import", "azure", *SUBSCRIPTIONS, "--output", str(out), *args],
        fake.environ() | environ,
    )


def _read(out: Path) -> tuple[dict[str, Any], list[dict[str, str]]]:
    roles = yaml.safe_load((out / "roles.yaml").read_text())["roles"]
    with (out / "mapping.csv").open(newline="") as rows:
        return roles, list(csv.DictReader(rows))


def _grants(role: dict[str, Any], environment: str) -> set[Grant]:
    return {
        (t["role"], scope.lower())
        for t in role["environments"][environment]
        for scope in t["scopes"]
    }


def test_the_drafts_pass_the_bots_own_loader_and_its_live_check(
    azure_server: FakeAzure, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in azure_server.environ().items():
        monkeypatch.setenv(name, value)  # DefaultAzureCredential's, as the bot's process has
    settings = Settings(
        bot_token="",
        signing_secret="",
        roles_file=str(run.out / "roles.yaml"),
        approvers_file=str(run.out / "approvers.yaml"),
    )
    for live in (False, True):
        config, _ = load_checked_config(
            settings, default_providers(azure_server.environ()), live=live
        )
        assert len(config.roles) == 5
        targets = [t for ts in config.targets.values() for t in ts]
        assert {t.provider for t in targets} == {"azure"}
        assert {t.mode for t in targets} == {"pim"}  # type: ignore[attr-defined]


def test_mapping_reproduces_every_assignment_held_by_a_person_and_no_more(
    azure_server: FakeAzure, run: Run
) -> None:
    roles, rows = _read(run.out)
    held: dict[str, set[Grant]] = {}
    for person, scope, role in azure_server.people_holding():
        held.setdefault(person, set()).add((role, scope.lower()))

    mapped: dict[str, set[Grant]] = {}
    given: dict[str, set[Grant]] = {}
    for row in rows:
        grant = (row["role_definition"], row["scope"].lower())
        assert grant in _grants(roles[row["role"]], row["environment"]), row
        mapped.setdefault(row["person"], set()).add(grant)
        given.setdefault(row["person"], set()).update(
            _grants(roles[row["role"]], row["environment"])
        )
    assert mapped == held
    assert len({(r["scope"], r["role_definition"], r["principal"]) for r in rows}) == (
        run.chaos.people_assignments
    )
    # frank is in sre through the nested oncall group, and named by his mail
    assert ("Reader", PROD) in mapped["frank@example.com"]
    assert given == held  # nobody is given more than they hold today


def test_per_subscription_copies_and_duplicates_merge(run: Run) -> None:
    roles, _ = _read(run.out)
    sources_of = {
        name: {t["role"] for ts in role["environments"].values() for t in ts}
        for name, role in roles.items()
    }
    copies = {"VM Operator (Contoso Production)", f"vm operator - {OTHER_SUBSCRIPTION}"}
    for together in (copies, {"Storage Key Reader", "Log Query", "Web App Restart"}):
        assert any(together <= sources for sources in sources_of.values())
    assert not any("Legacy Backup Operator" in sources for sources in sources_of.values())
    report = (run.out / "report.md").read_text()
    assert "| Break Glass Admin, Owner | Owner |" in report
    assert f"| VM Operator (Contoso Production), vm operator - {OTHER_SUBSCRIPTION} | " in report


def test_the_report_counts_the_estate_and_names_what_was_skipped(run: Run) -> None:
    report = (run.out / "report.md").read_text()
    headline = "10 role definitions × 6 scopes (11 assignments, 6 people) → 5 roles"

    assert run.stdout.strip() == headline
    assert f"**{headline}**" in report
    assert "- 1 role assignment(s) to service principals (applications, managed identities) " in (
        report
    )
    assert "- 1 role assignment(s) to principals of other tenants skipped." in report
    assert "- PIM eligible assignments were not read" in report
    assert "- Legacy Backup Operator" in report


def test_the_import_only_reads_and_follows_every_list_to_its_last_page(run: Run) -> None:
    assert {c.method for c in run.calls if "/oauth2/" not in c.path} == {"GET"}
    paged = {c.path.rsplit("/", 1)[-1].lower() for c in run.calls if "$skiptoken" in c.query}
    assert paged == {"resourcegroups", "roledefinitions", "roleassignments", "microsoft.graph.user"}


def test_a_throttled_read_is_retried_as_the_provider_retries(
    azure_server: FakeAzure, run: Run, tmp_path: Path
) -> None:
    azure_server.fail_next(429, "TooManyRequests", path_contains="/resourcegroups", retry_after="0")
    azure_server.fail_next(
        429, "TooManyRequests", path_contains="/transitiveMembers", retry_after="0"
    )
    before = len(azure_server.calls)

    done = _import(azure_server, tmp_path)

    assert done.returncode == 0, done.stderr
    throttled = [c for c in azure_server.calls[before:] if c.status == 429]
    assert {c.path.rsplit("/", 1)[-1].lower() for c in throttled} == {
        "resourcegroups",
        "microsoft.graph.user",
    }
    assert (tmp_path / "mapping.csv").read_text() == (run.out / "mapping.csv").read_text()


def test_each_role_proposes_one_custom_role_definition(run: Run) -> None:
    roles, _ = _read(run.out)
    definitions = {p.stem: json.loads(p.read_text()) for p in (run.out / "custom-roles").iterdir()}

    assert set(definitions) == set(roles)
    developers = definitions["developers"]
    assert developers["roleName"] == "jit-bot developers"
    assert developers["assignableScopes"] == [DEV]
    assert developers["permissions"] == [
        {
            "actions": [
                "microsoft.operationalinsights/workspaces/query/read",
                "microsoft.storage/storageaccounts/listkeys/action",
                "microsoft.web/sites/restart/action",
            ],
            "notActions": [],
            "dataActions": [],
            "notDataActions": [],
        }
    ]
    assert definitions["sre"]["assignableScopes"] == [PROD, DEV]


def test_consolidated_drafts_grant_through_the_proposed_roles_and_load(
    azure_server: FakeAzure, run: Run, tmp_path: Path
) -> None:
    done = _import(azure_server, tmp_path, "--consolidate")

    assert done.returncode == 0, done.stderr
    roles = yaml.safe_load((tmp_path / "roles.yaml").read_text())["roles"]
    assert {t["role"] for t in roles["sre"]["environments"]["contoso-dev"]} == {"jit-bot sre"}
    settings = Settings(
        bot_token="",
        signing_secret="",
        roles_file=str(tmp_path / "roles.yaml"),
        approvers_file=str(tmp_path / "approvers.yaml"),
    )
    config, _ = load_checked_config(settings, default_providers(azure_server.environ()))
    assert len(config.roles) == 5


def test_environments_from_a_tag_prefer_the_resource_groups_own(
    azure_server: FakeAzure, run: Run, tmp_path: Path
) -> None:
    done = _import(azure_server, tmp_path, "--environments", "tag:env")

    assert done.returncode == 0, done.stderr
    with (tmp_path / "mapping.csv").open(newline="") as rows:
        found = {(r["scope"], r["environment"]) for r in csv.DictReader(rows)}
    assert (DATA_DEV, "data") in found  # its own tag
    assert (APP_DEV, "dev") in found  # untagged: its subscription's
    assert (PROD, "prod") in found


def test_an_environments_file_names_subscriptions_and_the_nearest_line_wins(
    azure_server: FakeAzure, run: Run, tmp_path: Path
) -> None:
    mapping = tmp_path / "envs.txt"
    mapping.write_text(f"# ours\n{SUBSCRIPTION} production\n{DEV} dev\n{DATA_DEV.upper()}, data\n")

    done = _import(azure_server, tmp_path / "out", "--environments", str(mapping))

    assert done.returncode == 0, done.stderr
    with (tmp_path / "out" / "mapping.csv").open(newline="") as rows:
        found = {(r["scope"], r["environment"]) for r in csv.DictReader(rows)}
    assert {(PROD, "production"), (APP_DEV, "dev"), (DATA_DEV, "data")} <= found


@pytest.mark.parametrize(
    ("args", "environ", "said"),
    [
        pytest.param(
            ["--environments", "{envs}"],
            {},
            "jit-bot import azure: {envs}:2: 'prod is production'\nexpected '<scope> ",
            id="bad_environments_file",
        ),
        pytest.param(
            [],
            {"AZURE_CLIENT_SECRET": f"not-{CLIENT_SECRET}"},
            "jit-bot import azure: cannot read the Azure estate: Azure sign-in for reading "
            f"subscription {SUBSCRIPTION} failed: ",
            id="refused_credentials",
        ),
        pytest.param(
            ["--subscription", "00000000-0000-4000-8000-0000000000ff"],
            {},
            "jit-bot import azure: cannot read the Azure estate: Azure reading subscription "
            "00000000-0000-4000-8000-0000000000ff: SubscriptionNotFound: The subscription",
            id="no_such_subscription",
        ),
    ],
)
def test_what_cannot_be_used_is_one_clear_line_exit_2_and_nothing_written(
    azure_server: FakeAzure,
    run: Run,
    tmp_path: Path,
    args: list[str],
    environ: dict[str, str],
    said: str,
) -> None:
    envs = tmp_path / "envs.txt"
    envs.write_text(f"{PROD} production\nprod is production\n")
    args = [a.format(envs=envs) for a in args]

    done = _import(azure_server, tmp_path / "out", *args, **environ)

    assert done.returncode == 2
    assert said.format(envs=envs) in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("jit-bot import")]
    assert len(errors) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
