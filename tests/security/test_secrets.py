"""Secrets never appear in logs or error messages. A full run against every cloud, failures
included, with every logger at DEBUG, is scraped for each secret the bot holds and each
credential the fakes issue to it: in process (every log record, every Slack call, every
database row) and as a real ``jit-bot serve`` process (its stdout and stderr as well)."""

from __future__ import annotations

import json
import logging
import textwrap
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from bot.cli import LEAKY_AT_DEBUG, configure_logging
from providers.aws import AwsClients, AwsProvider
from providers.azure import AzureProvider
from providers.gcp import GcpProvider
from providers.webhook import WebhookProvider
from tests.conftest import (
    ALICE,
    AUDIT_CHANNEL,
    BOB,
    BOT_TOKEN,
    MALLORY,
    SIGNING_SECRET,
    Bot,
)
from tests.e2e.helpers import click, submit
from tests.fakes import azure as fake_azure
from tests.fakes.aws import REGION, MotoAws, Seeded
from tests.fakes.azure import SUBSCRIPTION, FakeAzure
from tests.fakes.gcp import FakeGoogle
from tests.fakes.processes import START_TIMEOUT, Launcher, wait
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_client import SlackSim
from tests.fakes.webhook_receiver import WebhookReceiver

WEBHOOK_SECRET = "whsec-6f1c0b2a9e8d7c6b5a4f"
AWS_SECRET = "aws-secret-4d3c2b1a0f9e8d7c6b5a"
AWS_SESSION_TOKEN = "aws-session-IQoJb3JpZ2luX2VjEJr9a8b7c6d5e4f3a2b1c0d"

PROD = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/prod"
STAGING = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/staging"
# moto's default account, which holds the organization: the bot assumes a role in it, so
# moto issues it temporary credentials (a session token) that must not leak either.
MANAGEMENT_ACCOUNT = "123456789012"

# Every provider in one environment (the happy path), and one environment per provider
# whose grant is made to fail, so each provider's error path runs and is shown to people.
ROLES = """
roles:
  prod-support:
    max_duration: 4h
    requesters: ["@engineering"]
    environments:
      prod:
        - {webhook}
        - provider: aws
          permission_set: ProdSupport
          accounts: ["{account}"]
          assume_role_arn: arn:aws:iam::{management}:role/jit-bot
        - provider: azure
          role: Reader
          scopes: [{prod}]
        - provider: gcp
          role: roles/logging.viewer
          projects: [acme-prod]
      webhook:
        - {webhook}
      azure:
        - provider: azure
          role: Reader
          mode: rbac
          scopes: [{staging}]
      gcp:
        - provider: gcp
          role: roles/logging.viewer
          projects: [acme-staging]
  ops:
    max_duration: 4h
    environments:
      aws:
        - provider: aws
          permission_set: ProdSupport
          accounts: ["{account}"]
          assume_role_arn: arn:aws:iam::{management}:role/jit-bot
"""
WEBHOOK_TARGET = """provider: webhook
          name: grafana
          url: {url}
          allow_insecure: true  # the receiver is plain http on 127.0.0.1
          secret_env: JIT_WH
          max_attempts: 2"""
APPROVERS = """
groups:
  sre-leads: ["@sre-leads"]
rules:
  - approvers: [sre-leads]
settings:
  allowed_email_domains: [example.com]
"""

# Error pages that echo what the caller sent, as careless services do.
AZURE_DENIAL = (
    "The client 'jit-bot' with object id '0f0e0d0c' does not have authorization to perform "
    "action 'Microsoft.Authorization/roleAssignments/write'."
)
GCP_DENIAL = "Permission 'resourcemanager.projects.setIamPolicy' denied on 'acme-staging'."


@dataclass(frozen=True)
class Clouds:
    moto: MotoAws
    azure: FakeAzure
    google: FakeGoogle


@pytest.fixture(scope="module")
def servers(moto: MotoAws, azure_server: FakeAzure, google_server: FakeGoogle) -> Clouds:
    return Clouds(moto, azure_server, google_server)


@dataclass
class World:
    """The clouds, freshly seeded, and the webhook receiver of one test."""

    clouds: Clouds
    seeded: Seeded
    receiver: WebhookReceiver
    key_file: Path

    @property
    def roles(self) -> str:
        webhook = WEBHOOK_TARGET.format(url=self.receiver.url)
        return ROLES.format(
            webhook=webhook,
            account=self.seeded.accounts["shared"],
            management=MANAGEMENT_ACCOUNT,
            prod=PROD,
            staging=STAGING,
        )

    def held(self) -> dict[str, bool]:
        """Whether alice holds the prod grant in each cloud right now."""
        google = self.clouds.google.policy("projects/acme-prod").get("bindings", [])
        return {
            "webhook": ("alice@example.com", "grafana") in self.receiver.holdings,
            "aws": ("alice@example.com", "shared", "ProdSupport")
            in self.clouds.moto.assignments(self.seeded),
            "azure": ("alice@example.com", PROD, "Reader") in self.clouds.azure.assignments(),
            "gcp": any("user:alice@example.com" in b["members"] for b in google),
        }

    def fail_every_cloud_once(self) -> None:
        """The next grant in each cloud fails; the webhook's error page echoes its key."""
        self.receiver.fail_next(times=8, status=500, body=f"bad key {WEBHOOK_SECRET}")
        self.clouds.azure.fail_next(403, "AuthorizationFailed", AZURE_DENIAL, method="PUT")
        self.clouds.google.fail_next("setIamPolicy", status=403, message=GCP_DENIAL)


@pytest.fixture
def world(servers: Clouds, tmp_path: Path) -> Iterator[World]:
    seeded = servers.moto.seed()
    servers.azure.reset()
    for person in ("alice", "bob", "carol"):
        servers.azure.add_user(f"{person}@example.com", mail=f"{person}@example.com")
    servers.google.reset()
    servers.google.require_auth = True
    servers.google.add_project("acme-prod")
    servers.google.add_project("acme-staging")
    key_file = servers.google.service_account_key(tmp_path / "jit-bot-key.json")
    receiver = WebhookReceiver(WEBHOOK_SECRET).start()
    try:
        yield World(servers, seeded, receiver, key_file)
        assert not servers.google.internal_errors, servers.google.internal_errors
        assert not servers.azure.internal_errors, servers.azure.internal_errors
    finally:
        receiver.stop()


# ------------------------------------------------------------------ what is looked for


def _secrets(world: World, **more: list[str]) -> dict[str, list[str]]:
    """Every secret the bot was given and every credential the fakes issued to it during
    the run, by kind. Call after the run: issued credentials exist only then."""
    clouds, google = world.clouds, world.clouds.google
    key = json.loads(world.key_file.read_text())["private_key"]
    assumed = _moto_state(clouds.moto)["sts"]["AssumedRole"]
    found = {
        "Slack bot token": [BOT_TOKEN],
        "Slack signing secret": [SIGNING_SECRET],
        "webhook signing key": [WEBHOOK_SECRET],
        "AWS secret access key": [AWS_SECRET] + [r["secret_access_key"] for r in assumed],
        "AWS session token": [AWS_SESSION_TOKEN] + [r["session_token"] for r in assumed],
        "Azure client secret": [fake_azure.CLIENT_SECRET],
        "Azure access token": _azure_tokens(clouds.azure),
        # Each line of the key's body, so the key is found however it is quoted or escaped.
        "GCP private key": [line for line in key.splitlines() if len(line) >= 40],
        # What the bot signed with it or got for it: OAuth access tokens, impersonated
        # tokens, the JWT assertions it traded for them, and the self-signed JWTs that
        # google-auth sends as bearer tokens in their stead.
        "GCP bearer token": list(google.token_grants)
        + [i["token"] for i in google.impersonations]
        + [c.body["assertion"] for c in google.calls_to("token") if "assertion" in c.body]
        + [c.authorization.removeprefix("Bearer ") for c in google.calls if c.authorization],
        **more,
    }
    empty = [kind for kind, values in found.items() if not values]
    assert not empty, f"the run never used these, so scanning for them proves nothing: {empty}"
    return found


def _moto_state(moto: MotoAws) -> dict[str, Any]:
    """moto's own dump of its backends (its dashboard API), STS's assumed roles included."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{moto.endpoint}/moto-api/data.json", timeout=10) as answer:
        state: dict[str, Any] = json.load(answer)
    return state


def _azure_tokens(azure: FakeAzure) -> list[str]:
    # FakeAzure keeps every bearer token it issued (it checks them on each call) but has
    # no public reader for them.
    with azure._lock:
        return list(azure._state.tokens)


# ------------------------------------------------------------------ where it is looked for


def _log_lines(records: Iterable[logging.LogRecord]) -> list[str]:
    """Each record as any handler could write it: message, traceback, stack and extras."""
    standard = set(vars(logging.makeLogRecord({})))
    formatter = logging.Formatter()
    lines = []
    for record in records:
        lines.append(record.getMessage())
        if record.exc_info:
            lines.append(formatter.formatException(record.exc_info))
        if record.stack_info:
            lines.append(record.stack_info)
        lines += [f"{k}={v!r}" for k, v in vars(record).items() if k not in standard]
    return lines


def _slack_texts(slack: FakeSlack) -> list[str]:
    """Everything the bot sent to Slack: every Web API call's arguments (messages with
    their blocks, updates, ephemerals, views) and every response_url answer."""
    sent = [json.dumps(c.params, default=str) for c in slack.calls]
    sent += [json.dumps(m, default=str) for m in slack.messages + slack.responses + slack.views]
    return sent


def _database_rows(engine: Engine) -> list[str]:
    """Every row of every table: audit events, request errors, the outbox, targets …"""
    with engine.connect() as connection:
        return [
            str(dict(row))
            for table in SQLModel.metadata.sorted_tables
            for row in connection.execute(sa.select(table)).mappings()
        ]


def _figures(secrets: Mapping[str, list[str]], places: Mapping[str, list[str]]) -> dict[str, int]:
    """How much was searched for, and in how much: kinds and values of secret, and the
    texts (log records, output lines, Slack items, rows) of each place."""
    searched = {"kinds": len(secrets), "values": len({v for vs in secrets.values() for v in vs})}
    return searched | {place: len(texts) for place, texts in places.items()}


def _leaks(secrets: Mapping[str, list[str]], places: Mapping[str, list[str]]) -> list[str]:
    """Where each secret was found, by kind and place (never the secret itself)."""
    return [
        f"{kind} in {place}"
        for kind, values in secrets.items()
        for place, texts in places.items()
        if any(value in text for value in values for text in texts)
    ]


# ------------------------------------------------------------------ in process


@pytest.fixture
def bot_logging(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Logging as `jit-bot serve` sets it up with JIT_LOG_LEVEL=DEBUG, captured; the
    loggers it changes get their levels back afterwards."""
    names = ("alembic", *LEAKY_AT_DEBUG)  # what configure_logging changes
    levels = {name: logging.getLogger(name).level for name in names}
    caplog.set_level(logging.DEBUG)
    configure_logging("DEBUG")
    try:
        yield caplog
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def test_debug_logging_keeps_botocore_at_info_because_it_logs_credentials(
    bot_logging: pytest.LogCaptureFixture,
) -> None:
    # Regression: at DEBUG botocore logs every request's X-Amz-Security-Token (headers and
    # canonical request) and STS's answer to AssumeRole (SecretAccessKey, SessionToken).
    for name in ("botocore.endpoint", "botocore.auth", "botocore.parsers", "boto3"):
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name
    assert logging.getLogger("providers.aws").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("botocore.credentials").isEnabledFor(logging.INFO)


def test_no_secret_reaches_a_log_line_an_error_or_a_slack_message(
    make_bot: Callable[..., Bot], world: World, bot_logging: pytest.LogCaptureFixture
) -> None:
    caplog = bot_logging
    clouds = world.clouds
    session = boto3.Session(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key=AWS_SECRET,
        aws_session_token=AWS_SESSION_TOKEN,
        region_name=REGION,
    )
    google_env = clouds.google.environ(world.key_file)
    providers = {
        "webhook": WebhookProvider({"JIT_WH": WEBHOOK_SECRET}, sleep=lambda _: None),
        "aws": AwsProvider(
            AwsClients(session, region=REGION, endpoint_url=clouds.moto.endpoint),
            sleep=lambda _: None,
        ),
        "azure": AzureProvider(clouds.azure.clients(), sleep=lambda _: None),
        "gcp": GcpProvider.from_environ(google_env),
    }
    bot = make_bot(roles=world.roles, approvers=APPROVERS, providers=providers)

    ok = submit(bot, ALICE, "prod-support prod 1h INC-1")
    click(bot, BOB, "approve", ok)
    assert bot.service.get(ok).status == "active"
    assert world.held() == dict.fromkeys(("webhook", "aws", "azure", "gcp"), True)
    click(bot, ALICE, "end_access", ok)
    assert bot.service.get(ok).status == "revoked"
    assert world.held() == dict.fromkeys(("webhook", "aws", "azure", "gcp"), False)

    world.fail_every_cloud_once()
    bot.slack.fail_next("chat.postMessage", times=2, retry_after=1)
    failed = [
        submit(bot, ALICE, "prod-support webhook 1h INC-2"),
        submit(bot, ALICE, "prod-support azure 1h INC-3"),
        submit(bot, ALICE, "prod-support gcp 1h INC-4"),
        submit(bot, MALLORY, "ops aws 1h no Identity Center user"),
    ]
    for request_id in failed:
        click(bot, BOB, "approve", request_id)
    bot.clock.advance(timedelta(seconds=5))  # past Slack's Retry-After
    bot.settle()
    errors = [str(bot.service.get(r).error) for r in failed]
    assert [bot.service.get(r).status for r in failed] == ["failed"] * 4, errors
    for request_id, expected in zip(
        failed,
        ["HTTP 500", "AuthorizationFailed", "setIamPolicy", "no IAM Identity Center user"],
        strict=True,
    ):
        # The cloud's own error reached the requester (so it was scraped too).
        told = map(str, bot.dms_to(bot.service.get(request_id).requester_id))
        assert any(request_id in dm and expected in dm for dm in told), (request_id, expected)
    bot.command(ALICE, "frobnicate")
    bot.settle()

    secrets = _secrets(world)
    places = {
        "the logs": _log_lines(caplog.records),
        "Slack": _slack_texts(bot.slack),
        "the database": _database_rows(bot.runtime.engine),
    }
    figures = _figures(secrets, places) | {"log records": len(caplog.records)}
    print("\nsecrets searched in process:", figures)  # what RELIABILITY.md quotes
    # The run really was logged at DEBUG, SDKs included, and said enough to Slack and the
    # database for a leak to have somewhere to be. The runs give 38-40 distinct values,
    # ~400 log records, 149 Slack items and 130 rows; the counts vary with the tokens
    # issued and the retries made, so these are floors.
    assert figures["kinds"] == 9, figures
    assert figures["values"] >= 30, figures
    assert figures["log records"] >= 300, figures
    assert figures["Slack"] >= 100, figures
    assert figures["the database"] >= 100, figures
    # slack_sdk is held at INFO even at DEBUG (it would log what it sends), so it is not
    # among the SDKs whose DEBUG lines are searched here.
    sdks = {"azure", "msal", "slack_bolt", "urllib3"}
    assert {r.name.split(".")[0] for r in caplog.records} >= sdks
    assert _leaks(secrets, places) == []


# ------------------------------------------------------------------ a real process


def _status(database_url: str, request_id: str) -> str | None:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            found = connection.scalar(
                sa.text("SELECT status FROM access_request WHERE id = :id"), {"id": request_id}
            )
            return None if found is None else str(found)
    finally:
        engine.dispose()


def _ask(sim: SlackSim, slack: FakeSlack, user: str, text: str) -> str:
    reply = sim.command(user, f"request {text}")
    assert reply.status == 200, reply
    answer = slack.wait_for_response(name=reply.response_url_name, timeout=START_TIMEOUT)
    request_id = next((w.rstrip(":") for w in answer["text"].split() if w.startswith("R-")), None)
    assert request_id, answer
    return request_id


def _press(sim: SlackSim, slack: FakeSlack, user: str, action: str, request_id: str) -> None:
    reply = sim.block_action(user, action, request_id)
    assert reply.status == 200, reply
    slack.wait_for_response(name=reply.response_url_name, timeout=START_TIMEOUT)


def _until(database_url: str, request_id: str, status: str) -> None:
    wait(
        lambda: _status(database_url, request_id) == status,
        START_TIMEOUT,
        f"{request_id} to be {status}",
    )


def _with_password(database_url: str) -> tuple[str, dict[str, list[str]]]:
    """The database URL for the process and, for PostgreSQL, the password in it (one more
    secret). The test server trusts local connections, so a made-up one is accepted."""
    url = sa.make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return database_url, {}
    if url.password is None:
        url = url.set(password="pg-password-5e4d3c2b1a0f")
    return url.render_as_string(hide_password=False), {"database password": [str(url.password)]}


def test_a_bot_process_logging_at_debug_prints_no_secret(
    launcher: Launcher, world: World, slack: FakeSlack, database_url: str
) -> None:
    clouds = world.clouds
    process_database_url, database_secret = _with_password(database_url)
    roles = launcher.tmp_path / "roles.yaml"
    approvers = launcher.tmp_path / "approvers.yaml"
    roles.write_text(textwrap.dedent(world.roles))
    approvers.write_text(textwrap.dedent(APPROVERS))
    aws = {
        **clouds.moto.environ(),
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_SESSION_TOKEN": AWS_SESSION_TOKEN,
    }
    env = launcher.env(
        **aws,
        **clouds.azure.environ(),
        **clouds.google.environ(world.key_file),
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
        DATABASE_URL=process_database_url,
        JIT_ROLES_FILE=str(roles),
        JIT_APPROVERS_FILE=str(approvers),
        JIT_AUDIT_CHANNEL=AUDIT_CHANNEL,
        JIT_WH=WEBHOOK_SECRET,
        JIT_LOG_LEVEL="DEBUG",
    )
    process = launcher.serve(env)
    process.wait_healthy()
    sim = SlackSim(process.url, SIGNING_SECRET, slack)

    granted = _ask(sim, slack, ALICE, "prod-support prod 1h INC-1")
    _press(sim, slack, BOB, "approve", granted)
    _until(database_url, granted, "active")
    assert world.held() == dict.fromkeys(("webhook", "aws", "azure", "gcp"), True)
    _press(sim, slack, ALICE, "end_access", granted)
    _until(database_url, granted, "revoked")
    assert world.held() == dict.fromkeys(("webhook", "aws", "azure", "gcp"), False)

    world.fail_every_cloud_once()
    failed = _ask(sim, slack, ALICE, "prod-support azure 1h INC-2")
    _press(sim, slack, BOB, "approve", failed)
    _until(database_url, failed, "failed")
    slack.wait_for(
        lambda: [m for m in slack.messages_in(ALICE) if "AuthorizationFailed" in str(m)],
        timeout=START_TIMEOUT,
    )

    process.terminate()
    output = process.output()
    engine = sa.create_engine(database_url)
    try:
        rows = _database_rows(engine)
    finally:
        engine.dispose()
    secrets = _secrets(world, **database_secret)
    places = {
        "the process output": output.splitlines(),
        "Slack": _slack_texts(slack),
        "the database": rows,
    }
    lines = output.splitlines()
    figures = _figures(secrets, places)
    print("\nsecrets searched in a process:", figures)  # what RELIABILITY.md quotes
    # The database password is one more kind on PostgreSQL. The runs give 42-45 distinct
    # values over ~425 output lines, 70 Slack items and 61 rows.
    assert figures["kinds"] == 9 + len(database_secret), figures
    assert figures["values"] >= 35, figures
    assert figures["the process output"] >= 300, figures
    assert figures["Slack"] >= 50, figures
    assert figures["the database"] >= 50, figures
    assert sum(" DEBUG " in line for line in lines) > 100, output[-3000:]
    assert _leaks(secrets, places) == [], "see the process output above"
