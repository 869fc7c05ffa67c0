"""The embedded Slack Web API as local mode uses it: `LocalSlack` itself (not the tests'
FakeSlack), driven through slack_sdk's real WebClient and WebhookClient. Its change feed
must report, in order and with monotonic numbers, what a page showing the workspace has
to redraw, and must wake a waiting reader as soon as something changes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from bot.local.slack import ChangeKind, LocalSlack
from tests.fakes.processes import free_port

TOKEN = "xoxb-local"
MODAL = {
    "type": "modal",
    "callback_id": "request",
    "title": {"type": "plain_text", "text": "Request access"},
    "close": {"type": "plain_text", "text": "Cancel"},
    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Pick a role"}}],
}


@pytest.fixture
def slack() -> Iterator[LocalSlack]:
    local = LocalSlack(token=TOKEN).start()
    local.add_user("U1", "alice@example.com")
    local.add_channel("C1")
    yield local
    local.stop()
    assert local.internal_errors == []
    assert local.malformed == []


@pytest.fixture
def client(slack: LocalSlack) -> WebClient:
    return WebClient(token=TOKEN, base_url=slack.api_url, timeout=5)


def test_the_feed_reports_each_change_in_order_with_its_data(
    slack: LocalSlack, client: WebClient
) -> None:
    posted = client.chat_postMessage(channel="U1", text="Request <b> pending")
    client.chat_update(channel=posted["channel"], ts=posted["ts"], text="Approved")
    client.chat_postEphemeral(channel="C1", user="U1", text="Only you can see this")
    opened = client.views_open(trigger_id=slack.issue_trigger_id(), view=MODAL)
    view_id = opened["view"]["id"]
    client.views_update(view_id=view_id, view={**MODAL, "callback_id": "request-2"})
    hook = WebhookClient(slack.issue_response_url("command")[1], timeout=5)
    assert hook.send_dict({"text": "Working on it"}).status_code == 200
    slack.close_view(view_id)

    seq, changes = slack.changes_since(0)

    assert [c["kind"] for c in changes] == [
        ChangeKind.MESSAGE_POSTED,
        ChangeKind.MESSAGE_UPDATED,
        ChangeKind.EPHEMERAL_POSTED,
        ChangeKind.VIEW_OPENED,
        ChangeKind.VIEW_UPDATED,
        ChangeKind.RESPONSE_POSTED,
        ChangeKind.VIEW_CLOSED,
    ]
    assert [c["seq"] for c in changes] == list(range(1, 8))
    assert seq == 7
    post, update, ephemeral, view_open, view_update, response, closed = changes
    assert post["channel"] == posted["channel"]
    assert post["ts"] == posted["ts"]
    assert post["text"] == "Request <b> pending"
    assert (update["ts"], update["text"]) == (posted["ts"], "Approved")
    assert (ephemeral["user"], ephemeral["text"]) == ("U1", "Only you can see this")
    assert view_open["view"]["id"] == view_id
    assert view_open["view"]["callback_id"] == "request"
    assert view_update["view"]["callback_id"] == "request-2"
    assert response["body"] == {"text": "Working on it"}
    assert response["name"].startswith("command-")
    assert closed["view_id"] == view_id


def test_changes_since_gives_only_what_came_after(slack: LocalSlack, client: WebClient) -> None:
    client.chat_postMessage(channel="C1", text="first")
    seen, _ = slack.changes_since(0)
    client.chat_postMessage(channel="C1", text="second")
    client.chat_postMessage(channel="C1", text="third")

    seq, changes = slack.changes_since(seen)

    assert [c["text"] for c in changes] == ["second", "third"]
    assert seq == seen + 2
    assert slack.changes_since(seq) == (seq, [])


def test_refused_calls_change_nothing(slack: LocalSlack, client: WebClient) -> None:
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel="C404", text="nowhere")
    with pytest.raises(SlackApiError):
        client.views_update(view_id="V404", view=MODAL)
    with pytest.raises(SlackApiError):
        client.chat_update(channel="C1", ts="1.000000", text="no such message")

    assert slack.changes_since(0) == (0, [])


def test_a_reader_holding_an_item_cannot_change_the_feed(
    slack: LocalSlack, client: WebClient
) -> None:
    client.chat_postMessage(channel="C1", text="original")
    _, [item] = slack.changes_since(0)
    item["text"] = "tampered"

    assert slack.changes_since(0)[1][0]["text"] == "original"


def test_waiting_wakes_as_soon_as_something_changes(slack: LocalSlack, client: WebClient) -> None:
    woke: list[tuple[bool, float]] = []

    def wait() -> None:
        started = time.monotonic()
        woke.append((slack.wait_for_change(0, timeout=30), time.monotonic() - started))

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.2)
    assert woke == []  # nothing changed yet: still waiting
    client.chat_postMessage(channel="C1", text="wake up")
    waiter.join(timeout=10)

    [(changed, waited)] = woke
    assert changed is True
    assert waited < 10  # woken by the post, not by the 30 s timeout


def test_waiting_without_a_change_times_out(slack: LocalSlack, client: WebClient) -> None:
    client.chat_postMessage(channel="C1", text="already seen")
    seq, _ = slack.changes_since(0)

    assert slack.wait_for_change(seq, timeout=0.05) is False
    assert slack.wait_for_change(seq - 1, timeout=0.05) is True


def test_sequence_numbers_keep_growing_across_reset(slack: LocalSlack, client: WebClient) -> None:
    client.chat_postMessage(channel="C1", text="before")
    slack.reset()
    client.chat_postMessage(channel="C1", text="after")

    seq, changes = slack.changes_since(0)

    assert [c["seq"] for c in changes] == [1, 2]
    assert seq == 2
    assert slack.messages[0]["text"] == "after"


def test_it_binds_the_host_and_port_it_is_given() -> None:
    port = free_port()
    local = LocalSlack(token=TOKEN, host="127.0.0.1", port=port).start()
    try:
        assert local.port == port
        assert local.api_url == f"http://127.0.0.1:{port}/api/"
        client = WebClient(token=TOKEN, base_url=local.api_url, timeout=5)
        assert client.auth_test()["team_id"] == "T0001"
    finally:
        local.stop()


def test_a_response_url_cannot_be_guessed_from_the_one_before() -> None:
    slack = LocalSlack(token=TOKEN).start()
    try:
        first_name, first = slack.issue_response_url("command")
        second_name, _ = slack.issue_response_url("command")
        guessed = first.replace(first_name, "command-2")

        answer = WebhookClient(guessed, timeout=5).send(text="approved, open the console")

        assert second_name.startswith("command-2-") and len(second_name) > len("command-2-") + 12
        assert answer.status_code == 404  # as Slack answers an unknown response_url
        assert slack.responses == []
        assert [m["error"] for m in slack.malformed] == ["no_service"]
    finally:
        slack.stop()
