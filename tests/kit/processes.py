"""The kit of tests that run real bot processes (``python -m bot serve``): their fixtures,
registered by tests/conftest.py for every module, and the environment they start a bot
with (one auto-approved role that grants through a webhook receiver)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ALICE, BOT_TOKEN, SIGNING_SECRET
from tests.fakes.processes import Launcher
from tests.fakes.slack_api import FakeSlack
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.kit.configs import webhook

WEBHOOK_SECRET = "webhook-hmac-key"
APP_TOKEN = "xapp-1-A0001-test"
TARGET = "grafana-admin"

# One role, auto-approved in dev, granted by the webhook receiver.
ROLES_YAML = f"""
roles:
  tooling:
    description: Admin of the internal tools
    max_duration: 4h
    default_duration: 1h
    environments:
      dev:{webhook("{target}")}
"""

APPROVERS_YAML = """
rules:
  - environments: [dev]
    roles: ["*"]
    auto_approve: true
settings:
  allowed_email_domains: [example.com]
"""


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    """Starts ``python -m bot …`` processes; every one is gone after the test."""
    runner = Launcher(tmp_path)
    try:
        yield runner
    finally:
        runner.stop_all()
        # pytest shows captured teardown output only when the test failed.
        for process in runner.started:
            sys.stderr.write(process.output())


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """The cloud of ``bot_env``'s role: a webhook receiver that records what it holds."""
    hook = WebhookReceiver(WEBHOOK_SECRET).start()
    try:
        yield hook
    finally:
        hook.stop()


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """Slack for a bot process, with Socket Mode's app token; alice is its one user."""
    fake = FakeSlack(token=BOT_TOKEN, app_token=APP_TOKEN).start()
    fake.add_user(ALICE, "alice@example.com", "alice")
    try:
        yield fake
        fake.assert_clean()
    finally:
        fake.stop()


def bot_env(
    launcher: Launcher,
    slack: FakeSlack,
    receiver: WebhookReceiver,
    database_url: str,
    **overrides: str | None,
) -> dict[str, str]:
    """The environment of a bot process that serves ``slack`` from ``database_url`` and
    grants through ``receiver``, plus ``overrides`` (None removes a name)."""
    roles = launcher.tmp_path / "roles.yaml"
    approvers = launcher.tmp_path / "approvers.yaml"
    roles.write_text(textwrap.dedent(ROLES_YAML.format(target=TARGET, url=receiver.url)))
    approvers.write_text(textwrap.dedent(APPROVERS_YAML))
    return launcher.env(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
        DATABASE_URL=database_url,
        JIT_ROLES_FILE=str(roles),
        JIT_APPROVERS_FILE=str(approvers),
        JIT_WEBHOOK_SECRET=WEBHOOK_SECRET,
        **overrides,
    )
