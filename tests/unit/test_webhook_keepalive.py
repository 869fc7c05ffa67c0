"""The webhook provider keeps its HTTP connections alive (providers/webhook/keepalive.py),
driven over real sockets against the test receiver, which counts the TCP connections it
accepted: calls share one connection; one the server closed is replaced, and a request
it swallowed is sent once more (the idempotency key makes that safe); an answer too long
to read whole, or one that says ``Connection: close``, does not leave its connection in
the pool; the egress guard still vets every new connection; https still verifies
certificates; a configured proxy still carries the calls. Time is fixed and sleeping is
recorded, never done."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from providers.base import GrantContext, Principal, ProviderError
from providers.webhook import WebhookProvider, WebhookTarget
from tests.fakes.azure import _tls_context
from tests.fakes.webhook_receiver import WebhookReceiver

SECRET = "keepalive-hmac-key-0f1e2d3c4b5a"
SECRET_ENV = "JIT_WEBHOOK_KEEPALIVE_SECRET"
NOW = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
ALICE = Principal(slack_user_id="U0ALICE", email="alice@example.com")


def context(n: int) -> GrantContext:
    return GrantContext(
        request_id=f"req-{n}",
        role="prod-support",
        environment="prod",
        reason="INC-123",
        expires_at=NOW + timedelta(hours=2),
    )


def make_target(url: str, **overrides: Any) -> WebhookTarget:
    fields: dict[str, Any] = {
        "provider": "webhook",
        "name": "grafana-admin",
        "url": url,
        "secret_env": SECRET_ENV,
        "max_attempts": 3,
        "allow_insecure": True,
    }
    return WebhookTarget.model_validate({**fields, **overrides})


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET, clock=NOW.timestamp) as running:
        yield running


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def provider(sleeps: list[float]) -> WebhookProvider:
    return WebhookProvider({SECRET_ENV: SECRET}, sleep=sleeps.append, now=lambda: NOW)


def events_for(receiver: WebhookReceiver, request_id: str) -> list[dict[str, Any]]:
    return [event for event in receiver.events if event["request_id"] == request_id]


# -- one connection for many calls ------------------------------------------------------


def test_sequential_grants_and_revokes_share_one_connection(
    provider: WebhookProvider, receiver: WebhookReceiver, sleeps: list[float]
) -> None:
    target = make_target(receiver.url)

    for n in range(10):
        provider.grant(ALICE, target, context(n))
        provider.revoke(ALICE, target, context(n))

    assert receiver.connections == 1
    assert len(receiver.events) == 20
    assert not any(event["replay"] for event in receiver.events)
    assert receiver.holdings == set()
    assert sleeps == []


def test_calls_from_several_threads_each_get_a_connection_of_their_own(
    provider: WebhookProvider, receiver: WebhookReceiver
) -> None:
    target = make_target(receiver.url)
    failures: list[BaseException] = []

    def grant_many(thread: int) -> None:
        try:
            for n in range(10):
                provider.grant(ALICE, target, context(thread * 100 + n))
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=grant_many, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert failures == []
    assert len(receiver.events) == 40
    assert not any(event["replay"] for event in receiver.events)
    assert 1 <= receiver.connections <= 4


# -- connections the server closes ------------------------------------------------------


def test_a_connection_the_server_closed_while_idle_is_replaced_and_the_call_sent_once(
    provider: WebhookProvider, receiver: WebhookReceiver, sleeps: list[float]
) -> None:
    target = make_target(receiver.url)
    provider.grant(ALICE, target, context(1))

    receiver.close_idle_connections()  # the receiver's keep-alive timeout
    provider.grant(ALICE, target, context(2))

    assert receiver.connections == 2
    assert len(events_for(receiver, "req-2")) == 1
    assert len(receiver.requests) == 2
    assert sleeps == []


@pytest.mark.parametrize("applied", [False, True], ids=["unapplied", "applied"])
def test_a_request_swallowed_on_a_reused_connection_is_sent_again_on_a_fresh_one(
    provider: WebhookProvider, receiver: WebhookReceiver, sleeps: list[float], applied: bool
) -> None:
    target = make_target(receiver.url)
    provider.grant(ALICE, target, context(1))

    # The receiver reads the next request and closes the connection without answering:
    # to the bot that is RemoteDisconnected on a reused connection.
    receiver.drop_next(applied=applied)
    provider.grant(ALICE, target, context(2))

    assert sleeps == []  # resent at once by the opener, not by the provider's backoff
    assert receiver.connections == 2
    delivered = events_for(receiver, "req-2")
    # Applied once whatever happened to the first copy; a resend of an applied event is
    # answered as a replay of its idempotency key.
    assert [event["replay"] for event in delivered] == ([False, True] if applied else [False])
    assert receiver.holdings == {("alice@example.com", "grafana-admin")}


def test_a_request_swallowed_on_a_fresh_connection_is_left_to_the_providers_retries(
    provider: WebhookProvider, receiver: WebhookReceiver, sleeps: list[float]
) -> None:
    receiver.drop_next()

    provider.grant(ALICE, make_target(receiver.url), context(1))

    assert len(sleeps) == 1  # a network failure, retried with backoff as before
    assert receiver.connections == 2
    assert len(events_for(receiver, "req-1")) == 1


def test_a_stopped_receiver_does_not_go_on_serving_a_kept_connection(
    provider: WebhookProvider,
) -> None:
    receiver = WebhookReceiver(SECRET, clock=NOW.timestamp).start()
    target = make_target(receiver.url, max_attempts=1)
    provider.grant(ALICE, target, context(1))
    receiver.stop()

    with pytest.raises(ProviderError) as failure:
        provider.grant(ALICE, target, context(2))

    assert failure.value.retryable
    assert len(receiver.requests) == 1


# -- answers that must not leave their connection in the pool -----------------------------


@pytest.mark.parametrize(
    ("body_bytes", "connections"), [(100, 1), (4096, 1), (4097, 2), (100_000, 2)]
)
def test_an_answer_longer_than_what_is_read_closes_its_connection(
    provider: WebhookProvider,
    receiver: WebhookReceiver,
    sleeps: list[float],
    body_bytes: int,
    connections: int,
) -> None:
    receiver.fail_next(status=500, body="x" * body_bytes)

    provider.grant(ALICE, make_target(receiver.url), context(1))

    # The retry after the 500 found its answer whole: nothing of the long body was read
    # as the start of the next answer.
    assert len(sleeps) == 1
    assert receiver.connections == connections
    assert [request.status for request in receiver.requests] == [500, 200]
    assert receiver.holdings == {("alice@example.com", "grafana-admin")}


def test_an_answer_saying_connection_close_is_not_reused(
    provider: WebhookProvider, receiver: WebhookReceiver
) -> None:
    receiver.fail_next(status=503, headers={"Connection": "close"})

    provider.grant(ALICE, make_target(receiver.url), context(1))

    assert receiver.connections == 2


def test_a_redirect_still_comes_back_as_a_failure_on_a_kept_connection(
    provider: WebhookProvider, receiver: WebhookReceiver
) -> None:
    target = make_target(receiver.url, max_attempts=1)
    provider.grant(ALICE, target, context(1))
    receiver.fail_next(status=307, headers={"Location": receiver.url + "/elsewhere"})

    with pytest.raises(ProviderError, match="HTTP 307"):
        provider.grant(ALICE, target, context(2))

    assert [request.path for request in receiver.requests] == ["/jit", "/jit"]
    assert receiver.connections == 1


# -- the egress guard, on every new connection -------------------------------------------


def _outward_address() -> str | None:
    """An address of this host that is not loopback (the guard lets it through), or None."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # UDP: nothing is sent
        address = str(probe.getsockname()[0])
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


def test_the_guard_vets_each_new_connection_and_a_kept_one_stays_where_it_was_vetted(
    sleeps: list[float],
) -> None:
    address = _outward_address()
    if address is None:
        pytest.skip("this host has no non-loopback address")
    answers = {"hooks.example.test": [address]}
    looked_up: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        looked_up.append(host)
        return answers[host]

    provider = WebhookProvider(
        {SECRET_ENV: SECRET}, sleep=sleeps.append, now=lambda: NOW, resolve=resolve
    )
    with WebhookReceiver(SECRET, clock=NOW.timestamp, host=address) as receiver:
        port = receiver.url.rsplit(":", 1)[1].split("/")[0]
        url = f"http://hooks.example.test:{port}/jit"
        receiver.audience = url
        target = make_target(url, allow_insecure=False, max_attempts=1)

        provider.grant(ALICE, target, context(1))
        answers["hooks.example.test"] = ["127.0.0.1"]  # rebinding, after the first call
        provider.grant(ALICE, target, context(2))  # on the connection vetted for address
        assert looked_up == ["hooks.example.test"]

        receiver.close_idle_connections()
        with pytest.raises(ProviderError, match=r"resolves to 127\.0\.0\.1, a loopback"):
            provider.grant(ALICE, target, context(3))

        assert looked_up == ["hooks.example.test"] * 2
        assert receiver.connections == 1
        assert len(receiver.requests) == 2


# -- https -------------------------------------------------------------------------------


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[WebhookReceiver]:
    tls = _tls_context(tmp_path)
    with WebhookReceiver(SECRET, clock=NOW.timestamp, tls=tls) as running:
        running.audience = running.url.replace("127.0.0.1", "localhost")
        yield running


def test_an_https_receiver_whose_certificate_is_not_trusted_is_refused(
    provider: WebhookProvider, tls_receiver: WebhookReceiver
) -> None:
    target = make_target(tls_receiver.audience, max_attempts=1)

    with pytest.raises(ProviderError, match="SSLCertVerificationError") as failure:
        provider.grant(ALICE, target, context(1))

    assert failure.value.retryable
    assert tls_receiver.requests == []


def test_an_https_receiver_with_a_trusted_certificate_is_called_over_one_connection(
    tls_receiver: WebhookReceiver,
    sleeps: list[float],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The system's trust store is where the provider looks; point it at the test CA.
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    provider = WebhookProvider({SECRET_ENV: SECRET}, sleep=sleeps.append, now=lambda: NOW)
    target = make_target(tls_receiver.audience)

    for n in range(5):
        provider.grant(ALICE, target, context(n))

    assert len(tls_receiver.events) == 5
    assert tls_receiver.connections == 1
    assert sleeps == []


def test_an_https_certificate_for_another_name_is_refused(
    provider: WebhookProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    tls = _tls_context(tmp_path, names=("elsewhere.example.test",))
    with WebhookReceiver(SECRET, clock=NOW.timestamp, tls=tls) as receiver:
        url = receiver.url.replace("127.0.0.1", "localhost")

        with pytest.raises(ProviderError, match="SSLCertVerificationError"):
            provider.grant(ALICE, make_target(url, max_attempts=1), context(1))

        assert receiver.requests == []


# -- proxies ------------------------------------------------------------------------------


def test_a_configured_proxy_still_carries_the_call(
    receiver: WebhookReceiver, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    proxy = receiver.url.removesuffix(receiver.PATH)
    monkeypatch.setenv("http_proxy", proxy)  # the receiver plays the proxy here
    provider = WebhookProvider({SECRET_ENV: SECRET}, sleep=sleeps.append, now=lambda: NOW)

    with pytest.raises(ProviderError, match="HTTP 404"):
        provider.grant(ALICE, make_target("http://hooks.example.test/jit"), context(1))

    # A proxy is sent the absolute URL: the call went through it, not around it.
    assert {request.path for request in receiver.requests} == {"http://hooks.example.test/jit"}
