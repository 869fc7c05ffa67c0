"""AWS IAM Identity Center end to end: signed Slack requests → approval → the assignment
exists in AWS (moto in server mode, over HTTP) → expiry → it is gone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import JitConfig
from providers.aws import AwsClients, AwsProvider
from providers.fake import FakeProvider
from tests.conftest import ALICE, APPROVERS_YAML, BOB, MALLORY, SEC1, Bot, stop
from tests.e2e.helpers import click, latest, submit
from tests.fakes.aws import MotoAws, Seeded
from tests.fakes.processes import run_cli
from tests.kit.configs import roles_yaml, target

FAKE_DEV = """
        - provider: fake
          resource: db-dev"""


def _roles(seeded: Seeded, *, admin: str = "Admin", dev: str = FAKE_DEV) -> str:
    shared = f'["{seeded.accounts["shared"]}"]'
    return roles_yaml(
        prod=target(
            "aws",
            permission_set="ProdSupport",
            accounts=shared,
            organizational_units=f'["{seeded.ous["prod"]}"]',
        ),
        staging=target("aws", permission_set="ProdSupport", accounts=shared),
        db_prod=target("aws", permission_set=admin, accounts=f'["{seeded.accounts["prod-a"]}"]'),
        db_dev=dev,
    )


@pytest.fixture
def aws_bot(
    make_bot: Callable[..., Bot], moto: MotoAws, aws: Seeded, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Bot]:
    """A bot whose aws provider is built as `jit-bot serve` builds it: from an environment
    naming moto's server in AWS_ENDPOINT_URL, credentials from boto3's default chain."""
    for name, value in moto.environ().items():
        monkeypatch.setenv(name, value)

    def start(approvers: str = APPROVERS_YAML) -> Bot:
        clients = AwsClients.from_environ(moto.environ())
        providers = {"aws": AwsProvider(clients, sleep=lambda _: None), "fake": FakeProvider()}
        return make_bot(roles=_roles(aws), approvers=approvers, providers=providers)

    return start


def _held(moto: MotoAws, aws: Seeded) -> set[tuple[str, str, str]]:
    return moto.assignments(aws)


ALL_PROD = {"shared", "prod-a", "prod-b", "prod-eu-1"}


def test_an_approved_request_assigns_the_permission_set_on_every_account_until_expiry(
    aws_bot: Callable[..., Bot], moto: MotoAws, aws: Seeded
) -> None:
    bot = aws_bot()
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-42")
    dm = str(bot.dms_to(BOB)[-1]["blocks"])
    for name in ALL_PROD:  # the OU (and the OU inside it) expanded at request time
        assert f"AWS account {aws.accounts[name]}: permission set `ProdSupport`" in dm
    assert _held(moto, aws) == set()

    click(bot, BOB, "approve", request_id)
    assert bot.service.get(request_id).status == "active"
    assert _held(moto, aws) == {("alice@example.com", n, "ProdSupport") for n in ALL_PROD}

    bot.clock.advance(timedelta(hours=1))
    bot.service.sweep()
    bot.settle()
    assert bot.service.get(request_id).status == "revoked"
    assert _held(moto, aws) == set()


def test_a_requester_unknown_to_identity_center_gets_nothing_and_everyone_is_told(
    aws_bot: Callable[..., Bot], moto: MotoAws, aws: Seeded
) -> None:
    bot = aws_bot()
    request_id = submit(bot, MALLORY, "db-admin prod 1h fix data")  # no Identity Center user
    click(bot, BOB, "approve", request_id)
    click(bot, SEC1, "approve", request_id)
    request = bot.service.get(request_id)
    assert request.status == "failed"
    assert "no IAM Identity Center user" in (request.error or "")
    assert "mallory@example.com" in (request.error or "")
    assert "no IAM Identity Center user" in str(bot.dms_to(MALLORY)[-1]["blocks"])
    assert "no IAM Identity Center user" in str(latest(bot.dms_to(BOB)[0])["blocks"])
    assert _held(moto, aws) == set()


def test_standing_access_is_kept_when_the_grant_ends(
    aws_bot: Callable[..., Bot], moto: MotoAws, aws: Seeded
) -> None:
    moto.client("sso-admin").create_account_assignment(
        InstanceArn=aws.instance_arn,
        TargetId=aws.accounts["shared"],
        TargetType="AWS_ACCOUNT",
        PermissionSetArn=aws.permission_sets["ProdSupport"],
        PrincipalType="USER",
        PrincipalId=aws.users["alice@example.com"],
    )
    bot = aws_bot()
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-1")
    click(bot, SEC1, "approve", request_id)
    events = [e.action for e in bot.service.audit_events(request_id)]
    assert "standing_access_found" in events
    click(bot, ALICE, "end_access", request_id)
    assert bot.service.get(request_id).status == "revoked"
    assert _held(moto, aws) == {("alice@example.com", "shared", "ProdSupport")}


def test_an_assignment_another_active_grant_needs_is_kept_until_that_grant_ends(
    aws_bot: Callable[..., Bot], moto: MotoAws, aws: Seeded
) -> None:
    bot = aws_bot()
    first = submit(bot, ALICE, "prod-support staging 1h INC-1")
    click(bot, SEC1, "approve", first)
    second = submit(bot, ALICE, "prod-support staging 3h INC-2")
    click(bot, SEC1, "approve", second)
    # The second grant found the first one's assignment; that is not standing access.
    assert "standing_access_found" not in [e.action for e in bot.service.audit_events(second)]
    shared = {("alice@example.com", "shared", "ProdSupport")}
    bot.clock.advance(timedelta(hours=1))
    bot.service.sweep()
    assert bot.service.get(first).status == "revoked"
    assert _held(moto, aws) == shared
    bot.clock.advance(timedelta(hours=2))
    bot.service.sweep()
    assert bot.service.get(second).status == "revoked"
    assert _held(moto, aws) == set()


def test_revocation_holds_across_a_restart(
    aws_bot: Callable[..., Bot], moto: MotoAws, aws: Seeded
) -> None:
    first = aws_bot()
    request_id = submit(first, ALICE, "prod-support staging 1h INC-1")
    click(first, SEC1, "approve", request_id)
    stop(first)
    first.clock.advance(timedelta(hours=2))
    second = aws_bot()
    second.slack.wait_for(lambda: second.service.get(request_id).status == "revoked")
    assert _held(moto, aws) == set()


def test_jit_sync_makes_a_newly_added_account_count_at_once(
    aws_bot: Callable[..., Bot], moto: MotoAws, aws: Seeded
) -> None:
    bot = aws_bot()
    submit(bot, ALICE, "prod-support prod 1h INC-1")
    org = moto.client("organizations")
    created = org.create_account(Email="new@aws.example.com", AccountName="prod-new")
    new_account = created["CreateAccountStatus"]["AccountId"]
    root = org.list_roots()["Roots"][0]["Id"]
    org.move_account(
        AccountId=new_account, SourceParentId=root, DestinationParentId=aws.ous["prod"]
    )
    submit(bot, ALICE, "prod-support prod 1h INC-2")
    assert new_account not in str(bot.dms_to(BOB)[-1]["blocks"])  # still cached

    assert "Only approvers and admins" in bot.command(MALLORY, "sync")["text"]
    assert "Caches refreshed" in bot.command(BOB, "sync")["text"]
    submit(bot, ALICE, "prod-support prod 1h INC-3")
    assert new_account in str(bot.dms_to(BOB)[-1]["blocks"])
    assert "sync" in [e.action for e in bot.service.audit_events()]


def _drift_events(bot: Bot) -> list[dict]:  # type: ignore[type-arg]
    return [e.details for e in bot.service.audit_events() if e.action == "drift_detected"]


def test_drift_reports_unexplained_assignments_and_grants_aws_no_longer_has(
    aws_bot: Callable[..., Bot], moto: MotoAws, aws: Seeded
) -> None:
    bot = aws_bot()
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-1")
    click(bot, SEC1, "approve", request_id)
    assert bot.runtime.drift.run() == []
    sso = moto.client("sso-admin")
    # Someone assigns Bob by hand, and Alice's assignment is removed behind our back.
    assignment = {
        "InstanceArn": aws.instance_arn,
        "TargetId": aws.accounts["prod-b"],
        "TargetType": "AWS_ACCOUNT",
        "PermissionSetArn": aws.permission_sets["ProdSupport"],
        "PrincipalType": "USER",
    }
    sso.create_account_assignment(**assignment, PrincipalId=aws.users["bob@example.com"])
    sso.delete_account_assignment(
        **{**assignment, "TargetId": aws.accounts["shared"]},
        PrincipalId=aws.users["alice@example.com"],
    )
    findings = bot.runtime.drift.run()
    assert {(f.kind, f.email) for f in findings} == {
        ("unexplained", "bob@example.com"),
        ("missing", "alice@example.com"),
    }
    [event] = _drift_events(bot)
    assert aws.accounts["prod-b"] in event["unexplained"][0]
    assert request_id in event["missing"][0]
    posts = bot.audit_posts()
    assert any("drift_detected" in p and "bob@example.com" in p for p in posts)
    bot.runtime.drift.run()
    assert len(_drift_events(bot)) == 1  # the same drift is not reported twice
    assert ("bob@example.com", "prod-b", "ProdSupport") in _held(moto, aws)


def test_revoke_unknown_removes_assignments_nobody_explains(
    aws_bot: Callable[..., Bot], moto: MotoAws, aws: Seeded
) -> None:
    bot = aws_bot(APPROVERS_YAML.replace("settings:", "settings:\n  revoke_unknown: true"))
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-1")
    click(bot, SEC1, "approve", request_id)
    moto.client("sso-admin").create_account_assignment(
        InstanceArn=aws.instance_arn,
        TargetId=aws.accounts["prod-b"],
        TargetType="AWS_ACCOUNT",
        PermissionSetArn=aws.permission_sets["ProdSupport"],
        PrincipalType="USER",
        PrincipalId=aws.users["carol@example.com"],
    )
    bot.runtime.drift.run()
    assert _held(moto, aws) == {("alice@example.com", "shared", "ProdSupport")}
    assert "drift_revoked" in [e.action for e in bot.service.audit_events()]


def test_the_example_roles_file_has_an_aws_target_that_validates() -> None:
    from bot.app import default_providers
    from bot.config import load_config
    from providers.aws import AwsTarget

    root = Path(__file__).resolve().parents[2]
    models = {name: p.target_model for name, p in default_providers({}).items()}
    config: JitConfig = load_config(root / "roles.yaml", root / "approvers.yaml", models)
    assert any(isinstance(t, AwsTarget) for ts in config.targets.values() for t in ts)


def test_check_live_verifies_aws_targets_and_warns_about_long_sessions(
    moto: MotoAws, aws: Seeded, tmp_path: Path
) -> None:
    only_aws = f"""
        - provider: aws
          permission_set: ReadOnly
          accounts: ["{aws.accounts["shared"]}"]"""
    (tmp_path / "approvers.yaml").write_text(APPROVERS_YAML)
    (tmp_path / "roles.yaml").write_text(_roles(aws, dev=only_aws))
    done = run_cli(["check", "--live"], moto.environ(), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "prod-support" in done.stdout
    assert "permission set `Admin` has a session duration of 8:00:00" in done.stderr
    assert "ProdSupport` has a session" not in done.stderr

    (tmp_path / "roles.yaml").write_text(_roles(aws, admin="Admni", dev=only_aws))
    done = run_cli(["check", "--live"], moto.environ(), tmp_path)
    assert done.returncode == 2
    assert "no permission set named `Admni`" in done.stderr
    assert "roles.db-admin.environments.prod[0]" in done.stderr


def test_jit_bot_sync_makes_a_running_bot_re_read_accounts(
    aws_bot: Callable[..., Bot], moto: MotoAws, aws: Seeded, tmp_path: Path
) -> None:
    bot = aws_bot()
    submit(bot, ALICE, "prod-support prod 1h INC-1")
    org = moto.client("organizations")
    new_account = org.create_account(Email="n@aws.example.com", AccountName="n")[
        "CreateAccountStatus"
    ]["AccountId"]
    root = org.list_roots()["Roots"][0]["Id"]
    org.move_account(
        AccountId=new_account, SourceParentId=root, DestinationParentId=aws.ous["prod"]
    )
    done = run_cli(["sync"], {"DATABASE_URL": bot.settings.database_url}, tmp_path)
    assert done.returncode == 0, done.stderr
    submit(bot, ALICE, "prod-support prod 1h INC-2")
    assert new_account in str(bot.dms_to(BOB)[-1]["blocks"])
    assert ("cli", "sync") in [(e.actor, e.action) for e in bot.service.audit_events()]
