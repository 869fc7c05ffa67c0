"""Secrets never appear in logs or error messages: a full run, failures included, with
every logger at DEBUG, is scraped for each secret the bot holds."""

from __future__ import annotations

import logging
from collections.abc import Callable

import boto3
import pytest

from providers.aws import AwsClients, AwsProvider
from providers.fake import FakeProvider
from providers.webhook import WebhookProvider
from tests.conftest import ALICE, BOB, BOT_TOKEN, SIGNING_SECRET, Bot
from tests.e2e.helpers import click, submit
from tests.fakes.aws import REGION, MotoAws
from tests.fakes.webhook_receiver import WebhookReceiver

WEBHOOK_SECRET = "whsec-6f1c0b2a9e8d7c6b5a4f"
AWS_SECRET = "aws-secret-4d3c2b1a0f9e8d7c6b5a"


def test_no_secret_reaches_a_log_line_an_error_or_a_slack_message(
    make_bot: Callable[..., Bot], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver = WebhookReceiver(WEBHOOK_SECRET).start()
    moto = MotoAws().start()
    try:
        seeded = moto.seed()
        session = boto3.Session(
            aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key=AWS_SECRET, region_name=REGION
        )
        providers = {
            "fake": FakeProvider(),
            "webhook": WebhookProvider({"JIT_WH": WEBHOOK_SECRET}, sleep=lambda _: None),
            "aws": AwsProvider(
                AwsClients(session, region=REGION, endpoint_url=moto.endpoint),
                sleep=lambda _: None,
            ),
        }
        roles = f"""
roles:
  prod-support:
    max_duration: 4h
    requesters: ["@engineering"]
    environments:
      prod:
        - provider: webhook
          name: grafana
          url: {receiver.url}
          secret_env: JIT_WH
          max_attempts: 2
        - provider: aws
          permission_set: ProdSupport
          accounts: ["{seeded.accounts["shared"]}"]
"""
        approvers = """
groups:
  sre-leads: ["@sre-leads"]
rules:
  - approvers: [sre-leads]
"""
        bot = make_bot(roles=roles, approvers=approvers, providers=providers)
        ok = submit(bot, ALICE, "prod-support prod 1h INC-1")
        click(bot, BOB, "approve", ok)
        click(bot, ALICE, "end_access", ok)
        # A receiver that echoes the secret back in its error page.
        receiver.fail_next(times=8, status=500, body=f"bad key {WEBHOOK_SECRET}")
        bot.slack.fail_next("chat.postMessage", times=2, retry_after=1)
        failed = submit(bot, ALICE, "prod-support prod 1h INC-2")
        click(bot, BOB, "approve", failed)
        assert bot.service.get(failed).status == "failed"
        bot.command(ALICE, "frobnicate")
    finally:
        receiver.stop()
        moto.stop()

    secrets = [BOT_TOKEN, SIGNING_SECRET, WEBHOOK_SECRET, AWS_SECRET]
    assert len(caplog.records) > 50  # the run really was logged at DEBUG
    logged = caplog.text + "".join(
        str(r.exc_info[1]) for r in caplog.records if r.exc_info and r.exc_info[1]
    )
    said = [str(bot.service.get(r).error) for r in (ok, failed)]
    said += [str(e.details) for e in bot.service.audit_events()]
    said += [str(m) for m in bot.slack.messages] + [str(r) for r in bot.slack.responses]
    for secret in secrets:
        assert secret not in logged, f"{secret[:6]}… leaked into the logs"
        assert all(secret not in text for text in said), f"{secret[:6]}… leaked to people"
    assert "HTTP 500" in str(bot.service.get(failed).error)
