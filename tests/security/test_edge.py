"""The HTTP edge, attacked over the wire: bodies over the cap get 413 before anything
buffers or parses them, nothing unsigned or unparseable gets further than 401 (never a
5xx), the signature is checked over the raw bytes before any parsing, no byte of a body
reaches the log, and in Socket Mode the port serves /healthz only.

The in-process tests use the ``bot`` fixture; the memory, log and Socket Mode tests run
against a real ``jit-bot serve`` process, as operators run it.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import io
import json
import logging
import re
import secrets
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_bolt.middleware.request_verification import RequestVerification
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

from bot.cli import LEAKY_AT_DEBUG, configure_logging
from bot.server import wsgi_app
from bot.slack.blocks import HELP
from bot.slack.edge import MAX_BODY_BYTES
from tests.conftest import ALICE, SIGNING_SECRET, Bot
from tests.e2e.helpers import footprint, open_request_modal
from tests.fakes.processes import START_TIMEOUT, BotProcess, Launcher, get
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_client import SlackSim, select_value, text_value
from tests.fakes.socket_mode import FakeSocketMode
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.kit.processes import APP_TOKEN
from tests.kit.processes import bot_env as _bot_env

MIB = 1024 * 1024
MARKER = "EDGE-MARKER-7f3a9c"
FORM = "application/x-www-form-urlencoded"


def _sign(body: bytes, timestamp: str, secret: str = SIGNING_SECRET) -> str:
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def _forged_headers(content_type: str = FORM) -> dict[str, str]:
    """Headers of Slack's exact shape, fresh, with a signature nobody computed: what got
    the body read, decoded and parsed by Bolt before anything checked it."""
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(int(time.time())),
        "X-Slack-Signature": "v0=" + secrets.token_hex(32),
    }


def _signed_headers(body: bytes, content_type: str = FORM) -> dict[str, str]:
    timestamp = str(int(time.time()))
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": _sign(body, timestamp),
    }


def _post(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/slack/events", body=body, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw.startswith(b"{") else {"raw": raw}
    finally:
        connection.close()


# Bodies that are not a Slack payload: on main, Bolt parsed them before checking the
# signature and answered 500 to each.
NOT_A_PAYLOAD = [
    (b"[1, 2, 3]", "application/json"),
    (b'"a string"', "application/json"),
    (b"null", "application/json"),
    (b"{not json", "application/json"),
    (b"{not json", FORM),
    (b"payload=%5B1%5D", FORM),  # payload=[1]
    (b"payload=%7Bbroken", FORM),
    (b"payload=42", FORM),
    (b"\xff\xfe\x00garbage", FORM),
    (b"{" * 5000, "application/json"),
]


@pytest.mark.parametrize(("body", "content_type"), NOT_A_PAYLOAD)
def test_unsigned_bodies_that_are_not_a_json_object_get_401_not_500(
    bot: Bot, body: bytes, content_type: str
) -> None:
    before = footprint(bot)

    status, answer = _post(bot.server.port, body, _forged_headers(content_type))

    assert (status, answer) == (401, {"error": "invalid request signature"})
    bot.settle()
    assert footprint(bot) == before


SIGNED_GARBAGE = [
    *NOT_A_PAYLOAD,
    (b'{"type": "block_actions", "actions": "x", "team": 5, "user": []}', "application/json"),
    (b'{"team": {"id": []}, "enterprise": "x", "user": {"id": {}}}', "application/json"),
    (b"payload=" + urlencode({"p": '{"type": "view_submission", "view": 5}'})[2:].encode(), FORM),
    (b'{"type": "view_submission", "view": {"callback_id": 7, "state": "x"}}', "application/json"),
    (b"a=b&&&==&%%%", FORM),
    (b"", FORM),
]


@pytest.mark.parametrize(("body", "content_type"), SIGNED_GARBAGE)
def test_a_signed_body_that_is_not_a_slack_payload_gets_4xx_not_5xx(
    bot: Bot, body: bytes, content_type: str
) -> None:
    before = footprint(bot)

    status, answer = _post(bot.server.port, body, _signed_headers(body, content_type))

    # Either refused as unreadable, or read as a payload of no workspace of ours and
    # refused as such (bot/slack/workspace.py): never a 5xx, and nothing done.
    refused_as_foreign = status == 200 and "serves only the Slack workspace" in str(answer)
    assert 400 <= status < 500 or refused_as_foreign, (status, answer)
    bot.settle()
    assert footprint(bot) == before


def test_a_body_declared_over_the_cap_gets_413_before_it_is_read(bot: Bot) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", bot.server.port, timeout=10)
    try:
        connection.putrequest("POST", "/slack/events")
        for name, value in {
            **_forged_headers(),
            "Content-Length": str(MAX_BODY_BYTES + 1),
        }.items():
            connection.putheader(name, value)
        connection.endheaders()  # not one byte of the body is sent
        response = connection.getresponse()
        assert response.status == 413
        assert b"exceeds max_body" in response.read()
    finally:
        connection.close()


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    piece = (f"{MARKER}&".encode() * (size // (len(MARKER) + 1) + 1))[:size]
    sent = 0
    while sent < total:
        yield piece[: min(size, total - sent)]
        sent += size


def test_a_chunked_body_over_the_cap_gets_413(bot: Bot) -> None:
    """No Content-Length to refuse up front: waitress counts what it de-chunks."""
    before = footprint(bot)
    connection = http.client.HTTPConnection("127.0.0.1", bot.server.port, timeout=30)
    try:
        connection.putrequest("POST", "/slack/events")
        for name, value in {**_forged_headers(), "Transfer-Encoding": "chunked"}.items():
            connection.putheader(name, value)
        connection.endheaders()
        try:
            for piece in _chunks(2 * MAX_BODY_BYTES):
                connection.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            connection.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and stopped reading; its answer is still there
        response = connection.getresponse()
        assert response.status == 413, response.read()
    finally:
        connection.close()
    bot.settle()
    assert footprint(bot) == before


class _Endless(io.RawIOBase):
    """A request body that never ends, counting what was read of it."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        size = 64 * 1024 if size is None or size < 0 else size
        self.read_bytes += size
        return b"a" * size


@pytest.mark.parametrize("content_length", [None, ""])
def test_the_wsgi_app_reads_no_more_than_the_cap_of_a_body_without_a_length(
    bot: Bot, content_length: str | None
) -> None:
    """The app's own cap, under any WSGI server: one that passes a chunked body through
    without a Content-Length gets 413 after the cap, not an endless read."""
    body = _Endless()
    timestamp = str(int(time.time()))
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/slack/events",
        "wsgi.input": body,
        "HTTP_X_SLACK_REQUEST_TIMESTAMP": timestamp,
        "HTTP_X_SLACK_SIGNATURE": _sign(b"", timestamp),
    }
    if content_length is not None:
        environ["CONTENT_LENGTH"] = content_length
    answers: list[str] = []

    chunks = wsgi_app(bot.runtime)(environ, lambda status, headers: answers.append(status))

    assert answers == ["413 Request Entity Too Large"]
    assert json.loads(b"".join(chunks))["error"].startswith("request body too large")
    assert MAX_BODY_BYTES < body.read_bytes <= MAX_BODY_BYTES + 64 * 1024


def test_a_signed_command_of_exactly_the_cap_is_served(bot: Bot) -> None:
    fields = {
        "token": "x",
        "team_id": "T0001",
        "user_id": ALICE,
        "user_name": "alice",
        "command": "/jit",
        "text": "help",
        "response_url": bot.slack.response_url("at-cap"),
        "trigger_id": "1.2.3",
        "channel_id": "C0GENERAL",
        "pad": "",
    }
    short = len(urlencode(fields).encode())
    fields["pad"] = "p" * (MAX_BODY_BYTES - short)
    body = urlencode(fields).encode()
    assert len(body) == MAX_BODY_BYTES

    status, _ = _post(bot.server.port, body, _signed_headers(body))

    assert status == 200
    assert bot.slack.wait_for_response(name="at-cap")["text"] == HELP


def test_a_100_block_modal_of_full_sections_is_submitted_well_under_the_cap(bot: Bot) -> None:
    """Slack's largest payload: a view_submission carries the whole modal back."""
    view = open_request_modal(bot, ALICE)
    text = ("Runbook: see <https://example.com/wiki?a=1&b=2|the wiki> & *check* `x`. " * 60)[:3000]
    while len(view["blocks"]) < 100:
        view["blocks"].append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    values = {
        "role": {"role": select_value("db-admin")},
        "environment": {"environment": select_value("dev")},
        "duration": {"duration": text_value("30m")},
        "reason": {"reason": text_value("INC-100 " + "r" * 2900)},
    }
    full = bot.sim._view_for_payload({**view, "state": {"values": values}})
    size = len(urlencode({"payload": json.dumps({"view": full})}).encode())
    print(f"\n100-block view_submission: {size} bytes form-encoded (cap {MAX_BODY_BYTES})")
    assert size < MAX_BODY_BYTES / 2

    reply = bot.sim.submit_view(ALICE, view, values)

    assert reply.status == 200, reply
    bot.settle()
    assert [r.role for r in bot.service.mine(ALICE)] == ["db-admin"]


def test_a_signed_request_nothing_handles_is_logged_without_its_body(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    payload = {
        "type": "block_actions",
        "team": {"id": "T0001"},
        "user": {"id": ALICE},
        "actions": [{"action_id": "nobody-listens", "block_id": "b", "value": MARKER}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()

    with caplog.at_level(logging.DEBUG):
        status, _ = _post(bot.server.port, body, _signed_headers(body))
        bot.settle()

    assert status == 404
    assert "Unhandled request (request body not logged)" in caplog.text
    assert MARKER not in caplog.text


def test_bolts_own_signature_check_logs_no_body_should_it_ever_refuse_one(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    """The edge verifies first, so Bolt's check refuses only across the five-minute mark
    between the two; if it does, its INFO line (which quoted the body) says no more."""
    body = f"{MARKER}\n2024-01-01 00:00:00,000 INFO bot.audit: approved (forged)"
    with caplog.at_level(logging.DEBUG):
        answer = RequestVerification(SIGNING_SECRET).process(
            req=BoltRequest(body=body, headers=_forged_headers()),
            resp=BoltResponse(status=200),
            next=lambda: BoltResponse(status=200),
        )

    assert answer.status == 401
    assert "Invalid request signature detected (request body not logged)" in caplog.text
    assert MARKER not in caplog.text and "(forged)" not in caplog.text


def test_debug_logging_keeps_socket_mode_envelopes_out_of_the_log() -> None:
    """slack_sdk's Socket Mode client logs every envelope it receives (a request body,
    with what people typed) at DEBUG; JIT_LOG_LEVEL=DEBUG must not switch that on."""
    names = ("alembic", *LEAKY_AT_DEBUG)  # what configure_logging changes
    levels = {name: logging.getLogger(name).level for name in names}
    root = logging.getLogger().level
    try:
        configure_logging("DEBUG")
        assert not logging.getLogger("slack_sdk.socket_mode.builtin.client").isEnabledFor(
            logging.DEBUG
        )
        # The Web API client logs what it sends (typed reasons, raw); the webhook client
        # the response_url it posts to, a link that can post into the user's conversation.
        for sender in ("slack_sdk.web.base_client", "slack_sdk.webhook.client"):
            assert not logging.getLogger(sender).isEnabledFor(logging.DEBUG)
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        logging.getLogger().setLevel(root)


# ------------------------------------------------------------------ a real process


def _vm(pid: int, field: str) -> int:
    """``VmHWM`` (peak resident set) or ``VmRSS`` of process ``pid``, in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB$", status, re.MULTILINE)
    assert match, status
    return int(match.group(1)) * 1024


def _log(process: BotProcess) -> bytes:
    return process.stdout.read_bytes() + process.stderr.read_bytes()


def _request_lines(before: bytes, after: bytes) -> list[bytes]:
    """The lines logged since ``before``, but for the timers' own (they run meanwhile)."""
    assert after.startswith(before)
    return [
        line
        for line in after[len(before) :].splitlines()
        if not re.match(rb"^\S+ \S+ \w+ apscheduler\.", line)
    ]


def _send_while_listening(port: int, head: bytes, body: Iterator[bytes]) -> bytes:
    """Send a request as a careful client does: stop sending when the server answers,
    then read the whole answer (until the server closes)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        sock.sendall(head)
        for piece in body:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
        return answer
    finally:
        sock.close()


def test_four_concurrent_64_mib_forged_bodies_get_413_without_growing_memory_or_the_log(
    launcher: Launcher,
    fake_slack: FakeSlack,
    receiver: WebhookReceiver,
    database_url: str,
) -> None:
    process = launcher.serve(_bot_env(launcher, fake_slack, receiver, database_url))
    process.wait_healthy()
    pid = process.popen.pid
    # Warm the refusal path once, so that what is measured is what a body costs.
    small = _send_while_listening(
        process.port or 0, _head(MAX_BODY_BYTES + 1), _chunks(MAX_BODY_BYTES + 1)
    )
    assert small.startswith(b"HTTP/1.1 413"), small[:200]
    baseline = _vm(pid, "VmHWM")
    log_before = _log(process)

    answers: list[bytes] = [b""] * 4

    def attack(i: int) -> None:
        answers[i] = _send_while_listening(process.port or 0, _head(64 * MIB), _chunks(64 * MIB))

    attackers = [threading.Thread(target=attack, args=(i,)) for i in range(4)]
    for thread in attackers:
        thread.start()
    for thread in attackers:
        thread.join(timeout=60)
    peak = _vm(pid, "VmHWM")
    print(
        f"\nedge RSS: baseline VmHWM {baseline / MIB:.1f} MiB, after 4 x 64 MiB "
        f"{peak / MIB:.1f} MiB (+{(peak - baseline) / MIB:.2f} MiB)"
    )

    assert [a.split(b"\r\n", 1)[0] for a in answers] == [
        b"HTTP/1.1 413 Request Entity Too Large"
    ] * 4
    assert peak - baseline < 20 * 1000 * 1000
    assert process.wait_healthy()["status"] == "ok"
    log_after = _log(process)
    assert len(_request_lines(log_before, log_after)) <= 4, log_after[len(log_before) :]
    assert MARKER.encode() not in log_after


def _head(length: int) -> bytes:
    headers = "".join(f"{k}: {v}\r\n" for k, v in _forged_headers().items())
    return (
        f"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def test_a_forged_1_mb_body_with_newlines_gets_401_and_plants_no_log_line(
    launcher: Launcher,
    fake_slack: FakeSlack,
    receiver: WebhookReceiver,
    database_url: str,
) -> None:
    env = _bot_env(launcher, fake_slack, receiver, database_url, JIT_LOG_LEVEL="DEBUG")
    process = launcher.serve(env)
    process.wait_healthy()
    fake = "2024-01-01 00:00:00,000 INFO bot.audit: approved by U0BOB (forged)"
    body = (f"payload={MARKER}\n{fake}\n".encode() * 20000)[: 1000 * 1000]
    log_before = _log(process)

    forged_status, forged_answer = _post(process.port or 0, body, _forged_headers())
    stale = _signed_headers(body)
    stale["X-Slack-Request-Timestamp"] = str(int(time.time()) - 600)
    stale_status, _ = _post(process.port or 0, body, stale)

    assert (forged_status, forged_answer) == (401, {"error": "invalid request signature"})
    assert stale_status == 401
    log = _log(process)
    assert MARKER.encode() not in log
    assert b"(forged)" not in log
    assert len(_request_lines(log_before, log)) <= 2, log[len(log_before) :]


def test_in_socket_mode_the_port_serves_only_healthz(
    launcher: Launcher,
    fake_slack: FakeSlack,
    receiver: WebhookReceiver,
    database_url: str,
) -> None:
    socket_mode = FakeSocketMode().start()
    fake_slack.socket_url = socket_mode.url
    try:
        env = _bot_env(launcher, fake_slack, receiver, database_url, SLACK_APP_TOKEN=APP_TOKEN)
        process = launcher.serve(env)
        assert process.wait_healthy()["status"] == "ok"
        socket_mode.wait_connected(timeout=START_TIMEOUT)
        sim = SlackSim(process.url, SIGNING_SECRET, fake_slack)

        signed = sim.command(ALICE, "help")
        unsigned = sim.raw("command=%2Fjit&text=help", {"Content-Type": FORM})
        elsewhere = get(f"{process.url}/")
        status, health = get(f"{process.url}/healthz")

        assert (signed.status, signed.json) == (404, {"error": "not found"})
        assert unsigned.status == 404
        assert elsewhere[0] == 404
        assert status == 200 and json.loads(health)["status"] == "ok"
        assert fake_slack.responses == []
        process.terminate()
    finally:
        socket_mode.close()
