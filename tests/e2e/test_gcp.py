"""GCP end to end: signed Slack requests → approval → an IAM binding that expires by
itself in the project's policy (FakeGoogle, over HTTP and gRPC, reached by the official
clients) → expiry → the binding is gone; approvers and requesters named by Google group.

The bot authenticates as it does in production: Application Default Credentials from a
service-account key file (GOOGLE_APPLICATION_CREDENTIALS) whose token endpoint is the
fake, which refuses every API call that carries no bearer token.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.app import default_providers
from bot.clock import Clock
from bot.config import load_config
from bot.google_groups import SCOPE, GoogleGroups
from providers.gcp import GcpProvider, GcpTarget
from tests.conftest import ALICE, BOB, CAROL, MALLORY, SEC1, Bot
from tests.e2e.helpers import click, submit
from tests.fakes.gcp import THEIRS, FakeGoogle
from tests.fakes.processes import run_cli
from tests.kit.docs import example_targets

ADMIN = "admin@example.com"  # the Workspace user the bot reads groups as

ROLES = """
roles:
  prod-support:
    description: Troubleshoot production services
    max_duration: 4h
    default_duration: 1h
    requesters: ["google:engineering@example.com"]
    environments:
      prod:
        - provider: gcp
          role: roles/logging.viewer
          projects: [acme-prod]
          folders: ["123456789012"]
      staging:
        - provider: gcp
          role: roles/logging.viewer
          projects: [acme-staging]
"""

APPROVERS = """
groups:
  sre-leads: ["google:sre@example.com"]
  security: [USEC1]
rules:
  - roles: [prod-support]
    environments: [prod]
    approvers: [sre-leads]
  - roles: ["*"]
    environments: ["*"]
    approvers: [security]
settings:
  allowed_email_domains: [example.com]
"""


@pytest.fixture
def google(empty_google: FakeGoogle) -> FakeGoogle:
    empty_google.require_auth = True
    empty_google.add_project("acme-prod", {"version": 3, "bindings": THEIRS})
    empty_google.add_project("acme-staging")
    empty_google.add_folder("123456789012")
    empty_google.add_group("sre@example.com", ["bob@example.com", "carol@example.com"])
    empty_google.add_group(
        "engineering@example.com", ["alice@example.com", ("sre@example.com", "GROUP")]
    )
    return empty_google


@pytest.fixture
def google_env(google: FakeGoogle, tmp_path: Path) -> dict[str, str]:
    key = google.service_account_key(tmp_path / "jit-bot-key.json")
    return {**google.environ(key), "JIT_GOOGLE_ADMIN_SUBJECT": ADMIN}


@pytest.fixture
def gcp_bot(
    make_bot: Callable[..., Bot], google_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Bot]:
    """A bot whose gcp provider and Google groups are built by their from_environ, as
    `jit-bot serve` builds them, from an environment that points at the fake."""
    built = GoogleGroups.from_environ

    def from_environ(environ: Any, clock: Clock) -> GoogleGroups:
        return built({**environ, **google_env}, clock)

    # make_bot hands the composition root an empty environment; add the fake's to it.
    monkeypatch.setattr(GoogleGroups, "from_environ", from_environ)

    def start(roles: str = ROLES, approvers: str = APPROVERS) -> Bot:
        providers = {"gcp": GcpProvider.from_environ(google_env)}
        return make_bot(roles=roles, approvers=approvers, providers=providers)

    return start


def _ours(google: FakeGoogle, resource: str) -> list[dict[str, Any]]:
    return [
        b
        for b in google.policy(resource).get("bindings", [])
        if b.get("condition", {}).get("title", "").startswith("jit-bot ")
    ]


def test_an_approved_request_adds_an_expiring_binding_that_is_removed_at_expiry(
    gcp_bot: Callable[..., Bot], google: FakeGoogle
) -> None:
    bot = gcp_bot()
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-42")
    dm = str(bot.dms_to(BOB)[-1]["blocks"])
    assert "GCP project acme-prod: role `roles/logging.viewer`" in dm
    assert "GCP folder 123456789012: role `roles/logging.viewer`" in dm
    assert google.calls_to("setIamPolicy") == []

    click(bot, BOB, "approve", request_id)

    request = bot.service.get(request_id)
    assert request.status == "active"
    assert request.expires_at is not None
    until = request.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    for resource in ("projects/acme-prod", "folders/123456789012"):
        [binding] = _ours(google, resource)
        assert binding["role"] == "roles/logging.viewer"
        assert binding["members"] == ["user:alice@example.com"]
        assert binding["condition"]["title"] == f"jit-bot {request_id}"
        assert binding["condition"]["expression"] == f'request.time < timestamp("{until}")'
        # Google enforces the end even if the bot never comes back.
        assert FakeGoogle.expiry(binding["condition"]) == request.expires_at
    assert google.policy("projects/acme-prod")["bindings"][:2] == THEIRS

    bot.clock.advance(timedelta(hours=1))
    bot.service.sweep()
    bot.settle()

    assert bot.service.get(request_id).status == "revoked"
    assert _ours(google, "projects/acme-prod") == []
    assert _ours(google, "folders/123456789012") == []
    assert google.policy("projects/acme-prod")["bindings"] == THEIRS
    # Every Google call carried a token the bot got with its own key (ADC), no agent.
    assert all(c.status == 200 for c in google.calls)
    assert {c.operation for c in google.calls} >= {"getIamPolicy", "setIamPolicy", "token"}


def test_an_approver_named_only_by_google_group_approves_and_one_removed_cannot(
    gcp_bot: Callable[..., Bot], google: FakeGoogle
) -> None:
    bot = gcp_bot()
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-7")
    assert bot.dms_to(BOB) and bot.dms_to(CAROL)  # both asked: both in sre@example.com

    google.remove_member("sre@example.com", "carol@example.com")
    assert "Caches refreshed" in bot.command(BOB, "sync")["text"]

    answer = click(bot, CAROL, "approve", request_id)
    assert "You are not an approver of this request" in answer
    assert bot.service.get(request_id).status == "pending"

    click(bot, BOB, "approve", request_id)
    assert bot.service.get(request_id).status == "active"
    # Groups were read as the configured Workspace user (domain-wide delegation).
    delegated = [c for c in google.token_grants.values() if c.get("scope") == SCOPE]
    assert delegated and {c["sub"] for c in delegated} == {ADMIN}


def test_requesters_named_by_google_group_include_nested_groups_and_no_one_else(
    gcp_bot: Callable[..., Bot], google: FakeGoogle
) -> None:
    bot = gcp_bot()
    submit(bot, BOB, "prod-support staging 1h INC-8")  # via sre@ inside engineering@

    answer = bot.command(MALLORY, "request prod-support staging 1h INC-9")
    assert "You are not among the requesters of `prod-support`" in answer["text"]


def test_standing_access_is_left_in_place_when_the_grant_ends(
    gcp_bot: Callable[..., Bot], google: FakeGoogle
) -> None:
    google.add_binding("projects/acme-staging", "roles/logging.viewer", ["user:alice@example.com"])
    before = google.policy("projects/acme-staging")["bindings"]
    bot = gcp_bot()
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-1")
    click(bot, SEC1, "approve", request_id)
    assert "standing_access_found" in [e.action for e in bot.service.audit_events(request_id)]

    click(bot, ALICE, "end_access", request_id)

    assert bot.service.get(request_id).status == "revoked"
    assert google.policy("projects/acme-staging")["bindings"] == before


def test_overlapping_grants_each_have_their_own_binding_and_end_on_their_own(
    gcp_bot: Callable[..., Bot], google: FakeGoogle
) -> None:
    """Google keeps each request's binding apart, so ending one grant takes away that
    binding only: the other grant keeps its own, and nothing outlives its request (a
    longer grant ended early is not kept alive by a shorter one still running)."""
    bot = gcp_bot()
    longer = submit(bot, ALICE, "prod-support staging 4h INC-1")
    click(bot, SEC1, "approve", longer)
    shorter = submit(bot, ALICE, "prod-support staging 1h INC-2")
    click(bot, SEC1, "approve", shorter)
    staging = "projects/acme-staging"
    titles = sorted(b["condition"]["title"] for b in _ours(google, staging))
    assert titles == sorted([f"jit-bot {longer}", f"jit-bot {shorter}"])

    click(bot, ALICE, "end_access", longer)

    assert bot.service.get(longer).status == "revoked"
    assert [t.status for t in bot.service.targets_of(longer)] == ["revoked"]
    assert [b["condition"]["title"] for b in _ours(google, staging)] == [f"jit-bot {shorter}"]
    assert bot.service.get(shorter).status == "active"

    bot.clock.advance(timedelta(hours=1))
    bot.service.sweep()
    bot.settle()

    assert bot.service.get(shorter).status == "revoked"
    assert _ours(google, staging) == []


def test_drift_finds_bindings_nobody_explains_and_grants_google_no_longer_has(
    gcp_bot: Callable[..., Bot], google: FakeGoogle
) -> None:
    bot = gcp_bot(approvers=APPROVERS + "  revoke_unknown: true\n")
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-1")
    click(bot, SEC1, "approve", request_id)
    assert bot.runtime.drift.run() == []
    staging = "projects/acme-staging"
    [alices] = _ours(google, staging)
    # Alice's binding is removed by hand; a jit-bot binding of Carol's is left behind by
    # a bot whose database was lost.
    google.set_policy(staging, {"bindings": []})
    leftover = {**alices["condition"], "title": "jit-bot R-LOST0001"}
    google.add_binding(staging, "roles/logging.viewer", ["user:carol@example.com"], leftover)

    findings = bot.runtime.drift.run()

    assert {(f.kind, f.email) for f in findings} == {
        ("missing", "alice@example.com"),
        ("unexplained", "carol@example.com"),
    }
    assert _ours(google, staging) == []  # revoke_unknown removed Carol's
    assert "drift_revoked" in [e.action for e in bot.service.audit_events()]


# ------------------------------------------------------------------ jit-bot check --live


def test_check_live_verifies_each_gcp_role_exists_and_is_grantable_where_it_is_granted(
    google: FakeGoogle, google_env: dict[str, str], tmp_path: Path
) -> None:
    google.add_role("projects/acme-staging/roles/jitDebugger", title="JIT debugger")
    custom = ROLES + textwrap.indent(
        textwrap.dedent(
            """\
            db-admin:
              max_duration: 2h
              environments:
                staging:
                  - provider: gcp
                    role: projects/acme-staging/roles/jitDebugger
                    projects: [acme-staging]
            """
        ),
        "  ",
    )
    (tmp_path / "approvers.yaml").write_text(APPROVERS)
    (tmp_path / "roles.yaml").write_text(custom)

    done = run_cli(["check", "--live"], google_env, tmp_path)

    assert done.returncode == 0, done.stderr
    assert "prod-support" in done.stdout and "db-admin" in done.stdout
    assert google.calls_to("GetRole") and google.calls_to("QueryGrantableRoles")
    assert all(c.authorization.startswith("Bearer ") for c in google.calls_to("GetRole"))

    google.not_grantable("folders/123456789012", "roles/logging.viewer")
    (tmp_path / "roles.yaml").write_text(custom.replace("jitDebugger", "jitDebuger"))
    done = run_cli(["check", "--live"], google_env, tmp_path)

    assert done.returncode == 2
    assert "role roles/logging.viewer is not grantable on folder 123456789012" in done.stderr
    assert "roles.prod-support.environments.prod[0]" in done.stderr
    assert "role projects/acme-staging/roles/jitDebuger does not exist" in done.stderr
    assert "roles.db-admin.environments.staging[0]" in done.stderr


# ------------------------------------------------------------------ the example roles.yaml

# The gcp target docs/gcp.md proposes for roles.yaml (prod-support → prod), verbatim.
EXAMPLE_TARGET = """\
        # Logs Viewer on two projects and on everything under a folder, as IAM bindings
        # whose condition ends them at expiry (Google enforces it even if the bot is down).
        - provider: gcp
          role: roles/logging.viewer
          projects: [acme-prod, acme-prod-data]
          folders: ["123456789012"]
"""


def test_docs_gcp_page_shows_the_example_target() -> None:
    assert example_targets("gcp.md", "gcp") == yaml.safe_load(textwrap.dedent(EXAMPLE_TARGET))


def test_the_example_roles_file_holds_the_documented_gcp_target_and_validates() -> None:
    root = Path(__file__).resolve().parents[2]
    assert EXAMPLE_TARGET in (root / "roles.yaml").read_text()
    models = {name: p.target_model for name, p in default_providers({}).items()}

    config = load_config(root / "roles.yaml", root / "approvers.yaml", models)

    gcp = [t for t in config.targets[("prod-support", "prod")] if isinstance(t, GcpTarget)]
    assert [t.resources() for t in gcp] == [
        ["projects/acme-prod", "projects/acme-prod-data", "folders/123456789012"]
    ]
