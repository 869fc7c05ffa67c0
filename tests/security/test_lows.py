"""The low-severity findings of the security review, each driven over the wire as an
attacker (or a careless user) would: durations that overflow, floods of requests and
cache refreshes from one account, clicks on requests past their pending_ttl, and a
webhook receiver whose answers, or whose URL, would otherwise reach Slack or the wrong
place. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
import textwrap
import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest

from bot.config import ConfigError, load_config
from bot.storage.models import Status
from providers.fake import FakeProvider, FakeTarget
from providers.webhook import WebhookProvider
from tests.conftest import ALICE, APPROVERS_YAML, BOB, CAROL, ROLES_YAML, Bot, stop
from tests.e2e.helpers import (
    buttons,
    click,
    deny_forms,
    latest,
    open_request_modal,
    opened_view,
    requests_of,
    submit,
)
from tests.fakes.slack_client import select_value, text_value
from tests.fakes.webhook_receiver import WebhookReceiver


def _with_settings(**values: object) -> str:
    """The test approvers.yaml with extra ``settings`` keys."""
    extra = "".join(f"  {key}: {value}\n" for key, value in values.items())
    return APPROVERS_YAML + extra


def _answer(bot: Bot, user: str, text: str) -> str:
    """What the bot answers to ``/jit <text>``. (Not ``Bot.command``: a restarted bot's
    SlackSim numbers its response URLs from 1 again, and would find the first bot's.)"""
    before = Counter(r["_url_name"] for r in bot.slack.responses)
    reply = bot.sim.command(user, text)
    assert reply.status == 200, reply
    name = reply.response_url_name

    def new() -> list[str]:
        return [r["text"] for r in bot.slack.responses if r["_url_name"] == name][before[name] :]

    return bot.slack.wait_for(new)[0]


def _modal_form(role: str, env: str, duration: str, reason: str) -> dict:  # type: ignore[type-arg]
    return {
        "role": {"role": select_value(role)},
        "environment": {"environment": select_value(env)},
        "duration": {"duration": text_value(duration)},
        "reason": {"reason": text_value(reason)},
    }


# -- durations that overflow ----------------------------------------------------------

OVERFLOWING = ["99999999999d", "9" * 5000 + "h", "0" * 5000 + "1" + "0" * 5000 + "m", "999999999d"]
MALFORMED = ["1e309h", "-5h", "inf", "1.5e3m"]


@pytest.mark.parametrize("duration", OVERFLOWING + MALFORMED)
def test_an_overflowing_duration_typed_inline_is_a_clear_error_not_a_crash(
    bot: Bot, duration: str
) -> None:
    answer = bot.command(ALICE, f"request prod-support prod {duration} INC-1")["text"]

    assert answer.startswith(":warning:"), answer
    assert "duration" in answer and "prod-support allows up to 4h" in answer
    assert len(answer) < 400  # a pasted 5,000-digit number is not echoed back
    assert bot.service.mine(ALICE) == []


@pytest.mark.parametrize("duration", OVERFLOWING + MALFORMED)
def test_an_overflowing_duration_in_the_request_modal_is_a_field_error_not_a_500(
    bot: Bot, duration: str
) -> None:
    view = open_request_modal(bot, ALICE)

    reply = bot.sim.submit_view(ALICE, view, _modal_form("prod-support", "prod", duration, "x"))

    assert reply.status == 200, reply
    assert reply.json is not None and reply.json["response_action"] == "errors"
    assert list(reply.json["errors"]) == ["duration"]
    bot.settle()
    assert bot.service.mine(ALICE) == []


@pytest.mark.parametrize(
    ("line", "written", "path"),
    [
        ("    max_duration: 2h\n", "99999999999d", "roles.db-admin.max_duration"),
        ("    max_duration: 2h\n", "9" * 5000 + "h", "roles.db-admin.max_duration"),
        ("    default_duration: 30m\n", "999999999d", "roles.db-admin.default_duration"),
    ],
)
def test_an_overflowing_duration_in_roles_yaml_names_file_line_and_path(
    config_files: Callable[..., tuple[str, str]], line: str, written: str, path: str
) -> None:
    assert ROLES_YAML.count(line) == 1  # db-admin's
    roles = ROLES_YAML.replace(line, f"{line.split(':')[0]}: {written}\n")
    roles_file, approvers_file = config_files(roles=roles)

    with pytest.raises(ConfigError) as refused:
        load_config(roles_file, approvers_file, {"fake": FakeTarget})

    [issue] = refused.value.issues
    assert str(issue).startswith(f"{roles_file}:")
    assert issue.line is not None and issue.line > 1
    assert path in str(issue) and "too long" in str(issue) and "at most 366d" in str(issue)
    assert len(str(issue)) < 400


def test_an_overflowing_pending_ttl_in_approvers_yaml_is_a_config_error(
    config_files: Callable[..., tuple[str, str]],
) -> None:
    approvers = APPROVERS_YAML.replace("pending_ttl: 1h", "pending_ttl: 99999999999d")
    roles_file, approvers_file = config_files(approvers=approvers)

    with pytest.raises(ConfigError) as refused:
        load_config(roles_file, approvers_file, {"fake": FakeTarget})

    assert "settings.pending_ttl" in str(refused.value) and "too long" in str(refused.value)


# -- per-person quotas --------------------------------------------------------------------


def test_a_person_with_too_many_pending_requests_is_refused_and_told_how_to_go_on(
    make_bot: Callable[..., Bot],
) -> None:
    bot = make_bot(approvers=_with_settings(max_pending_per_person=2))
    first = submit(bot, ALICE, "prod-support prod 1h INC-1")
    second = submit(bot, ALICE, "prod-support prod 1h INC-2")

    answer = bot.command(ALICE, "request prod-support prod 1h INC-3")["text"]

    assert answer.startswith(":warning:")
    assert "You already have 2 requests waiting for a decision" in answer
    assert first in answer and second in answer and "/jit cancel" in answer
    assert len(requests_of(bot, ALICE)) == 2
    assert len(bot.dms_to(BOB)) == 2  # the approvers were not asked a third time
    # Cancelling one makes room at once.
    bot.command(ALICE, f"cancel {first}")
    submit(bot, ALICE, "prod-support prod 1h INC-3")
    assert len(requests_of(bot, ALICE)) == 3


def test_requests_per_hour_are_capped_and_the_cap_holds_across_a_restart(
    make_bot: Callable[..., Bot],
) -> None:
    approvers = _with_settings(max_requests_per_person_per_hour=3)
    bot = make_bot(approvers=approvers)
    started = bot.clock.now()
    for n in range(3):
        submit(bot, ALICE, f"db-admin dev 30m fix-{n}")  # auto-approved: never pending

    refused = bot.command(ALICE, "request db-admin dev 30m fix-3")["text"]
    assert refused.startswith(":warning:")
    assert "3 requests in the last hour" in refused
    again_at = (started + timedelta(hours=1)).strftime("%H:%M")
    assert f"ask again in 60 minutes (at {again_at} UTC)" in refused

    stop(bot)
    restarted = make_bot(approvers=approvers)
    restarted.clock.advance(timedelta(minutes=59))
    assert "in the last hour" in _answer(restarted, ALICE, "request db-admin dev 30m fix-3")
    assert len(requests_of(restarted, ALICE)) == 3

    restarted.clock.advance(timedelta(minutes=1))
    assert "approved by rule" in _answer(restarted, ALICE, "request db-admin dev 30m fix-3")
    restarted.settle()
    assert len(requests_of(restarted, ALICE)) == 4


def test_a_burst_of_requests_to_two_replicas_at_once_cannot_pass_the_pending_quota(
    make_bot: Callable[..., Bot],
) -> None:
    approvers = _with_settings(max_pending_per_person=2)
    replicas = [make_bot(approvers=approvers), make_bot(approvers=approvers)]
    gate = threading.Barrier(6)
    replies = []

    def send(n: int) -> None:
        gate.wait()
        replies.append(replicas[n % 2].sim.command(ALICE, f"request prod-support prod 1h B-{n}"))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(reply.status == 200 for reply in replies)
    slack = replicas[0].slack
    answers = slack.wait_for(
        lambda: [r["text"] for r in slack.responses] if len(slack.responses) >= 6 else None
    )
    for replica in replicas:
        replica.settle()

    assert len(requests_of(replicas[0], ALICE)) == 2
    assert sum("waiting for a decision" in answer for answer in answers) == 4
    assert len(slack.messages_in(BOB)) == 2


def test_sync_is_capped_per_person_per_hour(make_bot: Callable[..., Bot]) -> None:
    bot = make_bot(approvers=_with_settings(sync_per_person_per_hour=2))
    for _ in range(2):
        assert "Caches refreshed" in bot.command(BOB, "sync")["text"]

    refused = bot.command(BOB, "sync")["text"]

    assert refused.startswith(":warning:")
    assert "2 times in the last hour" in refused and "again in 60 minutes" in refused
    syncs = [e for e in bot.service.audit_events() if e.action == "sync"]
    assert [e.actor for e in syncs] == [BOB, BOB]
    assert "Caches refreshed" in bot.command(CAROL, "sync")["text"]  # a quota per person
    bot.clock.advance(timedelta(hours=1))
    assert "Caches refreshed" in bot.command(BOB, "sync")["text"]


# -- a click after pending_ttl ------------------------------------------------------------


def test_an_approval_clicked_after_pending_ttl_is_refused_and_the_request_expires(
    bot: Bot,
) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    bot.clock.advance(timedelta(hours=1))  # pending_ttl; the sweeper has not run since

    answer = click(bot, BOB, "approve", request_id)

    assert "This request expired" in answer and "nothing changed" in answer
    assert bot.service.get(request_id).status == Status.EXPIRED
    assert bot.service.votes_of(request_id) == []
    assert bot.provider.calls == []
    actions = [e.action for e in bot.service.audit_events(request_id)]
    assert actions == ["requested", "expired_undecided"]
    assert "expired without a decision" in bot.dms_to(ALICE)[-1]["text"]
    for approver in (BOB, CAROL):
        assert not buttons(latest(bot.dms_to(approver)[0]))
    # The other approver's click changes nothing either.
    assert "already been decided" in click(bot, CAROL, "approve", request_id)
    assert bot.service.get(request_id).status == Status.EXPIRED


def test_a_deny_clicked_after_pending_ttl_opens_no_reason_modal_and_counts_nothing(
    bot: Bot,
) -> None:
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    bot.clock.advance(timedelta(hours=2))

    answer = click(bot, CAROL, "deny", request_id)

    assert "This request expired" in answer
    assert deny_forms(bot) == []
    assert bot.service.get(request_id).status == Status.EXPIRED
    assert bot.service.votes_of(request_id) == []


def test_a_deny_reason_submitted_after_pending_ttl_is_refused(bot: Bot) -> None:
    # The modal was opened in time; the reason came in after the request had expired.
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-1")
    clicked = bot.sim.block_action(CAROL, "deny", request_id)
    assert clicked.status == 200
    bot.settle()
    view = opened_view(bot, clicked.trigger_id)
    bot.clock.advance(timedelta(minutes=61))

    reply = bot.sim.submit_view(CAROL, view, {"reason": {"reason": text_value("no")}})

    assert reply.status == 200
    bot.settle()
    assert "This request expired" in bot.dms_to(CAROL)[-1]["text"]
    assert bot.service.get(request_id).status == Status.EXPIRED
    assert bot.service.votes_of(request_id) == []


# -- the webhook provider, as the bot uses it ---------------------------------------------

WEBHOOK_SECRET = "lows-webhook-key-0a1b2c3d"
WEBHOOK_ROLE = """\
  grafana:
    max_duration: 2h
    environments:
      dev:
        - provider: webhook
          name: grafana-editor
          url: {url}
          secret_env: JIT_WH
          max_attempts: 2
"""
# What a broken or hostile receiver answers: Slack markup, a fake approval line, a
# secret-looking string and a planted log line.
RECEIVER_ANSWER = (
    "<!channel> *approved* by <@UBOB> #1 0123abcd — INTERNAL-TRACE db=prod-primary "
    "password=hunter2\nERROR jit-bot forged log line\r\n" + "A" * 3000
)


def _webhook_bot(make_bot: Callable[..., Bot], target: str) -> Bot:
    provider = WebhookProvider({"JIT_WH": WEBHOOK_SECRET}, sleep=lambda _: None)
    return make_bot(
        roles=ROLES_YAML + textwrap.indent(WEBHOOK_ROLE.format(url=target), ""),
        providers={"fake": FakeProvider(), "webhook": provider},
    )


def test_a_webhook_receivers_error_body_never_reaches_slack_and_is_logged_on_one_line(
    make_bot: Callable[..., Bot], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="providers.webhook")
    with WebhookReceiver(WEBHOOK_SECRET) as receiver:
        target = receiver.url + "\n          allow_insecure: true"
        bot = _webhook_bot(make_bot, target)
        receiver.fail_next(times=100, status=500, body=RECEIVER_ANSWER)

        request_id = submit(bot, ALICE, "grafana dev 1h INC-9")
        bot.slack.wait_for(lambda: bot.service.get(request_id).status == Status.FAILED)
        bot.settle()

    everything_slack_got = json.dumps(
        [call.params for call in bot.slack.calls] + bot.slack.responses
    )
    for fragment in ("INTERNAL-TRACE", "hunter2", "<!channel>", "forged log line", "AAAA"):
        assert fragment not in everything_slack_got
    # The requester and the audit channel still learn what failed, in the bot's words.
    assert "HTTP 500" in bot.service.get(request_id).error
    assert any("HTTP 500" in post for post in bot.audit_posts())
    # The log has the answer, truncated, one record per attempt and one line each.
    logged = [r.getMessage() for r in caplog.records if "INTERNAL-TRACE" in r.getMessage()]
    assert logged
    for line in logged:
        assert "\n" not in line and "\r" not in line
        answer = line.split("HTTP 500: ", 1)[1].split("…", 1)[0]
        assert len(answer) == 500 and answer.startswith("<!channel> *approved*")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://hooks.example.com/jit", "plain http"),
        ("https://169.254.169.254/latest/meta-data/iam/", "a cloud metadata address"),
        ("https://metadata.google.internal/computeMetadata/v1/", "a cloud metadata name"),
        ("https://127.0.0.1:8443/jit", "a loopback address"),
        ("https://[fe80::1]/jit", "a link-local address"),
    ],
)
def test_a_webhook_url_to_plain_http_metadata_or_loopback_stops_the_bot_from_starting(
    make_bot: Callable[..., Bot], url: str, says: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        _webhook_bot(make_bot, url)

    [issue] = refused.value.issues
    assert issue.file.endswith("roles.yaml") and issue.line is not None
    assert "roles.grafana.environments.dev[0]" in str(issue)
    assert says in str(issue) and "allow_insecure: true" in str(issue)
