"""Live sessions do not outlive the grant (issue 14, point 8).

An AWS role session taken during a grant stays valid for the permission set's session
duration after the assignment is deleted. At revocation jit-bot adds a Deny for the
user's ``identitystore:UserId`` on sessions issued before that moment to the permission
set's inline policy, re-provisions it, and lifts the Deny once the session duration has
passed. Driven over signed Slack requests against moto in server mode, on both databases.

Azure PIM cannot end an assignment before five minutes: such roles are refused by
``jit-bot check``, and so are shorter requests.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from sqlalchemy import select
from sqlmodel import col

from bot.session_ends import LIFT_MARGIN
from bot.storage.models import SessionDenial
from providers.aws import AwsClients, AwsProvider
from providers.azure import AzureClients, AzureProvider
from providers.fake import FakeProvider
from tests.conftest import ALICE, SEC1, Bot, stop
from tests.e2e.helpers import click, submit
from tests.fakes.aws import MotoAws, Seeded
from tests.fakes.processes import run_cli

SESSION = timedelta(hours=1)  # ProdSupport's session duration in the seeded organization


def _roles(seeded: Seeded, *, end_sessions: str = "") -> str:
    return f"""
roles:
  prod-support:
    description: Troubleshoot production services
    max_duration: 4h
    requesters: ["@engineering"]
    environments:
      staging:
        - provider: aws
          permission_set: ProdSupport
          accounts: ["{seeded.accounts["shared"]}", "{seeded.accounts["prod-a"]}"]
          {end_sessions}
      dev:
        - provider: fake
          resource: dev-logs
"""


APPROVERS = """
groups:
  security: [USEC1]
rules:
  - roles: ["*"]
    environments: ["*"]
    approvers: [security]
settings:
  allowed_email_domains: [example.com]
"""


class AwsBots:
    """Bots whose aws provider reaches moto over HTTP, as `jit-bot serve` builds it."""

    def __init__(self, make_bot: Callable[..., Bot], moto: MotoAws, seeded: Seeded) -> None:
        self._make_bot, self._moto, self._seeded = make_bot, moto, seeded
        self.clients: list[AwsClients] = []
        self.providers: list[AwsProvider] = []

    def start(self, *, end_sessions: str = "") -> Bot:
        clients = AwsClients.from_environ(self._moto.environ())
        self.clients.append(clients)
        self.providers.append(AwsProvider(clients, sleep=lambda _: None))
        providers = {"aws": self.providers[-1], "fake": FakeProvider()}
        roles = _roles(self._seeded, end_sessions=end_sessions)
        return self._make_bot(roles=roles, approvers=APPROVERS, providers=providers)


@pytest.fixture
def bots(
    make_bot: Callable[..., Bot], moto: MotoAws, aws: Seeded, monkeypatch: pytest.MonkeyPatch
) -> AwsBots:
    for name, value in moto.environ().items():
        monkeypatch.setenv(name, value)
    return AwsBots(make_bot, moto, aws)


def _granted(bot: Bot, text: str = "prod-support staging 1h INC-7") -> str:
    request_id = submit(bot, ALICE, text)
    click(bot, SEC1, "approve", request_id)
    assert bot.service.get(request_id).status == "active"
    return request_id


def _expire(bot: Bot, after: timedelta = timedelta(hours=1)) -> datetime:
    """Let the grant run out and the sweeper revoke it; the moment it did."""
    revoked_at = bot.clock.advance(after)
    bot.service.sweep()
    bot.settle()
    return revoked_at


def _denies(moto: MotoAws, aws: Seeded) -> list[dict[str, Any]]:
    policy = moto.inline_policy(aws, "ProdSupport")
    if policy is None:
        return []
    return [s for s in policy["Statement"] if s["Effect"] == "Deny"]


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _actions(bot: Bot, request_id: str) -> list[str]:
    return [e.action for e in bot.service.audit_events(request_id)]


ALL_ACCOUNTS = "ALL_PROVISIONED_ACCOUNTS"


def test_revoking_an_aws_grant_denies_the_sessions_the_user_took_before_it(
    bots: AwsBots, moto: MotoAws, aws: Seeded
) -> None:
    bot = bots.start()
    request_id = _granted(bot)
    assert moto.provisionings() == []
    revoked_at = _expire(bot)

    assert bot.service.get(request_id).status == "revoked"
    assert _denies(moto, aws) == [
        {
            "Sid": "JitBotEndSessions" + request_id.replace("-", ""),
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {
                "StringEquals": {"identitystore:UserId": aws.users["alice@example.com"]},
                "DateLessThan": {"aws:TokenIssueTime": _iso(revoked_at)},
            },
        }
    ]
    # Written once for both accounts, and re-provisioned so it reaches their roles.
    assert moto.provisionings() == [(aws.permission_sets["ProdSupport"], ALL_ACCOUNTS)]
    assert "sessions_ended" in _actions(bot, request_id)
    assert any("sessions_ended" in post for post in bot.audit_posts())


def test_a_sweep_batch_ends_sessions_only_for_the_grants_on_a_provider_that_can(
    bots: AwsBots, moto: MotoAws, aws: Seeded
) -> None:
    bot = bots.start()
    on_aws = _granted(bot)
    elsewhere = _granted(bot, "prod-support dev 1h INC-8")
    _expire(bot)  # both are due: one sweep revokes them in one batch

    assert bot.service.get(on_aws).status == "revoked"
    assert bot.service.get(elsewhere).status == "revoked"
    [deny] = _denies(moto, aws)
    assert deny["Sid"] == "JitBotEndSessions" + on_aws.replace("-", "")
    with bot.runtime.engine.connect() as connection:
        denied = connection.execute(select(col(SessionDenial.request_id))).scalars().all()
    assert denied == [on_aws]
    assert "sessions_ended" in _actions(bot, on_aws)
    assert "sessions_ended" not in _actions(bot, elsewhere)


def test_ending_access_early_ends_the_live_sessions_too(
    bots: AwsBots, moto: MotoAws, aws: Seeded
) -> None:
    bot = bots.start()
    request_id = _granted(bot)
    bot.clock.advance(timedelta(minutes=10))
    click(bot, ALICE, "end_access", request_id)
    bot.service.get(request_id)
    bot.slack.wait_for(lambda: bot.service.get(request_id).status == "revoked")
    [deny] = _denies(moto, aws)
    assert deny["Condition"]["DateLessThan"]["aws:TokenIssueTime"] == _iso(bot.clock.now())


def test_the_deny_is_lifted_once_the_session_duration_has_passed_so_nothing_is_left(
    bots: AwsBots, moto: MotoAws, aws: Seeded
) -> None:
    bot = bots.start()
    request_id = _granted(bot)
    _expire(bot)

    bot.clock.advance(SESSION)  # a session issued just before the revocation may live on
    bot.service.sweep()
    assert len(_denies(moto, aws)) == 1
    bot.clock.advance(LIFT_MARGIN)
    bot.service.sweep()
    assert moto.inline_policy(aws, "ProdSupport") is None  # as it was before the grant
    assert moto.provisionings() == [(aws.permission_sets["ProdSupport"], ALL_ACCOUNTS)] * 2
    assert _actions(bot, request_id)[-1] == "session_denial_lifted"
    bot.service.sweep()
    assert len(moto.provisionings()) == 2  # nothing left to change, nothing provisioned


def test_other_statements_of_the_inline_policy_are_kept_exactly(
    bots: AwsBots, moto: MotoAws, aws: Seeded
) -> None:
    theirs = {
        "Version": "2012-10-17",
        "Statement": {"Sid": "ReadLogs", "Effect": "Allow", "Action": "logs:Get*", "Resource": "*"},
    }
    moto.client("sso-admin").put_inline_policy_to_permission_set(
        InstanceArn=aws.instance_arn,
        PermissionSetArn=aws.permission_sets["ProdSupport"],
        InlinePolicy=json.dumps(theirs),
    )
    bot = bots.start()
    _granted(bot)
    _expire(bot)
    policy = moto.inline_policy(aws, "ProdSupport")
    assert policy is not None
    assert policy["Statement"][0] == theirs["Statement"]
    assert [s["Effect"] for s in policy["Statement"]] == ["Allow", "Deny"]

    bot.clock.advance(SESSION + LIFT_MARGIN)
    bot.service.sweep()
    assert moto.inline_policy(aws, "ProdSupport") == {**theirs, "Statement": [theirs["Statement"]]}


def test_no_deny_while_another_active_grant_still_needs_the_assignment(
    bots: AwsBots, moto: MotoAws, aws: Seeded
) -> None:
    bot = bots.start()
    first = _granted(bot, "prod-support staging 1h INC-1")
    second = _granted(bot, "prod-support staging 3h INC-2")
    _expire(bot)
    assert bot.service.get(first).status == "revoked"
    # The assignment stays for the second grant: so do the sessions it allows.
    assert _denies(moto, aws) == []
    assert moto.provisionings() == []
    assert "sessions_ended" not in _actions(bot, first)

    revoked_at = _expire(bot, timedelta(hours=2))
    assert bot.service.get(second).status == "revoked"
    [deny] = _denies(moto, aws)
    assert deny["Sid"].endswith(second.replace("-", ""))
    assert deny["Condition"]["DateLessThan"]["aws:TokenIssueTime"] == _iso(revoked_at)


def test_a_later_grant_of_the_same_user_gets_its_own_deny_and_the_older_one_is_folded_in(
    bots: AwsBots, moto: MotoAws, aws: Seeded
) -> None:
    bot = bots.start()
    first = _granted(bot, "prod-support staging 1h INC-1")
    _expire(bot)
    second = _granted(bot, "prod-support staging 30m INC-2")
    revoked_at = _expire(bot, timedelta(minutes=30))
    assert bot.service.get(second).status == "revoked"
    # Denying what was issued before the later revocation denies all the older one did.
    [deny] = _denies(moto, aws)
    assert deny["Sid"].endswith(second.replace("-", ""))
    assert deny["Condition"]["DateLessThan"]["aws:TokenIssueTime"] == _iso(revoked_at)
    bot.clock.advance(SESSION + LIFT_MARGIN - timedelta(minutes=30))
    bot.service.sweep()  # the first one's time is up, the second's not yet
    assert _actions(bot, first)[-1] == "session_denial_lifted"
    assert len(_denies(moto, aws)) == 1
    bot.clock.advance(timedelta(minutes=30))
    bot.service.sweep()
    assert _denies(moto, aws) == []


def test_a_crash_between_revocation_and_lift_still_lifts_the_deny(
    bots: AwsBots, moto: MotoAws, aws: Seeded
) -> None:
    first = bots.start()
    request_id = _granted(first)
    _expire(first)
    assert len(_denies(moto, aws)) == 1
    stop(first)
    first.clock.advance(SESSION + LIFT_MARGIN)
    second = bots.start()  # its first sweep runs at start-up
    second.slack.wait_for(lambda: _denies(moto, aws) == [])
    second.slack.wait_for(lambda: "session_denial_lifted" in _actions(second, request_id))


def test_end_sessions_false_leaves_the_inline_policy_alone(
    bots: AwsBots, moto: MotoAws, aws: Seeded
) -> None:
    bot = bots.start(end_sessions="end_sessions: false")
    request_id = _granted(bot)
    _expire(bot)
    assert bot.service.get(request_id).status == "revoked"
    assert moto.inline_policy(aws, "ProdSupport") is None
    assert moto.provisionings() == []


def test_two_replicas_lift_a_deny_once(bots: AwsBots, moto: MotoAws, aws: Seeded) -> None:
    one = bots.start()
    two = bots.start()
    request_id = _granted(one)
    _expire(one)
    one.clock.advance(SESSION + LIFT_MARGIN)
    start = threading.Barrier(2)

    def sweep(bot: Bot) -> None:
        start.wait()
        bot.service.sweep()

    threads = [threading.Thread(target=sweep, args=(bot,)) for bot in (one, two)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _denies(moto, aws) == []
    assert _actions(one, request_id).count("session_denial_lifted") == 1


def _refuse(clients: AwsClients, operation: str, times: int) -> list[int]:
    """Make the bot's next ``times`` calls of ``operation`` fail as AWS refuses them."""
    left = [times]

    def refuse(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if left[0] <= 0:
            return None
        left[0] -= 1
        error = {"Code": "AccessDeniedException", "Message": "not now"}
        return AWSResponse("https://sso", 403, {}, None), {
            "Error": error,
            "ResponseMetadata": {"HTTPStatusCode": 403},
        }

    clients.client("sso-admin").meta.events.register(f"before-call.sso-admin.{operation}", refuse)
    return left


def test_a_failed_lift_is_retried_until_the_deny_is_gone(
    bots: AwsBots, moto: MotoAws, aws: Seeded
) -> None:
    bot = bots.start()
    request_id = _granted(bot)
    _expire(bot)
    _refuse(bots.clients[0], "DeleteInlinePolicyFromPermissionSet", times=1)
    bot.clock.advance(SESSION + LIFT_MARGIN)
    bot.service.sweep()
    assert len(_denies(moto, aws)) == 1
    with bot.runtime.engine.connect() as connection:
        [error] = connection.execute(
            select(col(SessionDenial.error)).where(col(SessionDenial.request_id) == request_id)
        ).scalars()
    assert "AccessDeniedException" in (error or "")

    bot.clock.advance(timedelta(minutes=10))  # the failed lift's claim runs out
    bot.service.sweep()
    assert _denies(moto, aws) == []
    assert _actions(bot, request_id).count("session_denial_lifted") == 1


def test_a_failed_deny_leaves_the_revocation_failed_and_the_sweeper_finishes_it(
    bots: AwsBots, moto: MotoAws, aws: Seeded
) -> None:
    bot = bots.start()
    request_id = _granted(bot)
    _refuse(bots.clients[0], "PutInlinePolicyToPermissionSet", times=1)
    _expire(bot)
    request = bot.service.get(request_id)
    assert request.status == "revoke_failed"
    assert "ending live sessions" in (request.error or "")
    assert moto.assignments(aws) == set()  # the assignments themselves are gone
    bot.service.sweep()
    bot.settle()
    assert bot.service.get(request_id).status == "revoked"
    assert len(_denies(moto, aws)) == 1


def test_a_failed_provisioning_is_provisioned_again_and_only_then_is_the_grant_revoked(
    bots: AwsBots, moto: MotoAws, aws: Seeded
) -> None:
    bot = bots.start()
    request_id = _granted(bot)
    moto.fail_provisionings(2)
    _expire(bot)
    request = bot.service.get(request_id)
    assert request.status == "revoke_failed"
    assert "FAILED" in (request.error or "")
    # The Deny is in the policy but never reached the accounts' roles.
    assert len(_denies(moto, aws)) == 1
    assert moto.provisioning_statuses() == ["FAILED"]

    # The retried revocation finds the policy already saying it and provisions anyway.
    bot.service.sweep()
    bot.settle()
    assert bot.service.get(request_id).status == "revoke_failed"
    assert moto.provisioning_statuses() == ["FAILED", "FAILED"]
    bot.service.sweep()
    bot.settle()
    assert bot.service.get(request_id).status == "revoked"
    assert moto.provisioning_statuses() == ["FAILED", "FAILED", "SUCCEEDED"]
    assert moto.provisionings()[-1] == (aws.permission_sets["ProdSupport"], ALL_ACCOUNTS)


def test_a_user_deleted_from_the_identity_store_still_has_their_sessions_ended(
    bots: AwsBots, moto: MotoAws, aws: Seeded
) -> None:
    bot = bots.start()
    request_id = _granted(bot)
    user_id = aws.users["alice@example.com"]
    # Offboarding: the user is gone before the grant ends (and the bot's lookups of them
    # have run out of its cache).
    moto.client("identitystore").delete_user(IdentityStoreId=aws.identity_store_id, UserId=user_id)
    bots.providers[0].refresh()
    _expire(bot)

    assert bot.service.get(request_id).status == "revoked"
    [deny] = _denies(moto, aws)
    assert deny["Condition"]["StringEquals"] == {"identitystore:UserId": user_id}
    assert moto.provisionings() == [(aws.permission_sets["ProdSupport"], ALL_ACCOUNTS)]
    assert moto.provisioning_statuses() == ["SUCCEEDED"]


def test_a_deny_lost_to_a_racing_writer_is_put_back_by_the_next_sweep(
    bots: AwsBots, moto: MotoAws, aws: Seeded
) -> None:
    bot = bots.start()
    _granted(bot)
    _expire(bot)
    # Another process wrote the policy from a view of the database without this deny.
    moto.client("sso-admin").delete_inline_policy_from_permission_set(
        InstanceArn=aws.instance_arn, PermissionSetArn=aws.permission_sets["ProdSupport"]
    )
    bot.service.sweep()
    assert len(_denies(moto, aws)) == 1


# ------------------------------------------------------------------ Azure PIM

PIM_ROLE = """
roles:
  quick-look:
    description: A quick look
    max_duration: {max_duration}
    environments:
      prod:
        - provider: azure
          role: Reader
          scopes: [/subscriptions/00000000-0000-0000-0000-000000000000]
          {mode}
"""


def test_check_refuses_an_azure_pim_target_in_a_role_shorter_than_five_minutes(
    tmp_path: Path,
) -> None:
    (tmp_path / "approvers.yaml").write_text(APPROVERS)
    (tmp_path / "roles.yaml").write_text(PIM_ROLE.format(max_duration="4m", mode=""))
    done = run_cli(["check"], {}, tmp_path)
    assert done.returncode == 2
    assert "roles.yaml:8: roles.quick-look.environments.prod[0]:" in done.stderr
    assert "Azure PIM cannot end access sooner than 5m" in done.stderr
    assert "max_duration is 4m" in done.stderr

    (tmp_path / "roles.yaml").write_text(PIM_ROLE.format(max_duration="4m", mode="mode: rbac"))
    assert run_cli(["check"], {}, tmp_path).returncode == 0
    (tmp_path / "roles.yaml").write_text(PIM_ROLE.format(max_duration="5m", mode=""))
    assert run_cli(["check"], {}, tmp_path).returncode == 0


def test_a_request_shorter_than_pim_can_end_is_refused_with_the_real_minimum(
    make_bot: Callable[..., Bot],
) -> None:
    providers = {"fake": FakeProvider(), "azure": AzureProvider(AzureClients.from_environ({}))}
    roles = PIM_ROLE.format(max_duration="1h", mode="")
    bot = make_bot(roles=roles, approvers=APPROVERS, providers=providers)
    answer = bot.command(ALICE, "request quick-look prod 2m a quick look")["text"]
    assert "Azure PIM cannot end access sooner than 5m" in answer
    assert "ask for 5m or more" in answer
    assert bot.command(ALICE, "request quick-look prod 5m a quick look")["text"].count("R-") == 1
