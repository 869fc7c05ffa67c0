"""Who the local workspace's people are: the bundled example's list, or everyone a config
of one's own names (bot/local/people.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from bot.config.models import USER_ID
from bot.local import assembly
from bot.local.people import from_config, from_people_file
from bot.local.stand_ins import StandIn

ROLES = """
roles:
  deploy:
    max_duration: 1h
    requesters: ["@engineering", U0DEV]
    environments:
      prod:
        - provider: webhook
          name: deployer
          url: https://hooks.example.com/jit
          secret_env: DEPLOY_HOOK_KEY
"""
APPROVERS = """
groups:
  leads: [U0LEAD, Boss@Acme.test, "@sre"]
rules:
  - approvers: [leads]
settings:
  admins: [ops@acme.test]
  allowed_email_domains: ["@acme.test"]
"""


def _config(tmp_path: Path) -> tuple[Path, Path]:
    roles, approvers = tmp_path / "roles.yaml", tmp_path / "approvers.yaml"
    roles.write_text(textwrap.dedent(ROLES))
    approvers.write_text(textwrap.dedent(APPROVERS))
    return roles, approvers


def test_everyone_a_config_names_is_a_person_in_its_allowed_domain(tmp_path: Path) -> None:
    people = from_config(*_config(tmp_path))
    by_email = {p.email: p for p in people}

    assert set(by_email) == {
        "requester@acme.test",
        "u0lead@acme.test",
        "boss@acme.test",
        "sre-member@acme.test",
        "ops@acme.test",
        "engineering-member@acme.test",
        "u0dev@acme.test",
    }
    assert by_email["u0lead@acme.test"].id == "U0LEAD"
    assert "approver (leads)" in by_email["boss@acme.test"].title
    assert by_email["ops@acme.test"].title == "admin"
    assert all(USER_ID.match(p.id) for p in people)
    assert len({p.id for p in people}) == len(people.members)


def test_the_first_person_may_request_through_every_requester_group(tmp_path: Path) -> None:
    people = from_config(*_config(tmp_path))

    first = people.members[0]
    assert first.groups == ("engineering",)
    assert people.groups() == {
        "engineering": [first.id, next(p.id for p in people if p.name == "engineering-member")],
        "sre": [next(p.id for p in people if p.name == "sre-member")],
    }


def test_an_unreadable_config_gives_just_the_requester_and_leaves_the_errors_to_the_bot(
    tmp_path: Path,
) -> None:
    roles, approvers = tmp_path / "roles.yaml", tmp_path / "approvers.yaml"
    roles.write_text("roles: [")
    approvers.write_text("- 1\n")

    assert [p.email for p in from_config(roles, approvers)] == ["requester@example.com"]


def test_the_bundled_example_lists_a_requester_two_approvers_and_a_security_lead() -> None:
    people = from_people_file(assembly.EXAMPLE / "people.yaml")

    assert [p.name for p in people] == ["ada", "grace", "linus", "sam"]
    assert people.groups()["sre-leads"] == ["U0GRACE", "U0LINUS"]


def test_a_config_of_ones_own_is_taken_only_when_named(tmp_path: Path) -> None:
    _config(tmp_path)  # a roles.yaml and approvers.yaml in the working directory
    assert assembly.choose_config({}, tmp_path).bundled  # a checkout's sample is not named

    own = assembly.choose_config(
        {"JIT_ROLES_FILE": "roles.yaml", "JIT_APPROVERS_FILE": "approvers.yaml"}, tmp_path
    )
    assert not own.bundled and own.roles_file == tmp_path / "roles.yaml"
    (tmp_path / "elsewhere.yaml").write_text((tmp_path / "roles.yaml").read_text())
    chosen = assembly.choose_config({"JIT_ROLES_FILE": "elsewhere.yaml"}, tmp_path)
    assert chosen.roles_file == tmp_path / "elsewhere.yaml"
    assert chosen.approvers_file == tmp_path / "approvers.yaml"
    # A named file that is not there is the bot's to report, not a reason for the example.
    missing = assembly.choose_config({"JIT_ROLES_FILE": "nowhere.yaml"}, tmp_path)
    assert not missing.bundled and missing.roles_file == tmp_path / "nowhere.yaml"


def test_local_mode_grants_only_at_the_receiver_with_the_runs_own_key(tmp_path: Path) -> None:
    roles, approvers = _config(tmp_path)
    own = assembly.choose_config(
        {"JIT_ROLES_FILE": str(roles), "JIT_APPROVERS_FILE": str(approvers)}, tmp_path
    )
    bundled = assembly.choose_config({}, tmp_path)
    credentials = assembly.Credentials.new()
    env = {
        "JIT_LOCAL_WEBHOOK_SECRET": "set-in-the-shell",
        "AWS_PROFILE": "production",
        "JIT_AUDIT_KEY_FILE": "/run/secrets/production-audit-key",
    }
    receiver = "http://127.0.0.1:1/jit"

    mine = assembly.assemble(env, own, "http://127.0.0.1:1/api/", receiver, credentials, tmp_path)
    example = assembly.assemble(env, bundled, "http://x/api/", receiver, credentials, tmp_path)

    # Every provider a deployment has is a stand-in sending to the receiver; the bundled
    # example, whose targets name the receiver, has the real webhook provider only.
    assert sorted(mine.providers) == [
        "aws",
        "azure",
        "gcp",
        "kubernetes",
        "mysql",
        "postgresql",
        "webhook",
    ]
    assert all(isinstance(p, StandIn) for p in mine.providers.values())
    assert list(example.providers) == ["webhook"]
    assert not isinstance(example.providers["webhook"], StandIn)
    # The receiver checks this run's key, whatever the shell had set.
    assert mine.environ["JIT_LOCAL_WEBHOOK_SECRET"] == credentials.webhook_secret
    assert mine.settings.database_url == f"sqlite:///{tmp_path / 'jit-bot-local.db'}"
    assert mine.settings.audit_channel == assembly.AUDIT_CHANNEL
    # Its trail is signed with the run's own key, never a deployment's.
    assert mine.settings.audit_key == credentials.audit_key
    assert mine.settings.audit_key_file is None
    assert credentials.webhook_secret not in repr(credentials)
    assert credentials.audit_key not in repr(credentials)
