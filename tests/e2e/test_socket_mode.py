"""Socket Mode end to end: ``jit-bot serve`` with SLACK_APP_TOKEN set, as a real process,
receives slash commands and button clicks over the WebSocket the way Slack delivers them.

test_process.py shows that Socket Mode is chosen; these show that it works. Each envelope
is acknowledged exactly once; the bot acknowledges before it works (shown with a grant the
cloud holds unanswered: the ack arrives while the work cannot have finished), then answers
through the response_url and the Web API as in HTTP mode.

Slack's own deadline is three seconds. A test machine under load cannot promise a
subprocess three real seconds, so the acks are waited for ``ACK_WAIT``; what keeps the
bot within Slack's deadline is that its ack waits on nothing, which is what is asserted.
"""

from __future__ import annotations

import json
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bot.slack.blocks import END_ACCESS, HELP
from tests.conftest import ALICE
from tests.e2e.helpers import buttons
from tests.fakes.processes import START_TIMEOUT, BotProcess, Launcher, get, wait
from tests.fakes.slack_api import APP_ID, BOT_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID, FakeSlack
from tests.fakes.socket_mode import FakeSocketMode
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.kit.processes import APP_TOKEN, TARGET, bot_env

GRANT = "request tooling dev 1h INC-7 rotate the dashboards"
ACK_WAIT = 30.0  # seconds; see the module docstring


@pytest.fixture
def socket_mode(fake_slack: FakeSlack) -> Iterator[FakeSocketMode]:
    server = FakeSocketMode().start()
    fake_slack.socket_url = server.url
    try:
        yield server
        assert not server.errors, server.errors
    finally:
        server.close()


@dataclass(frozen=True)
class Served:
    """A ``jit-bot serve`` process and the Socket Mode server it is connected to."""

    process: BotProcess
    socket_mode: FakeSocketMode


# `socket_mode` is set up before `launcher`: teardown then stops the bot before its
# Socket Mode server goes away, and the bot never sees Slack vanish under it.
@pytest.fixture
def served(
    socket_mode: FakeSocketMode,
    launcher: Launcher,
    fake_slack: FakeSlack,
    receiver: WebhookReceiver,
    database_url: str,
) -> Served:
    env = bot_env(launcher, fake_slack, receiver, database_url, SLACK_APP_TOKEN=APP_TOKEN)
    process = launcher.serve(env)
    assert process.wait_healthy()["status"] == "ok"
    socket_mode.wait_connected(timeout=START_TIMEOUT)
    wait(lambda: _slack_connection(process) == "connected", START_TIMEOUT, "/healthz connected")
    return Served(process, socket_mode)


def _slack_connection(process: BotProcess) -> str:
    status, body = get(f"{process.url}/healthz")
    assert status == 200, body
    return str(json.loads(body)["slack"])


def _stop(process: BotProcess, socket_mode: FakeSocketMode) -> None:
    """SIGTERM the bot and wait until the fake has read all it sent: what it acked by
    then is all it will ever ack."""
    process.popen.send_signal(signal.SIGTERM)
    assert process.wait_exit() == 0, process.output()
    socket_mode.wait_open(0)
    assert "Traceback" not in process.stderr.read_text(), process.output()


def _trigger_id() -> str:
    return f"{int(time.time())}.{uuid.uuid4().hex[:20]}"


def _command(slack: FakeSlack, user: str, text: str, response_url_name: str) -> dict[str, Any]:
    """``/jit <text>`` as a slash_commands envelope carries it: the form fields Slack
    would POST in HTTP mode, as one JSON object."""
    known = slack.get_user(user)
    return {
        "token": "legacy-verification-token",
        "team_id": TEAM_ID,
        "team_domain": TEAM_DOMAIN,
        "channel_id": "C0GENERAL",
        "channel_name": "general",
        "user_id": user,
        "user_name": known["name"] if known else user.lower(),
        "command": "/jit",
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": slack.response_url(response_url_name),
        "trigger_id": _trigger_id(),
    }


def _click(
    slack: FakeSlack, user: str, message: dict[str, Any], action_id: str, response_url_name: str
) -> dict[str, Any]:
    """The block_actions payload of clicking `action_id` on `message` in `user`'s DM."""
    [(block_id, button)] = [
        (block.get("block_id", ""), element)
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == action_id
    ]
    known = slack.get_user(user)
    name = known["name"] if known else user.lower()
    return {
        "type": "block_actions",
        "token": "legacy-verification-token",
        "api_app_id": APP_ID,
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "user": {"id": user, "username": name, "name": name, "team_id": TEAM_ID},
        "trigger_id": _trigger_id(),
        "container": {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": message["channel"],
            "is_ephemeral": False,
        },
        "channel": {"id": message["channel"], "name": "directmessage"},
        "message": {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "ts": message["ts"],
            "text": message["text"],
            "blocks": message["blocks"],
        },
        "state": {"values": {}},
        "response_url": slack.response_url(response_url_name),
        "actions": [{**button, "block_id": block_id, "action_ts": f"{time.time():.6f}"}],
    }


def _dms_with_end_access(slack: FakeSlack, request_id: str) -> list[dict[str, Any]]:
    return [
        message
        for message in slack.messages_in(ALICE)
        if (END_ACCESS, request_id) in [(b["action_id"], b.get("value")) for b in buttons(message)]
    ]


def _first_connection(served: Served, slack: FakeSlack) -> None:
    """Nothing before: the connection the bot opened when it started."""


def _refreshed_connection(served: Served, slack: FakeSlack) -> None:
    """Slack asks for a refresh; the bot opens a new connection and closes the old one."""
    opened = len(slack.calls_to("apps.connections.open"))

    served.socket_mode.refresh()

    served.socket_mode.wait_connected(count=2, timeout=START_TIMEOUT)
    # slack_sdk reads the new connection only once it has closed the old one, which can
    # take its whole 3 s receive timeout; an envelope sent before that would miss Slack's
    # deadline. Real Slack would deliver it anyway: that window is slack_sdk's, not ours.
    served.socket_mode.wait_open(1, timeout=START_TIMEOUT)
    assert len(slack.calls_to("apps.connections.open")) == opened + 1


def _help_is_acked_then_answered(socket_mode: FakeSocketMode, slack: FakeSlack) -> str:
    """Send ``/jit help`` over ``socket_mode``; return its envelope id once the bot has
    acked it and answered through the response_url."""
    envelope = socket_mode.slash_command(_command(slack, ALICE, "help", "help"))
    # An empty ack: the bot acknowledges before it works and answers afterwards.
    assert socket_mode.wait_for_ack(envelope, ACK_WAIT) == {"envelope_id": envelope}
    assert slack.wait_for_response(name="help")["text"] == HELP
    return envelope


@pytest.mark.parametrize(
    ("before", "connections"),
    [
        pytest.param(_first_connection, 1, id="on_the_connection_opened_at_start"),
        pytest.param(_refreshed_connection, 2, id="on_the_new_one_after_slack_asks_for_a_refresh"),
    ],
)
def test_help_over_the_websocket_is_acked_once_then_answered_through_the_response_url(
    served: Served,
    fake_slack: FakeSlack,
    before: Callable[[Served, FakeSlack], None],
    connections: int,
) -> None:
    before(served, fake_slack)

    envelope = _help_is_acked_then_answered(served.socket_mode, fake_slack)

    assert fake_slack.wait_for_response(name="help").get("response_type") == "ephemeral"
    _stop(served.process, served.socket_mode)
    assert served.socket_mode.received == [{"envelope_id": envelope}]
    assert [r["_url_name"] for r in fake_slack.responses] == ["help"]
    assert served.socket_mode.connections == connections


def test_request_over_the_websocket_is_granted_and_the_dm_button_ends_it(
    served: Served,
    fake_slack: FakeSlack,
    receiver: WebhookReceiver,
) -> None:
    socket_mode = served.socket_mode

    receiver.hang("grant")  # the cloud holds the grant unanswered: the work cannot finish
    request = socket_mode.slash_command(_command(fake_slack, ALICE, GRANT, "request"))

    assert socket_mode.wait_for_ack(request, ACK_WAIT) == {"envelope_id": request}
    wait(lambda: receiver.waiting == 1, START_TIMEOUT, "the grant call to the cloud")
    assert not receiver.holdings  # acked while the grant was still out
    receiver.let_go()
    text = fake_slack.wait_for_response(name="request")["text"]
    request_id = text.split(":")[0]
    assert re.fullmatch(r"R-[0-9A-Z]{8}", request_id), text
    assert text == f"{request_id}: approved by rule; granting `tooling` in `dev` now."
    wait(
        lambda: receiver.holdings == {("alice@example.com", TARGET)},
        START_TIMEOUT,
        "the webhook receiver to hold the grant",
    )
    [dm] = fake_slack.wait_for(lambda: _dms_with_end_access(fake_slack, request_id), START_TIMEOUT)

    click = socket_mode.interactive(_click(fake_slack, ALICE, dm, END_ACCESS, "end"))

    assert socket_mode.wait_for_ack(click, ACK_WAIT) == {"envelope_id": click}
    answer = fake_slack.wait_for_response(name="end")
    assert answer["text"] == f"Ending access for {request_id} now."
    wait(lambda: not receiver.holdings, START_TIMEOUT, "the receiver to lose the grant")
    applied = [
        (e["event"], e["request_id"], e["target"]["name"])
        for e in receiver.events
        if not e["replay"]
    ]
    assert applied == [("grant", request_id, TARGET), ("revoke", request_id, TARGET)]
    fake_slack.wait_for(
        lambda: "has ended" in fake_slack.message(dm["channel"], dm["ts"])["text"], START_TIMEOUT
    )
    assert not buttons(fake_slack.message(dm["channel"], dm["ts"]))
    _stop(served.process, socket_mode)
    assert socket_mode.received == [{"envelope_id": request}, {"envelope_id": click}]


def test_healthz_says_when_the_socket_mode_connection_is_gone_and_when_it_is_back(
    served: Served,
    fake_slack: FakeSlack,
) -> None:
    process = served.process

    served.socket_mode.close()  # Slack's Socket Mode endpoint goes away
    wait(lambda: _slack_connection(process) == "connecting", START_TIMEOUT, "connecting")
    assert process.popen.poll() is None, process.output()

    back = FakeSocketMode().start()
    try:
        fake_slack.socket_url = back.url
        # slack_sdk looks at its connection every few seconds and then asks for a new URL.
        back.wait_connected(timeout=3 * START_TIMEOUT)
        wait(lambda: _slack_connection(process) == "connected", START_TIMEOUT, "connected")
        _help_is_acked_then_answered(back, fake_slack)
        _stop(process, back)
    finally:
        back.close()
