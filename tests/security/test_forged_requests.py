"""Forged and malformed requests: bad, missing, non-ASCII or stale signatures, timestamps
more than five minutes off, altered bodies and replays all get 401, never a 5xx, and reach
no handler and no database write."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import time
from collections import Counter
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ALICE, SIGNING_SECRET, Bot
from tests.e2e.helpers import footprint

FORGERIES = Counter[str]()


def _body(text: str) -> bytes:
    return urlencode(
        {
            "token": "x",
            "team_id": "T0001",
            "user_id": ALICE,
            "command": "/jit",
            "text": text,
            "response_url": "http://127.0.0.1:1/never",
            "trigger_id": "1.2.3",
            "channel_id": "C0GENERAL",
        }
    ).encode()


def _sign(body: bytes, timestamp: str, secret: str = SIGNING_SECRET) -> str:
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@st.composite
def forged(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str]]:
    text = draw(st.sampled_from(["request db-admin dev 30m x", "list", "help"]))
    body = _body(text)
    now = int(time.time())
    timestamp = str(now)
    kind = draw(
        st.sampled_from(
            [
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
        )
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    signature = _sign(body, timestamp)
    if kind == "random signature":
        signature = "v0=" + draw(st.text("0123456789abcdef", min_size=0, max_size=64))
    elif kind == "wrong secret":
        signature = _sign(body, timestamp, draw(st.text(min_size=1, max_size=20)) + "!")
    elif kind == "wrong version":
        signature = "v1=" + signature[3:]
    elif kind == "non-ascii signature":
        signature = signature[:10] + draw(st.text("éß☃漢字", min_size=1, max_size=5))
    elif kind == "non-ascii timestamp":
        timestamp = str(now) + "٣"
    elif kind in ("stale", "future"):
        skew = draw(st.integers(min_value=301, max_value=10**8))
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
        body = body.replace(b"dev", b"prd") if b"dev" in body else body + b"&x=1"
    elif kind == "truncated body":
        body = body[: draw(st.integers(min_value=0, max_value=len(body) - 1))]
    if kind != "no signature":
        headers["X-Slack-Signature"] = signature
    if kind != "no timestamp":
        headers["X-Slack-Request-Timestamp"] = timestamp
    return kind, body, headers


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


def test_forged_and_malformed_requests_get_401_and_change_nothing(bot: Bot) -> None:
    before = footprint(bot)

    @settings(
        max_examples=1000,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(forged())
    def attempt(case: tuple[str, bytes, dict[str, str]]) -> None:
        kind, body, headers = case
        status = _post(bot, body, headers)
        assert status == 401, (kind, status)
        FORGERIES[kind] += 1

    attempt()
    bot.settle()
    assert footprint(bot) == before
    assert sum(FORGERIES.values()) >= 1000
    assert len(FORGERIES) == 12


def test_a_replayed_request_is_refused(bot: Bot) -> None:
    body = _body("list")
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": _sign(body, timestamp),
    }
    assert bot.sim.raw(body, headers).status == 200
    bot.settle()
    before = footprint(bot)
    for _ in range(5):
        assert _post(bot, body, headers) == 401
    bot.settle()
    assert footprint(bot) == before
