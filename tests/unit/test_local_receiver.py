"""The embedded webhook receiver as local mode uses it (`bot.local.receiver`, without the
tests' fault injection), driven by the real webhook provider: each grant/revoke call must
be readable afterwards with whether its signature verified, what became of it and its
payload, and forged or malformed calls must say why they were refused."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.local.receiver import WebhookReceiver
from providers.base import GrantContext, Principal
from providers.webhook import WebhookProvider, WebhookTarget
from tests.fakes.processes import free_port

SECRET = "local-receiver-secret-0123456789"
SECRET_ENV = "JIT_WEBHOOK_LOCAL_SECRET"
NOW = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
ALICE = Principal(slack_user_id="U0ALICE", email="alice@example.com")
CONTEXT = GrantContext(
    request_id="req-7",
    role="prod-support",
    environment="prod",
    reason="INC-7 <script>",
    expires_at=NOW + timedelta(hours=1),
)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET, clock=NOW.timestamp) as running:
        yield running


def target(url: str) -> WebhookTarget:
    return WebhookTarget.model_validate(
        {
            "provider": "webhook",
            "name": "grafana-admin",
            "url": url,
            "secret_env": SECRET_ENV,
            "max_attempts": 1,
            "allow_insecure": True,
        }
    )


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        with error:
            return error.code


def signed_headers(url: str, body: bytes, secret: str = SECRET) -> dict[str, str]:
    timestamp = str(int(NOW.timestamp()))
    message = b"\n".join([b"v2", timestamp.encode(), url.encode(), body])
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-JIT-Timestamp": timestamp,
        "X-JIT-Signature": f"v2={digest}",
    }


def test_each_grant_and_revoke_is_listed_verified_with_its_payload(
    receiver: WebhookReceiver,
) -> None:
    provider = WebhookProvider({SECRET_ENV: SECRET}, sleep=lambda _: None, now=lambda: NOW)
    provider.grant(ALICE, target(receiver.url), CONTEXT)
    provider.revoke(ALICE, target(receiver.url), CONTEXT)

    grant, revoke = receiver.requests

    assert (grant.status, grant.signature_verified, grant.outcome) == (200, True, "applied")
    assert (revoke.status, revoke.signature_verified, revoke.outcome) == (200, True, "applied")
    grant_event, revoke_event = grant.payload(), revoke.payload()
    assert grant_event is not None and revoke_event is not None
    assert (grant_event["event"], revoke_event["event"]) == ("grant", "revoke")
    assert grant_event["principal"]["email"] == "alice@example.com"
    assert grant_event["target"]["name"] == "grafana-admin"
    assert grant_event["reason"] == "INC-7 <script>"
    assert [e["event"] for e in receiver.events] == ["grant", "revoke"]
    assert receiver.holdings == set()


def test_a_forged_call_is_listed_unverified_and_changes_nothing(
    receiver: WebhookReceiver,
) -> None:
    body = json.dumps({"event": "grant"}).encode()

    status = post(receiver.url, body, signed_headers(receiver.url, body, secret="wrong"))

    [request] = receiver.requests
    assert status == 401
    assert (request.signature_verified, request.outcome) == (False, "signature does not match")
    assert request.payload() == {"event": "grant"}
    assert receiver.events == []
    assert receiver.rejected == 1


def test_a_signed_but_malformed_event_is_listed_verified_and_refused(
    receiver: WebhookReceiver,
) -> None:
    body = b"not json"

    status = post(receiver.url, body, signed_headers(receiver.url, body))

    [request] = receiver.requests
    assert status == 400
    assert (request.signature_verified, request.outcome) == (True, "body is not JSON")
    assert request.payload() is None
    assert receiver.holdings == set()


def test_it_listens_on_the_port_it_is_given() -> None:
    port = free_port()
    with WebhookReceiver(SECRET, host="127.0.0.1", port=port) as running:
        assert running.url == f"http://127.0.0.1:{port}/jit"
