"""Tests for the Slack test kit: `FakeSlack` must answer the real `slack_sdk.WebClient` the
way slack.com does, and `SlackSim` must produce requests a real Bolt app accepts.

If these drift from Slack's behaviour every higher-level test built on the kit lies, so the
checks go through the real client/verifier instead of poking the fake's internals.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from slack_bolt import Ack, App, Respond
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from tests.fakes.slack_api import FakeSlack, SlackCall
from tests.fakes.slack_client import SlackSim, select_value, text_value

TOKEN = "xoxb-test"
SECRET = "test-signing-secret"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    # A frozen clock: Slack's time moves only when a test advances it.
    fake = FakeSlack(token=TOKEN, clock=lambda: 0.0).start()
    for user in ("U1", "U2", "U42", "U123"):
        fake.add_user(user, f"{user.lower()}@example.com")
    for channel in ("C0", "C1", "C2", "C0GENERAL"):
        fake.add_channel(channel)
    yield fake
    fake.stop()
    # A bug inside the fake is answered as HTTP 500; make sure none slipped by.
    assert fake.internal_errors == []


@pytest.fixture
def client(slack: FakeSlack) -> WebClient:
    return WebClient(token=TOKEN, base_url=slack.api_url, timeout=5)


def api_error(call: Callable[[], object]) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        call()
    return info.value


def error_code(call: Callable[[], object]) -> str:
    return str(api_error(call).response["error"])


# --------------------------------------------------------------------------- Web API


def test_auth_test_identifies_the_bot(client: WebClient, slack: FakeSlack) -> None:
    resp = client.auth_test()
    assert (resp["user_id"], resp["bot_id"], resp["team_id"], resp["user"]) == (
        "UBOT",
        "BBOT",
        "T0001",
        "jit-bot",
    )
    assert slack.calls_to("auth.test")[0].status == 200


def test_post_message_to_user_then_update(client: WebClient, slack: FakeSlack) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "Approve?"}}]
    posted = client.chat_postMessage(channel="U123", text="Approve?", blocks=blocks)
    assert posted["channel"] == "D123"  # a DM channel, stable per user
    assert posted["message"]["blocks"] == blocks
    second = client.chat_postMessage(channel="C0GENERAL", text="hello")
    assert float(second["ts"]) > float(posted["ts"])

    new_blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "Approved"}}]
    updated = client.chat_update(
        channel=posted["channel"], ts=posted["ts"], text="Approved", blocks=new_blocks
    )
    assert updated["ts"] == posted["ts"]

    msg = slack.message("U123", posted["ts"])  # user id resolves to the DM
    assert (msg["channel"], msg["text"], msg["blocks"]) == ("D123", "Approved", new_blocks)
    assert [u["text"] for u in msg["updates"]] == ["Approved"]
    assert [m["text"] for m in slack.messages_in("C0GENERAL")] == ["hello"]
    # Params are recorded as Python objects even though slack_sdk sent JSON.
    assert slack.calls_to("chat.postMessage")[0].params["blocks"] == blocks


def test_form_encoded_json_values_and_query_params_are_decoded(
    client: WebClient, slack: FakeSlack
) -> None:
    blocks = [{"type": "divider"}]
    client.api_call(
        "chat.postMessage", data={"channel": "C1", "text": "[1]", "blocks": json.dumps(blocks)}
    )
    client.api_call("auth.test", http_verb="GET", params={"probe": "yes"})
    post = slack.calls_to("chat.postMessage")[0]
    assert post.params["blocks"] == blocks
    assert post.params["text"] == "[1]"  # only JSON-valued arguments are decoded
    assert slack.calls_to("auth.test")[0].params == {"probe": "yes"}


def test_chat_errors_use_slack_codes(client: WebClient, slack: FakeSlack) -> None:
    assert error_code(lambda: client.chat_postMessage(channel="", text="x")) == "channel_not_found"
    # Through api_call: chat_postMessage would (rightly) warn about the missing text.
    assert error_code(lambda: client.api_call("chat.postMessage", json={"channel": "C1"})) == (
        "no_text"
    )
    err = api_error(lambda: client.chat_update(channel="C1", ts="1.000001", text="x"))
    assert err.response["error"] == "message_not_found"
    assert slack.messages == []
    assert [c.error for c in slack.calls] == ["channel_not_found", "no_text", "message_not_found"]


def test_ephemeral_and_conversations_open(client: WebClient, slack: FakeSlack) -> None:
    assert client.conversations_open(users="U42")["channel"]["id"] == "D42"
    resp = client.chat_postEphemeral(channel="C1", user="U42", text="only you")
    assert slack.ephemerals[0]["ts"] == resp["message_ts"]
    assert slack.ephemerals[0]["user"] == "U42"


def test_users_info_and_lookup_by_email(client: WebClient, slack: FakeSlack) -> None:
    slack.add_user("U1", "Alice@Example.com", name="alice")
    slack.add_user("U2", "bob@example.com", deleted=True)

    user = client.users_lookupByEmail(email="alice@example.com")["user"]
    assert user["id"] == "U1"
    assert user["profile"]["email"] == "Alice@Example.com"
    info = client.users_info(user="U2")["user"]
    assert (info["name"], info["deleted"], info["profile"]["email"]) == (
        "bob",
        True,
        "bob@example.com",
    )

    err = api_error(lambda: client.users_lookupByEmail(email="nobody@example.com"))
    assert err.response["error"] == "users_not_found"
    assert err.response.status_code == 200
    assert error_code(lambda: client.users_info(user="U404")) == "user_not_found"


def test_usergroups(client: WebClient, slack: FakeSlack) -> None:
    slack.add_usergroup("S1", "db-approvers", ["U1", "U2"])

    plain = client.usergroups_list()["usergroups"]
    assert [(g["id"], g["handle"]) for g in plain] == [("S1", "db-approvers")]
    assert "users" not in plain[0]
    assert client.usergroups_list(include_users=True)["usergroups"][0]["users"] == ["U1", "U2"]
    assert client.usergroups_users_list(usergroup="S1")["users"] == ["U1", "U2"]
    err = api_error(lambda: client.usergroups_users_list(usergroup="S404"))
    assert err.response["error"] == "no_such_subteam"


def test_views_open_update_push(client: WebClient, slack: FakeSlack) -> None:
    modal = {
        "type": "modal",
        "callback_id": "request",
        "private_metadata": "meta",
        "title": {"type": "plain_text", "text": "Request"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Which role?"}}],
    }
    t1 = slack.issue_trigger_id()
    opened = client.views_open(trigger_id=t1, view=modal)["view"]
    assert opened["id"].startswith("V") and opened["hash"]
    assert slack.views[0]["callback_id"] == "request"

    # A trigger_id opens one view only.
    err = api_error(lambda: client.views_open(trigger_id=t1, view=modal))
    assert err.response["error"] == "exchanged_trigger_id"

    updated = client.views_update(
        view_id=opened["id"], hash=opened["hash"], view={**modal, "private_metadata": "v2"}
    )["view"]
    assert updated["id"] == opened["id"] and updated["hash"] != opened["hash"]
    assert slack.view(opened["id"])["private_metadata"] == "v2"

    stale = api_error(lambda: client.views_update(view_id=opened["id"], hash="old", view=modal))
    assert stale.response["error"] == "hash_conflict"
    missing = api_error(lambda: client.views_update(view_id="V404", view=modal))
    assert missing.response["error"] == "not_found"

    pushed = client.views_push(trigger_id=slack.issue_trigger_id(), view=modal)["view"]
    assert [v["id"] for v in slack.views] == [opened["id"], pushed["id"]]


def test_apps_connections_open_needs_the_app_token(client: WebClient, slack: FakeSlack) -> None:
    slack.socket_url = "ws://127.0.0.1:9/socket"
    assert client.apps_connections_open(app_token="xapp-test")["url"] == slack.socket_url
    err = api_error(lambda: client.apps_connections_open(app_token=TOKEN))
    assert err.response["error"] == "not_allowed_token_type"


def test_unknown_method_and_invalid_token(client: WebClient, slack: FakeSlack) -> None:
    assert api_error(lambda: client.api_call("chat.nope")).response["error"] == "unknown_method"
    bad = WebClient(token="xoxb-wrong", base_url=slack.api_url, timeout=5)
    err = api_error(lambda: bad.chat_postMessage(channel="C1", text="x"))
    assert err.response["error"] == "invalid_auth"
    anonymous = WebClient(base_url=slack.api_url, timeout=5)
    assert api_error(anonymous.auth_test).response["error"] == "invalid_auth"
    assert slack.messages == []


# --------------------------------------------------------------------------- faults


def test_fail_next_rate_limit_with_retry_after(client: WebClient, slack: FakeSlack) -> None:
    slack.fail_next("chat.postMessage", retry_after=30)

    err = api_error(lambda: client.chat_postMessage(channel="C1", text="x"))
    assert err.response.status_code == 429
    assert err.response["error"] == "ratelimited"
    assert err.response.headers["Retry-After"] == "30"

    # Only the next call fails, and the failed one changed nothing.
    client.chat_postMessage(channel="C1", text="x")
    assert len(slack.messages) == 1
    assert [c.status for c in slack.calls] == [429, 200]
    assert len(slack.calls_to("chat.postMessage")) == 1


def test_fail_next_with_error_and_wildcard(client: WebClient, slack: FakeSlack) -> None:
    slack.fail_next("users.info", error="fatal_error")
    slack.fail_next("*", times=2, status=500)

    err = api_error(lambda: client.users_info(user="U1"))
    assert (err.response.status_code, err.response["error"]) == (200, "fatal_error")
    assert api_error(client.auth_test).response.status_code == 500
    assert api_error(client.auth_test).response.status_code == 500
    assert client.auth_test()["ok"] is True


def test_outage_answers_503_until_lifted(client: WebClient, slack: FakeSlack) -> None:
    slack.outage(True)
    assert api_error(client.auth_test).response.status_code == 503
    assert error_code(lambda: client.chat_postMessage(channel="C1", text="x")) == (
        "service_unavailable"
    )
    slack.outage(False)
    assert client.auth_test()["ok"] is True
    assert slack.messages == []


def test_reset_forgets_calls_but_keeps_directory(client: WebClient, slack: FakeSlack) -> None:
    slack.add_user("U1", "a@example.com")
    client.chat_postMessage(channel="C1", text="x")
    slack.fail_next("auth.test")
    slack.reset()
    assert (slack.calls, slack.messages, slack.responses) == ([], [], [])
    assert client.auth_test()["ok"]  # pending fault dropped too
    assert client.users_info(user="U1")["user"]["id"] == "U1"


# --------------------------------------------------------------------------- waiting


def test_wait_for_calls_sees_calls_from_other_threads(client: WebClient, slack: FakeSlack) -> None:
    worker = threading.Thread(
        target=lambda: [client.chat_postMessage(channel=f"C{i}", text=str(i)) for i in range(3)]
    )
    worker.start()
    calls = slack.wait_for_calls("chat.postMessage", count=3, timeout=5)
    worker.join(5)
    assert [c.params["channel"] for c in calls] == ["C0", "C1", "C2"]

    only_c2: Callable[[SlackCall], bool] = lambda c: c.params["channel"] == "C2"  # noqa: E731
    assert len(slack.wait_for_calls("chat.postMessage", where=only_c2)) == 1


def test_wait_for_times_out_with_recorded_methods(client: WebClient, slack: FakeSlack) -> None:
    client.auth_test()
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"chat\.update.*auth\.test\[200 ok\]"):
        slack.wait_for_calls("chat.update", timeout=0.2)
    assert time.monotonic() - started < 2
    with pytest.raises(AssertionError, match=r"auth\.test"):
        slack.wait_for(lambda: None, timeout=0.05)


def test_response_url_posts_are_recorded(slack: FakeSlack) -> None:
    hook = WebhookClient(slack.response_url("cmd-1"), timeout=5)
    assert hook.send_dict({"text": "done", "response_type": "ephemeral"}).status_code == 200
    body = slack.wait_for_response(name="cmd-1", timeout=5)
    assert body == {"text": "done", "response_type": "ephemeral", "_url_name": "cmd-1"}


# --------------------------------------------------------------------------- SlackSim


class _Capture(BaseHTTPRequestHandler):
    """Records the one request SlackSim sends, to check it against Slack's verifier."""

    seen: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append((dict(self.headers.items()), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_slack_sim_signature_verifies_with_slack_sdk(slack: FakeSlack) -> None:
    seen: list[tuple[dict[str, str], bytes]] = []
    handler = type("Capture", (_Capture,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        sim = SlackSim(f"http://127.0.0.1:{server.server_address[1]}", SECRET, slack)
        reply = sim.command("U1", "request db 1h")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)

    assert reply.status == 200
    headers, body = seen[0]
    verifier = SignatureVerifier(SECRET)
    assert verifier.is_valid(
        body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"]
    )
    assert verifier.is_valid_request(body, headers)
    assert not SignatureVerifier("other-secret").is_valid_request(body, headers)
    fields = dict(urllib.parse.parse_qsl(body.decode()))
    assert fields["response_url"] == slack.response_url(reply.response_url_name or "")
    assert (fields["command"], fields["text"], fields["trigger_id"]) == (
        "/jit",
        "request db 1h",
        reply.trigger_id,
    )


class _QuietWSGIHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def bolt_app(slack: FakeSlack) -> Iterator[str]:
    """A tiny real Bolt app behind a real HTTP server, wired to the fake Web API."""
    app = App(
        signing_secret=SECRET, client=WebClient(token=TOKEN, base_url=slack.api_url, timeout=5)
    )

    @app.command("/jit")
    def on_command(ack: Ack, body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        ack()
        respond(text=f"got {body['text']}")
        client.views_open(
            trigger_id=body["trigger_id"],
            view={
                "type": "modal",
                "callback_id": "request",
                "title": {"type": "plain_text", "text": "Request"},
                "submit": {"type": "plain_text", "text": "Submit"},
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Request"}}],
            },
        )

    @app.action("approve")
    def on_approve(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        client.chat_update(
            channel=body["channel"]["id"],
            ts=body["message"]["ts"],
            text=f"approved {body['actions'][0]['value']} by {body['user']['id']}",
        )

    @app.action("duration")
    def on_duration(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        chosen = body["actions"][0]["selected_option"]["value"]
        client.views_update(
            view_id=body["view"]["id"],
            view={
                "type": "modal",
                "callback_id": "request",
                "title": {"type": "plain_text", "text": "Request"},
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": chosen}}],
                "private_metadata": chosen,
            },
        )

    @app.view("request")
    def on_submit(ack: Ack, view: dict[str, Any]) -> None:
        values = view["state"]["values"]
        if not values["reason"]["reason"]["value"]:
            ack(response_action="errors", errors={"reason": "Required"})
        else:
            ack()

    server: WSGIServer = make_server(
        "127.0.0.1", 0, SlackRequestHandler(app), handler_class=_QuietWSGIHandler
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_slack_sim_drives_a_real_bolt_app(bolt_app: str, slack: FakeSlack) -> None:
    sim = SlackSim(bolt_app, SECRET, slack)

    reply = sim.command("U1", "request db")
    assert reply.status == 200
    assert slack.wait_for_response(name=reply.response_url_name)["text"] == "got request db"
    view = slack.wait_for(lambda: slack.views)[0]

    assert sim.select_action("U1", "duration", "2h", view=view, block_id="dur").status == 200
    slack.wait_for(lambda: slack.view(view["id"])["private_metadata"] == "2h")

    rejected = sim.submit_view("U1", view, {"reason": {"reason": text_value("")}})
    assert rejected.json == {"response_action": "errors", "errors": {"reason": "Required"}}
    accepted = sim.submit_view(
        "U1",
        view,
        {"reason": {"reason": text_value("incident")}, "dur": {"duration": select_value("1h")}},
    )
    assert (accepted.status, accepted.body) == (200, "")

    posted = WebClient(token=TOKEN, base_url=slack.api_url).chat_postMessage(
        channel="U2", text="approve?"
    )
    click = sim.block_action("U2", "approve", "req-7", message=slack.messages[0])
    assert click.status == 200
    slack.wait_for(lambda: slack.message(posted["channel"], posted["ts"])["updates"])
    assert slack.message("D2", posted["ts"])["text"] == "approved req-7 by U2"


def test_badly_signed_requests_are_rejected_by_bolt(bolt_app: str, slack: FakeSlack) -> None:
    sim = SlackSim(bolt_app, SECRET, slack)
    body = b"command=%2Fjit&text=x&user_id=U1"
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    forged = SlackSim(bolt_app, "wrong-secret", slack).sign(body)
    assert sim.raw(body, {**form, **forged}).status == 401
    stale = sim.sign(body, timestamp=int(time.time()) - 600)
    assert sim.raw(body, {**form, **stale}).status == 401
    assert sim.raw(body, form).status == 401


# --------------------------------------------------------------------------- strictness


def section(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


def button(**fields: Any) -> dict[str, Any]:
    return {
        "type": "actions",
        "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Go"}, **fields},
        ],
    }


def modal(**fields: Any) -> dict[str, Any]:
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Request access"},
        "blocks": [section("Loading…")],
        **fields,
    }


def plain(text: str) -> dict[str, str]:
    return {"type": "plain_text", "text": text}


# Each pair: blocks Slack accepts, at the limit, and the same one step past it.
def context(*texts: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": t} for t in texts]}


def fields(*texts: str) -> dict[str, Any]:
    return {"type": "section", "fields": [{"type": "mrkdwn", "text": t} for t in texts]}


def select(text: str = "t", value: str = "v") -> dict[str, Any]:
    option = {"text": plain(text), "value": value}
    return {
        "type": "actions",
        "elements": [
            {
                "type": "static_select",
                "action_id": "s",
                "options": [option],
                "initial_option": option,
            }
        ],
    }


AT_AND_PAST_THE_LIMIT = {
    "section text of 3,000 characters": ([section("x" * 3000)], [section("x" * 3001)]),
    "50 blocks in a message": ([{"type": "divider"}] * 50, [{"type": "divider"}] * 51),
    "button value of 2,000 characters": (
        [button(action_id="a", value="v" * 2000)],
        [button(action_id="a", value="v" * 2001)],
    ),
    "action_id of 255 characters": ([button(action_id="a" * 255)], [button(action_id="a" * 256)]),
    "block_id of 255 characters": (
        [section("x", block_id="b" * 255)],
        [section("x", block_id="b" * 256)],
    ),
    "known fields only": ([section("x")], [section("x", colour="red")]),
    "known block types only": ([{"type": "divider"}], [{"type": "dividr"}]),
    "a section with text": ([section("x")], [{"type": "section"}]),
    "context text of 3,000 characters": ([context("x" * 3000)], [context("x" * 3001)]),
    "10 context elements": ([context(*["x"] * 10)], [context(*["x"] * 11)]),
    "a field of 2,000 characters": ([fields("x" * 2000)], [fields("x" * 2001)]),
    "10 fields": ([fields(*["x"] * 10)], [fields(*["x"] * 11)]),
    "a plain-text header of 150 characters": (
        [{"type": "header", "text": plain("x" * 150)}],
        [{"type": "header", "text": plain("x" * 151)}],
    ),
    "a header in plain text only": (
        [{"type": "header", "text": plain("x")}],
        [{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}],
    ),
    "an option of 75 characters": ([select(text="t" * 75)], [select(text="t" * 76)]),
    "an option value of 150 characters": ([select(value="v" * 150)], [select(value="v" * 151)]),
    "block_ids unique in a message": (
        [section("x", block_id="a"), section("x", block_id="b")],
        [section("x", block_id="a"), section("x", block_id="a")],
    ),
}


@pytest.mark.parametrize("case", AT_AND_PAST_THE_LIMIT)
def test_messages_with_blocks_slack_refuses_are_refused_as_invalid_blocks(
    client: WebClient, slack: FakeSlack, case: str
) -> None:
    accepted, refused = AT_AND_PAST_THE_LIMIT[case]
    posted = client.chat_postMessage(channel="C1", text="t", blocks=accepted)

    err = api_error(lambda: client.chat_postMessage(channel="C1", text="t", blocks=refused))
    assert (err.response.status_code, err.response["error"]) == (200, "invalid_blocks")
    assert err.response["response_metadata"]["messages"]  # says what was wrong
    update = api_error(
        lambda: client.chat_update(channel="C1", ts=posted["ts"], text="t", blocks=refused)
    )
    assert update.response["error"] == "invalid_blocks"
    ephemeral = api_error(
        lambda: client.chat_postEphemeral(channel="C1", user="U1", text="t", blocks=refused)
    )
    assert ephemeral.response["error"] == "invalid_blocks"
    hook = WebhookClient(slack.response_url("r"), timeout=5).send_dict(
        {"text": "t", "blocks": refused}
    )
    assert (hook.status_code, hook.body) == (400, "invalid_blocks")

    assert [m["blocks"] for m in slack.messages] == [accepted]  # nothing refused was kept
    assert slack.responses == [] and slack.ephemerals == []
    assert [m["error"] for m in slack.malformed] == ["invalid_blocks"] * 4


MODALS_SLACK_REFUSES = {
    "no title": {"title": None},
    "a title of 25 characters": {"title": plain("x" * 25)},
    "a mrkdwn title": {"title": {"type": "mrkdwn", "text": "Request"}},
    "a submit of 25 characters": {"submit": plain("x" * 25)},
    "a close of 25 characters": {"close": plain("x" * 25)},
    "101 blocks": {"blocks": [{"type": "divider"}] * 101},
    "an input without submit": {
        "blocks": [
            {
                "type": "input",
                "block_id": "reason",
                "label": plain("Reason"),
                "element": {"type": "plain_text_input", "action_id": "reason"},
            }
        ]
    },
    "a block Slack refuses": {"blocks": [section("x" * 3001)]},
}


@pytest.mark.parametrize("case", MODALS_SLACK_REFUSES)
def test_views_slack_refuses_are_refused_as_invalid_arguments(
    client: WebClient, slack: FakeSlack, case: str
) -> None:
    bad = {k: v for k, v in modal(**MODALS_SLACK_REFUSES[case]).items() if v is not None}
    trigger = slack.issue_trigger_id()

    err = api_error(lambda: client.views_open(trigger_id=trigger, view=bad))
    assert (err.response.status_code, err.response["error"]) == (200, "invalid_arguments")
    assert err.response["response_metadata"]["messages"]
    # The trigger was not spent on the refused view: the good one still opens.
    opened = client.views_open(trigger_id=trigger, view=modal())["view"]
    update = api_error(lambda: client.views_update(view_id=opened["id"], view=bad))
    assert update.response["error"] == "invalid_arguments"
    push = api_error(lambda: client.views_push(trigger_id=slack.issue_trigger_id(), view=bad))
    assert push.response["error"] == "invalid_arguments"

    assert [v["blocks"] for v in slack.views] == [modal()["blocks"]]
    assert [m["error"] for m in slack.malformed] == ["invalid_arguments"] * 3


def test_the_largest_modal_slack_takes_is_taken(client: WebClient, slack: FakeSlack) -> None:
    biggest = modal(
        title=plain("x" * 24),
        submit=plain("s" * 24),
        close=plain("c" * 24),
        blocks=[{"type": "divider"}] * 100,
    )
    opened = client.views_open(trigger_id=slack.issue_trigger_id(), view=biggest)["view"]
    assert len(slack.view(opened["id"])["blocks"]) == 100
    assert slack.malformed == []


def test_home_tab_is_validated_and_replaced_per_user(client: WebClient, slack: FakeSlack) -> None:
    home = {"type": "home", "blocks": [section("Your requests")]}
    first = client.views_publish(user_id="U1", view=home)["view"]
    again = client.views_publish(user_id="U1", view={**home, "blocks": [section("None")]})
    assert again["view"]["id"] == first["id"]
    assert error_code(lambda: client.views_publish(user_id="U404", view=home)) == ("user_not_found")
    refused = {"type": "home", "blocks": [section("x" * 3001)]}
    assert error_code(lambda: client.views_publish(user_id="U1", view=refused)) == (
        "invalid_arguments"
    )


def test_unknown_conversations_and_users_are_not_found(client: WebClient, slack: FakeSlack) -> None:
    def code(call: Callable[[], object]) -> str:
        return error_code(call)

    assert code(lambda: client.chat_postMessage(channel="C404", text="x")) == "channel_not_found"
    assert code(lambda: client.chat_postMessage(channel="U404", text="x")) == "channel_not_found"
    assert code(lambda: client.chat_postMessage(channel="D404", text="x")) == "channel_not_found"
    assert code(lambda: client.chat_update(channel="C404", ts="1.0", text="x")) == (
        "channel_not_found"
    )
    assert code(lambda: client.conversations_history(channel="C404")) == "channel_not_found"
    assert code(lambda: client.chat_postEphemeral(channel="C404", user="U1", text="x")) == (
        "channel_not_found"
    )
    assert code(lambda: client.chat_postEphemeral(channel="C1", user="U404", text="x")) == (
        "user_not_found"
    )
    assert code(lambda: client.conversations_open(users="U404")) == "user_not_found"
    assert code(lambda: client.conversations_open(users="U1,U404")) == "user_not_found"
    assert code(lambda: client.users_info(user="U404")) == "user_not_found"
    assert slack.messages == [] and slack.ephemerals == []

    # What is known works: a registered channel, a user, their DM, a group DM once opened.
    slack.add_channel("C404")
    client.chat_postMessage(channel="C404", text="now known")
    client.chat_postMessage(channel="D1", text="the DM of U1")
    group = client.conversations_open(users="U1,U2")["channel"]["id"]
    client.chat_postMessage(channel=group, text="to both")
    assert [m["channel"] for m in slack.messages] == ["C404", "D1", group]


def test_trigger_ids_must_be_issued_fresh_and_used_once(
    client: WebClient, slack: FakeSlack
) -> None:
    made_up = api_error(lambda: client.views_open(trigger_id="123.456.abc", view=modal()))
    assert made_up.response["error"] == "invalid_arguments"

    stale = slack.issue_trigger_id()
    fresh = slack.issue_trigger_id()
    slack.advance(3.0)  # exactly 3 s on: still usable, as Slack's window is 3 s
    client.views_open(trigger_id=fresh, view=modal())
    slack.advance(0.01)
    err = api_error(lambda: client.views_open(trigger_id=stale, view=modal()))
    assert (err.response.status_code, err.response["error"]) == (200, "expired_trigger_id")
    assert error_code(lambda: client.views_open(trigger_id=fresh, view=modal())) == (
        "exchanged_trigger_id"
    )
    assert len(slack.views) == 1
    assert slack.malformed[0]["messages"] == ["invalid `trigger_id`"]


def test_response_urls_take_five_posts_within_thirty_minutes(slack: FakeSlack) -> None:
    busy = WebhookClient(slack.response_url("busy"), timeout=5)
    late = WebhookClient(slack.response_url("late"), timeout=5)
    answers = [busy.send_dict({"text": f"post {i}"}).status_code for i in range(1, 7)]
    assert answers == [200] * 5 + [404]
    assert busy.send_dict({"text": "again"}).body == "used_url"

    slack.advance(30 * 60)
    assert late.send_dict({"text": "at 30 minutes"}).status_code == 200
    slack.advance(0.01)
    expired = late.send_dict({"text": "past 30 minutes"})
    assert (expired.status_code, expired.body) == (404, "expired_url")
    assert [r["text"] for r in slack.responses] == [
        *(f"post {i}" for i in range(1, 6)),
        "at 30 minutes",
    ]
    # A bot that posts past a response_url's life fails the test that runs it.
    assert [m["error"] for m in slack.malformed] == ["used_url", "used_url", "expired_url"]


def test_the_clock_is_real_time_unless_replaced() -> None:
    fake = FakeSlack()  # not started: only its clock is looked at
    before = time.monotonic()
    assert before <= fake.now() <= time.monotonic()
    fake.advance(10)
    assert fake.now() >= before + 10
    frozen = FakeSlack(clock=lambda: 100.0)
    frozen.advance(2.5)
    assert frozen.now() == 102.5


def test_a_closed_modal_cannot_be_updated(client: WebClient, slack: FakeSlack) -> None:
    opened = client.views_open(trigger_id=slack.issue_trigger_id(), view=modal())["view"]
    slack.close_view(opened["id"])
    assert error_code(lambda: client.views_update(view_id=opened["id"], view=modal())) == (
        "not_found"
    )
    assert slack.view(opened["id"])["id"] == opened["id"]  # still there to read
