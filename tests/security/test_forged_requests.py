"""Forged and malformed requests: bad, missing, non-ASCII or stale signatures, timestamps
more than five minutes off, altered bodies and replays all get 401, never a 5xx, and reach
no handler and no database write.

The forgeries are slash commands, button clicks (block_actions) and modal submissions
(view_submission), each body one the bot would act on if it were signed right. "No
handler" is counted where handlers are entered: every request handed to the Bolt app and
every listener function it runs are wrapped in the running bot (listener_calls.py), and a
genuine request of each kind, sent at the end, must move those counters.

CI runs 1,000 fixed examples per database; ``pytest --full`` explores 10,000 from a printed
seed (``pytest --full --hypothesis-seed=N tests/security/test_forged_requests.py`` replays
one run): see tests/explore.py.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import time
from collections import Counter
from urllib.parse import urlencode

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlmodel import SQLModel

from tests.conftest import ALICE, BOB, MALLORY, SIGNING_SECRET, Bot
from tests.e2e.helpers import footprint
from tests.explore import Exploration
from tests.fakes.slack_api import APP_ID, TEAM_ID
from tests.fakes.slack_client import select_value, text_value
from tests.security.listener_calls import ListenerCalls

KINDS = [
    "no signature",
    "no timestamp",
    "random signature",
    "wrong secret",
    "wrong version",
    "non-ascii signature",
    "non-ascii timestamp",
    "stale",
    "future",
    "garbage timestamp",
    "altered body",
    "truncated body",
]
FORM = "application/x-www-form-urlencoded"
# Texts and values the bot would act on, and some it would not (any text at all).
COMMAND_TEXTS = [
    "request db-admin dev 30m x",
    "request prod-support prod 1h INC-1",
    "list",
    "extend R-ZZZZZZZZ 30m x",
    "approve R-ZZZZZZZZ",
    "deny R-ZZZZZZZZ x",
]
REQUEST_IDS = st.one_of(
    st.just("R-ZZZZZZZZ"),
    st.text("ABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=8, max_size=8).map("R-".__add__),
    st.text(max_size=40),
)
# A signature stays valid for five minutes either way; valid timestamps are drawn well
# inside that, so a slow run never turns one kind into another.
IN_WINDOW = st.integers(min_value=-240, max_value=240)


def _sign(body: bytes, timestamp: str, secret: str = SIGNING_SECRET) -> str:
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def _payload(kind: str, user: str, **fields: object) -> bytes:
    payload = {
        "type": kind,
        "token": "x",
        "api_app_id": APP_ID,
        "team": {"id": TEAM_ID, "domain": "test"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID},
        "trigger_id": "1.2.3",
        **fields,
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


@st.composite
def bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    """A body the bot would act on if it were signed: a command, a click or a submission."""
    user = draw(st.sampled_from([ALICE, BOB, MALLORY]))
    shape = draw(
        st.sampled_from(["command", "click", "request modal", "deny modal", "extend modal"])
    )
    if shape == "command":
        text = draw(st.one_of(st.sampled_from(COMMAND_TEXTS), st.text(max_size=60)))
        fields = {
            "token": "x",
            "team_id": TEAM_ID,
            "user_id": user,
            "command": "/jit",
            "text": text,
            "response_url": "http://127.0.0.1:1/never",
            "trigger_id": "1.2.3",
            "channel_id": "C0GENERAL",
        }
        return shape, urlencode(fields).encode()
    if shape == "click":
        actions = ["approve", "deny", "end_access", "extend", "request_again", "show_credentials"]
        action = draw(st.sampled_from(actions))
        button = {"type": "button", "action_id": action, "block_id": "b"}
        button["value"] = draw(REQUEST_IDS)
        return shape, _payload(
            "block_actions",
            user,
            actions=[button],
            response_url="http://127.0.0.1:1/never",
            container={"type": "message", "message_ts": "1.1", "channel_id": user},
        )
    if shape == "request modal":
        values = {
            "role": {"role": select_value(draw(st.sampled_from(["db-admin", "prod-support"])))},
            "environment": {"environment": select_value(draw(st.sampled_from(["dev", "prod"])))},
            "duration": {"duration": text_value(draw(st.sampled_from(["30m", "1h", "99d"])))},
            "reason": {"reason": text_value(draw(st.text(max_size=60)))},
        }
        view = {
            "id": "VFORGED",
            "type": "modal",
            "callback_id": "jit_request",
            "state": {"values": values},
        }
        return shape, _payload("view_submission", user, view=view)
    values = {"reason": {"reason": text_value(draw(st.text(max_size=60)))}}
    if shape == "extend modal":
        values["duration"] = {"duration": text_value(draw(st.sampled_from(["30m", "1h", "x"])))}
    view = {
        "id": "VFORGED",
        "type": "modal",
        "callback_id": "jit_extend" if shape == "extend modal" else "jit_deny",
        "private_metadata": draw(REQUEST_IDS),
        "state": {"values": values},
    }
    return shape, _payload("view_submission", user, view=view)


@st.composite
def forged(draw: st.DrawFn) -> tuple[str, str, bytes, dict[str, str]]:
    # The kinds that draw nothing more of their own are drawn twice as often: Hypothesis
    # does not repeat an example, so they would otherwise get a smaller share.
    kind = draw(st.sampled_from([*KINDS, "no signature", "no timestamp", "wrong version"]))
    shape, body = draw(bodies())
    now = int(time.time())
    timestamp = str(now + draw(IN_WINDOW))
    headers = {"Content-Type": FORM}
    signature = _sign(body, timestamp)
    if kind == "random signature":
        signature = "v0=" + draw(st.text("0123456789abcdef", min_size=0, max_size=64))
    elif kind == "wrong secret":
        signature = _sign(body, timestamp, draw(st.text(min_size=1, max_size=20)) + "!")
    elif kind == "wrong version":
        signature = "v1=" + signature[3:]
    elif kind == "non-ascii signature":
        cut = draw(st.integers(min_value=0, max_value=len(signature)))
        signature = signature[:cut] + draw(st.text("éß☃漢字٣", min_size=1, max_size=5))
    elif kind == "non-ascii timestamp":
        digits = draw(st.text("٠١٢٣٤٥٦٧٨٩", min_size=1, max_size=3))  # Arabic-Indic digits
        timestamp = draw(st.sampled_from([timestamp + digits, digits + timestamp]))
        signature = _sign(body, timestamp)
    elif kind in ("stale", "future"):
        # A minute past the window: a "future" timestamp drawn at 301 s would be back
        # inside it by the time a slow run sent it.
        skew = draw(st.integers(min_value=360, max_value=10**8))
        timestamp = str(now - skew if kind == "stale" else now + skew)
        signature = _sign(body, timestamp)
    elif kind == "garbage timestamp":
        # Printable only: control characters make the request invalid HTTP, which the
        # HTTP server itself answers with 400 before any application code runs.
        printable = st.characters(
            min_codepoint=0x20, max_codepoint=0x2FFF, exclude_characters="\x7f"
        )
        timestamp = draw(
            st.text(printable, min_size=0, max_size=12).filter(lambda t: not t.isdigit())
        )
        signature = _sign(body, timestamp)
    elif kind == "altered body":
        at = draw(st.integers(min_value=0, max_value=len(body) - 1))
        flip = draw(st.integers(min_value=1, max_value=255))
        body = body[:at] + bytes([body[at] ^ flip]) + body[at + 1 :]
    elif kind == "truncated body":
        body = body[: draw(st.integers(min_value=0, max_value=len(body) - 1))]
    if kind != "no signature":
        headers["X-Slack-Signature"] = signature
    if kind != "no timestamp":
        headers["X-Slack-Request-Timestamp"] = timestamp
    return kind, shape, body, headers


def _post(bot: Bot, body: bytes, headers: dict[str, str]) -> int:
    """POST with header values sent as UTF-8 bytes: urllib refuses non-Latin-1 values,
    an attacker's client does not."""
    connection = http.client.HTTPConnection("127.0.0.1", bot.server.port, timeout=10)
    try:
        connection.putrequest("POST", "/slack/events")
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            connection.putheader(name, value.encode())
        connection.endheaders(body)
        return connection.getresponse().status
    finally:
        connection.close()


def _rows(bot: Bot) -> dict[str, int]:
    """Rows in every table of the bot's database."""
    with bot.runtime.engine.connect() as connection:
        return {
            table.name: connection.scalar(select(func.count()).select_from(table)) or 0
            for table in SQLModel.metadata.sorted_tables
        }


def test_forged_and_malformed_requests_get_401_and_change_nothing(
    bot: Bot, exploration: Exploration
) -> None:
    calls = ListenerCalls(bot.runtime.bolt)
    before, rows = footprint(bot), _rows(bot)
    kinds = Counter[str]()  # this test's own: nothing carries over between databases
    shapes = Counter[str]()
    statuses = Counter[int]()

    @exploration.settings(1000)
    @given(forged())
    def attempt(case: tuple[str, str, bytes, dict[str, str]]) -> None:
        kind, shape, body, headers = case
        status = _post(bot, body, headers)
        statuses[status] += 1
        assert status == 401, (kind, shape, status)
        kinds[kind] += 1
        shapes[shape] += 1

    attempt()
    bot.settle()
    examples = exploration.examples(1000)
    print(f"forged: {sum(kinds.values())} requests, {dict(kinds)}, {dict(shapes)}")
    assert sum(kinds.values()) >= examples
    assert statuses == {401: sum(kinds.values())}
    # Each kind and each shape of body had a real share, not a token one.
    assert set(kinds) == set(KINDS)
    assert min(kinds.values()) >= examples // 12 // 3, kinds
    assert min(shapes.values()) >= examples // 4 // 2, shapes
    assert calls.total() == 0, calls.counts()
    assert footprint(bot) == before
    assert _rows(bot) == rows

    # The counters see real traffic: one genuine request of each shape reaches its listener.
    assert bot.sim.command(ALICE, "help").status == 200
    assert bot.sim.block_action(MALLORY, "approve", "R-ZZZZZZZZ").status == 200
    deny = {"id": "VREAL", "callback_id": "jit_deny", "private_metadata": "R-ZZZZZZZZ"}
    assert bot.sim.submit_view(MALLORY, deny, {"reason": {"reason": text_value("x")}}).ok
    bot.settle()
    counted = calls.counts()
    assert counted["dispatch dispatch"] == 3, counted
    assert [counted[f"lazy {f}"] for f in ("jit_command", "approve", "deny_submitted")] == [1] * 3
    assert sum(n for name, n in counted.items() if name.startswith("ack ")) == 3, counted


def test_a_replayed_request_is_refused(bot: Bot) -> None:
    body = urlencode(
        {
            "token": "x",
            "team_id": TEAM_ID,
            "user_id": ALICE,
            "command": "/jit",
            "text": "list",
            "response_url": bot.slack.response_url("first"),
            "trigger_id": "1.2.3",
            "channel_id": "C0GENERAL",
        }
    ).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": FORM,
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": _sign(body, timestamp),
    }
    assert bot.sim.raw(body, headers).status == 200
    bot.settle()
    calls = ListenerCalls(bot.runtime.bolt)
    before, rows = footprint(bot), _rows(bot)
    for _ in range(5):
        assert _post(bot, body, headers) == 401
    bot.settle()
    assert footprint(bot) == before
    assert _rows(bot) == rows
    # Replays are refused by the bot's own middleware, inside the app: handed to Bolt, but
    # no listener ran.
    assert calls.counts() == {"dispatch dispatch": 5}, calls.counts()
