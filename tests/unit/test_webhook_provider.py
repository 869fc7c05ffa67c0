"""The webhook provider against a real local HTTP receiver: signing (over the URL, its
audience), payload, idempotency keys, retries with backoff and Retry-After, failure
reporting (the receiver's words stay in the log), secret hygiene, where events may be sent
(no plain http, loopback, link-local or metadata address without allow_insecure, checked
again at each connection), and the strictness of the target model. Time is fixed and
sleeping is recorded, never done."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from pydantic import ValidationError

from providers.base import GrantContext, Principal, ProviderError
from providers.fake import FakeTarget
from providers.webhook import BACKOFF_CAP_SECONDS, WebhookProvider, WebhookTarget, backoff_delay
from tests.fakes.webhook_receiver import WebhookReceiver

SECRET = "s3cr3t-hmac-key-5a4b3c2d1e"
SECRET_ENV = "JIT_WEBHOOK_GRAFANA_SECRET"
NOW = datetime(2024, 5, 1, 10, 0, 0, tzinfo=UTC)
ALICE = Principal(slack_user_id="U0ALICE", email="alice@example.com")
CONTEXT = GrantContext(
    request_id="req-42",
    role="prod-support",
    environment="prod",
    reason="INC-123 dashboards broken",
    expires_at=NOW + timedelta(hours=2),
)


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


def make_target(url: str, **overrides: Any) -> WebhookTarget:
    fields: dict[str, Any] = {
        "provider": "webhook",
        "name": "grafana-admin",
        "url": url,
        "secret_env": SECRET_ENV,
        "max_attempts": 3,
        # The test receiver is plain http on 127.0.0.1, which a target must opt into.
        "allow_insecure": url.startswith("http://127.0.0.1:"),
    }
    return WebhookTarget.model_validate({**fields, **overrides})


def expected_signature(timestamp: str, url: str, body: bytes) -> str:
    message = b"v2\n" + timestamp.encode() + b"\n" + url.encode() + b"\n" + body
    return "v2=" + hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()


# -- what goes over the wire ----------------------------------------------------------


def test_the_receiver_gets_a_valid_signature_over_timestamp_url_and_body(
    provider: WebhookProvider, receiver: WebhookReceiver
) -> None:
    provider.grant(ALICE, make_target(receiver.url), CONTEXT)

    [request] = receiver.requests
    assert request.status == 200
    assert request.headers["x-jit-timestamp"] == str(int(NOW.timestamp()))
    assert request.headers["x-jit-signature"] == expected_signature(
        request.headers["x-jit-timestamp"], receiver.url, request.body
    )
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "jit-bot"


def test_the_grant_event_carries_who_what_why_and_until_when(
    provider: WebhookProvider, receiver: WebhookReceiver
) -> None:
    provider.grant(ALICE, make_target(receiver.url), CONTEXT)

    [request] = receiver.requests
    assert json.loads(request.body) == {
        "event": "grant",
        "idempotency_key": request.headers["idempotency-key"],
        "request_id": "req-42",
        "principal": {"email": "alice@example.com", "slack_user_id": "U0ALICE"},
        "role": "prod-support",
        "environment": "prod",
        "reason": "INC-123 dashboards broken",
        "target": {"name": "grafana-admin"},
        "expires_at": "2024-05-01T12:00:00Z",
        "sent_at": "2024-05-01T10:00:00Z",
    }
    assert receiver.grants_of("alice@example.com") == {"grafana-admin"}


def test_revoke_sends_a_revoke_event_and_the_receiver_drops_the_access(
    provider: WebhookProvider, receiver: WebhookReceiver
) -> None:
    target = make_target(receiver.url)
    provider.grant(ALICE, target, CONTEXT)

    provider.revoke(ALICE, target, CONTEXT)

    assert [event["event"] for event in receiver.events] == ["grant", "revoke"]
    assert receiver.grants_of("alice@example.com") == set()


def test_each_attempt_is_signed_afresh_with_its_own_timestamp(
    receiver: WebhookReceiver, sleeps: list[float]
) -> None:
    moments = iter([NOW, NOW + timedelta(seconds=3)])
    provider = WebhookProvider({SECRET_ENV: SECRET}, sleep=sleeps.append, now=lambda: next(moments))
    receiver.fail_next(times=1, status=500)

    provider.grant(ALICE, make_target(receiver.url), CONTEXT)

    first, second = receiver.requests
    assert first.headers["x-jit-timestamp"] != second.headers["x-jit-timestamp"]
    for request in (first, second):
        assert request.headers["x-jit-signature"] == expected_signature(
            request.headers["x-jit-timestamp"], receiver.url, request.body
        )


# -- idempotency ------------------------------------------------------------------------


def test_idempotency_key_is_the_same_across_retries_and_repeated_grants_of_one_request(
    provider: WebhookProvider, receiver: WebhookReceiver
) -> None:
    target = make_target(receiver.url)
    receiver.fail_next(times=1, status=500)

    provider.grant(ALICE, target, CONTEXT)
    provider.grant(ALICE, target, CONTEXT)

    keys = {request.headers["idempotency-key"] for request in receiver.requests}
    assert len(receiver.requests) == 3
    assert len(keys) == 1
    assert [event["replay"] for event in receiver.events] == [False, True]
    assert receiver.holdings == {("alice@example.com", "grafana-admin")}


def test_idempotency_key_differs_for_revoke_and_for_another_request(
    provider: WebhookProvider, receiver: WebhookReceiver
) -> None:
    target = make_target(receiver.url)
    other_request = GrantContext(
        request_id="req-43",
        role=CONTEXT.role,
        environment=CONTEXT.environment,
        reason=CONTEXT.reason,
        expires_at=CONTEXT.expires_at,
    )

    provider.grant(ALICE, target, CONTEXT)
    provider.revoke(ALICE, target, CONTEXT)
    provider.grant(ALICE, target, other_request)

    keys = [request.headers["idempotency-key"] for request in receiver.requests]
    assert len(set(keys)) == 3
    assert all(len(key) == 64 for key in keys)


# -- retries ----------------------------------------------------------------------------


def test_a_500_then_200_succeeds_after_one_backoff(
    provider: WebhookProvider, receiver: WebhookReceiver, sleeps: list[float]
) -> None:
    receiver.fail_next(times=1, status=500)

    provider.grant(ALICE, make_target(receiver.url), CONTEXT)

    assert len(sleeps) == 1
    assert 0.25 <= sleeps[0] <= 0.5
    assert receiver.holdings == {("alice@example.com", "grafana-admin")}


def test_always_500_fails_after_max_attempts_with_growing_delays(
    provider: WebhookProvider, receiver: WebhookReceiver, sleeps: list[float]
) -> None:
    receiver.fail_next(times=10, status=500, body="database on fire")

    with pytest.raises(ProviderError) as failure:
        provider.grant(ALICE, make_target(receiver.url, max_attempts=5), CONTEXT)

    message = str(failure.value)
    assert "grafana-admin" in message
    assert "HTTP 500" in message
    assert "database on fire" not in message  # the receiver's words stay in the log
    assert failure.value.retryable
    assert len(receiver.requests) == 5
    assert len(sleeps) == 4
    for attempt, delay in enumerate(sleeps, start=1):
        ceiling = 0.5 * 2 ** (attempt - 1)
        assert ceiling / 2 <= delay <= ceiling
    assert receiver.holdings == set()


def test_backoff_never_exceeds_the_cap() -> None:
    assert backoff_delay(30, 0.999999) <= BACKOFF_CAP_SECONDS
    assert backoff_delay(30, 0.0) >= BACKOFF_CAP_SECONDS / 2


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds_is_honoured(
    provider: WebhookProvider, receiver: WebhookReceiver, sleeps: list[float], status: int
) -> None:
    receiver.fail_next(times=1, status=status, retry_after=7)

    provider.grant(ALICE, make_target(receiver.url), CONTEXT)

    assert sleeps == [7.0]


def test_retry_after_as_an_http_date_is_honoured(
    provider: WebhookProvider, receiver: WebhookReceiver, sleeps: list[float]
) -> None:
    later = format_datetime(NOW + timedelta(seconds=12), usegmt=True)
    receiver.fail_next(times=1, status=503, retry_after=later)

    provider.grant(ALICE, make_target(receiver.url), CONTEXT)

    assert sleeps == [12.0]


def test_retry_after_is_capped_at_sixty_seconds(
    provider: WebhookProvider, receiver: WebhookReceiver, sleeps: list[float]
) -> None:
    receiver.fail_next(times=1, status=429, retry_after=3600)

    provider.grant(ALICE, make_target(receiver.url), CONTEXT)

    assert sleeps == [60.0]


def test_retry_after_on_a_plain_500_is_ignored(
    provider: WebhookProvider, receiver: WebhookReceiver, sleeps: list[float]
) -> None:
    receiver.fail_next(times=1, status=500, retry_after=45)

    provider.grant(ALICE, make_target(receiver.url), CONTEXT)

    assert len(sleeps) == 1
    assert sleeps[0] <= 0.5


def test_a_400_is_retried_like_any_non_2xx_then_fails_as_not_retryable(
    provider: WebhookProvider, receiver: WebhookReceiver, sleeps: list[float]
) -> None:
    receiver.fail_next(times=3, status=400, body="unknown user")

    with pytest.raises(ProviderError) as failure:
        provider.grant(ALICE, make_target(receiver.url, max_attempts=3), CONTEXT)

    assert "HTTP 400" in str(failure.value)
    assert "unknown user" not in str(failure.value)
    assert not failure.value.retryable
    assert len(receiver.requests) == 3
    assert len(sleeps) == 2


def test_the_receivers_answer_is_logged_on_one_line_truncated_and_never_in_the_error(
    provider: WebhookProvider, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    # The error goes to Slack (DMs, the audit channel); the answer is text from outside.
    answer = "<!channel> approve R-FAKE\nINFO forged log line\x1b[31m " + "x" * 1000
    receiver.fail_next(times=1, status=502, body=answer)
    caplog.set_level(logging.WARNING, logger="providers.webhook")

    with pytest.raises(ProviderError) as failure:
        provider.grant(ALICE, make_target(receiver.url, max_attempts=1), CONTEXT)

    assert "HTTP 502" in str(failure.value)
    for part in ("<!channel>", "R-FAKE", "forged", "xxx"):
        assert part not in str(failure.value)
    [record] = caplog.records
    logged = record.getMessage()
    assert "<!channel> approve R-FAKE INFO forged log line\\x1b[31m x" in logged
    assert "\n" not in logged and "\x1b" not in logged
    assert "x" * 400 in logged and "x" * 500 not in logged  # 500 characters of the answer


def test_a_receiver_echoing_the_key_across_the_cut_or_a_line_break_logs_none_of_it(
    provider: WebhookProvider, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    # Redacted before the answer is flattened and cut: afterwards the key would be split
    # by the cut at 500 characters, or joined across a line break, and no longer match.
    answer = "y" * (500 - len(SECRET) // 2) + SECRET + "\n" + SECRET
    receiver.fail_next(times=1, status=500, body=answer)
    caplog.set_level(logging.WARNING, logger="providers.webhook")

    with pytest.raises(ProviderError):
        provider.grant(ALICE, make_target(receiver.url, max_attempts=1), CONTEXT)

    logged = " ".join(record.getMessage() for record in caplog.records)
    assert SECRET[: len(SECRET) // 2] not in logged
    assert "[redacted]" in logged


def test_a_redirect_is_a_failure_and_is_not_followed(
    provider: WebhookProvider, receiver: WebhookReceiver
) -> None:
    receiver.fail_next(times=1, status=302, headers={"Location": receiver.url + "/elsewhere"})

    with pytest.raises(ProviderError) as failure:
        provider.grant(ALICE, make_target(receiver.url, max_attempts=1), CONTEXT)

    assert "HTTP 302" in str(failure.value)
    assert len(receiver.requests) == 1


def test_an_unreachable_receiver_fails_as_retryable_after_max_attempts(
    provider: WebhookProvider, sleeps: list[float]
) -> None:
    stopped = WebhookReceiver(SECRET).start()
    url = stopped.url
    stopped.stop()

    with pytest.raises(ProviderError) as failure:
        provider.grant(ALICE, make_target(url, max_attempts=3), CONTEXT)

    assert failure.value.retryable
    assert "grafana-admin" in str(failure.value)
    assert len(sleeps) == 2


class _TimesOutFirst:
    """An opener that times out ``times`` times, then sends for real."""

    def __init__(self, times: int) -> None:
        self.remaining = times
        self.timeouts: list[float] = []
        self._real = urllib.request.build_opener()

    def open(self, fullurl: urllib.request.Request, *, timeout: float) -> Any:
        self.timeouts.append(timeout)
        if self.remaining:
            self.remaining -= 1
            raise TimeoutError("timed out")
        return self._real.open(fullurl, timeout=timeout)


def test_a_timeout_is_retried_with_the_targets_timeout(
    receiver: WebhookReceiver, sleeps: list[float]
) -> None:
    opener = _TimesOutFirst(times=1)
    provider = WebhookProvider(
        {SECRET_ENV: SECRET}, sleep=sleeps.append, now=lambda: NOW, opener=opener
    )

    provider.grant(ALICE, make_target(receiver.url, timeout_seconds=2.5), CONTEXT)

    assert opener.timeouts == [2.5, 2.5]
    assert len(sleeps) == 1
    assert receiver.holdings == {("alice@example.com", "grafana-admin")}


class _AnswersWith:
    """An opener that returns a canned response instead of raising on errors."""

    def __init__(self, status: int) -> None:
        self.status = status

    def open(self, fullurl: urllib.request.Request, *, timeout: float) -> Any:
        status = self.status

        class Response:
            headers: dict[str, str] = {}

            def __init__(self) -> None:
                self.status = status

            def read(self, amt: int) -> bytes:
                return b"canned"

            def close(self) -> None:
                pass

        return Response()


def test_an_opener_that_returns_error_statuses_is_treated_like_one_that_raises(
    sleeps: list[float],
) -> None:
    provider = WebhookProvider(
        {SECRET_ENV: SECRET}, sleep=sleeps.append, now=lambda: NOW, opener=_AnswersWith(500)
    )

    with pytest.raises(ProviderError, match="HTTP 500") as failure:
        provider.grant(ALICE, make_target("https://hooks.example.com/jit"), CONTEXT)

    assert "canned" not in str(failure.value)

    assert len(sleeps) == 2


# -- the receiver really checks (so the tests above mean something) -------------------


def test_a_grant_signed_with_the_wrong_key_is_rejected(
    receiver: WebhookReceiver, sleeps: list[float]
) -> None:
    provider = WebhookProvider({SECRET_ENV: "not-the-key"}, sleep=sleeps.append, now=lambda: NOW)

    with pytest.raises(ProviderError, match="HTTP 401"):
        provider.grant(ALICE, make_target(receiver.url), CONTEXT)

    assert receiver.rejected == 3
    assert receiver.holdings == set()


def test_a_grant_with_a_stale_timestamp_is_rejected(
    receiver: WebhookReceiver, sleeps: list[float]
) -> None:
    ten_minutes_ago = NOW - timedelta(minutes=10)
    provider = WebhookProvider(
        {SECRET_ENV: SECRET}, sleep=sleeps.append, now=lambda: ten_minutes_ago
    )

    with pytest.raises(ProviderError, match="HTTP 401") as failure:
        provider.grant(ALICE, make_target(receiver.url), CONTEXT)

    assert not failure.value.retryable
    assert receiver.holdings == set()


# -- the secret -------------------------------------------------------------------------


@pytest.mark.parametrize("environ", [{}, {SECRET_ENV: ""}], ids=["unset", "empty"])
def test_validate_names_the_missing_secret_variable_and_the_target(
    environ: dict[str, str],
) -> None:
    provider = WebhookProvider(environ)

    with pytest.raises(ProviderError) as failure:
        provider.validate(make_target("https://hooks.example.com/jit"))

    assert SECRET_ENV in str(failure.value)
    assert "grafana-admin" in str(failure.value)


def test_grant_without_the_secret_fails_before_sending_anything(
    receiver: WebhookReceiver,
) -> None:
    def no_retry(seconds: float) -> None:
        pytest.fail(f"a missing secret was retried after {seconds}s")

    provider = WebhookProvider({}, sleep=no_retry)

    with pytest.raises(ProviderError, match=SECRET_ENV) as failure:
        provider.grant(ALICE, make_target(receiver.url), CONTEXT)

    assert not failure.value.retryable
    assert receiver.requests == []


def test_the_secret_never_appears_in_errors_or_logs_even_when_echoed_back(
    provider: WebhookProvider,
    receiver: WebhookReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    target = make_target(receiver.url)
    provider.grant(ALICE, target, CONTEXT)
    receiver.fail_next(times=3, status=403, body=f"bad key {SECRET}")

    with pytest.raises(ProviderError) as failure:
        provider.revoke(ALICE, target, CONTEXT)

    assert caplog.records
    assert SECRET not in str(failure.value)
    assert SECRET not in caplog.text


def test_each_attempt_is_logged_and_failures_are_warnings(
    provider: WebhookProvider, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="providers.webhook")
    receiver.fail_next(times=1, status=500)

    provider.grant(ALICE, make_target(receiver.url), CONTEXT)

    levels = [record.levelname for record in caplog.records]
    assert levels.count("WARNING") == 1
    assert "attempt 1/3" in caplog.text
    assert "attempt 2/3" in caplog.text


# -- validate, describe, is_granted ---------------------------------------------------


def test_validate_of_an_https_target_has_no_warnings(provider: WebhookProvider) -> None:
    assert provider.validate(make_target("https://hooks.example.com/jit"), live=True) == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/jit", "http://localhost/jit"])
def test_validate_accepts_plain_http_to_loopback_quietly_when_the_target_allows_insecure(
    provider: WebhookProvider, url: str
) -> None:
    assert provider.validate(make_target(url, allow_insecure=True)) == []


def test_validate_warns_about_allowed_plain_http_to_another_host(
    provider: WebhookProvider,
) -> None:
    target = make_target("http://hooks.example.com/jit", allow_insecure=True)

    [warning] = provider.validate(target)

    assert "hooks.example.com" in warning
    assert "https" in warning


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://hooks.example.com/jit", "plain http"),
        ("http://127.0.0.1:8080/jit", "plain http"),
        ("https://127.0.0.1/jit", "loopback"),
        ("https://127.8.9.10/jit", "loopback"),
        ("https://localhost/jit", "loopback"),
        ("https://LocalHost./jit", "loopback"),
        ("https://hooks.localhost/jit", "loopback"),
        ("https://[::1]/jit", "loopback"),
        ("https://[::ffff:127.0.0.1]/jit", "loopback"),
        ("https://2130706433/jit", "loopback"),
        ("https://0x7f.1/jit", "loopback"),
        ("https://0.0.0.0/jit", "unspecified"),
        ("https://169.254.10.1/jit", "link-local"),
        ("https://[fe80::1]/jit", "link-local"),
        ("https://169.254.169.254/latest/meta-data/", "metadata"),
        ("https://[fd00:ec2::254]/latest/meta-data/", "metadata"),
        ("https://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("https://168.63.129.16/machine?comp=goalstate", "metadata"),  # Azure WireServer
        ("https://192.0.0.192/latest/", "metadata"),  # OCI, legacy
    ],
)
def test_validate_refuses_plain_http_loopback_link_local_and_metadata_urls(
    provider: WebhookProvider, url: str, says: str
) -> None:
    with pytest.raises(ProviderError) as refused:
        provider.validate(make_target(url, allow_insecure=False))

    assert "grafana-admin" in str(refused.value)
    assert says in str(refused.value)
    assert "allow_insecure: true" in str(refused.value)


@pytest.mark.parametrize(
    "url", ["https://hooks.example.com/jit", "https://10.1.2.3/jit", "https://[2001:db8::1]/jit"]
)
def test_validate_accepts_https_to_other_hosts_including_private_ones(
    provider: WebhookProvider, url: str
) -> None:
    assert provider.validate(make_target(url)) == []


def test_allow_insecure_leaves_the_targets_key_unchanged() -> None:
    # Keys (and so idempotency keys and "another grant holds this") of grants made before
    # the setting existed stay the same.
    plain = make_target("https://hooks.example.com/jit")
    opted = make_target("https://hooks.example.com/jit", allow_insecure=True)

    assert plain.key() == opted.key()
    assert "allow_insecure" not in plain.key()


# -- where a connection may go, checked at each call (DNS rebinding) --------------------


def _resolving(answers: dict[str, list[str]], looked_up: list[str]) -> Any:
    def resolve(host: str, port: int) -> list[str]:
        looked_up.append(host)
        return answers[host]

    return resolve


def test_a_name_that_resolves_to_loopback_at_call_time_is_refused_and_nothing_is_sent(
    receiver: WebhookReceiver, sleeps: list[float]
) -> None:
    # The name passed config validation (nothing in its spelling is wrong); when the
    # event is sent it resolves to the bot's own host, as a rebinding name would.
    looked_up: list[str] = []
    resolve = _resolving({"hooks.rebind.test": ["127.0.0.1"]}, looked_up)
    provider = WebhookProvider(
        {SECRET_ENV: SECRET}, sleep=sleeps.append, now=lambda: NOW, resolve=resolve
    )
    port = receiver.url.split(":")[2].split("/")[0]
    target = make_target(f"http://hooks.rebind.test:{port}/jit", allow_insecure=False)

    with pytest.raises(ProviderError) as refused:
        provider.grant(ALICE, target, CONTEXT)

    assert "hooks.rebind.test resolves to 127.0.0.1, a loopback address" in str(refused.value)
    assert not refused.value.retryable
    assert looked_up == ["hooks.rebind.test"]  # refused at once, not retried
    assert sleeps == []
    assert receiver.requests == []


@pytest.mark.parametrize(
    "answers",
    [["169.254.169.254"], ["fd00:ec2::254"], ["93.184.216.34", "127.0.0.1"], ["fe80::1%eth0"]],
    ids=["metadata", "metadata-v6", "one-bad-among-good", "link-local-v6"],
)
def test_a_name_resolving_to_any_forbidden_address_is_refused_before_connecting(
    sleeps: list[float], answers: list[str]
) -> None:
    looked_up: list[str] = []
    resolve = _resolving({"hooks.example.com": answers}, looked_up)
    provider = WebhookProvider(
        {SECRET_ENV: SECRET}, sleep=sleeps.append, now=lambda: NOW, resolve=resolve
    )

    with pytest.raises(ProviderError, match=r"resolves to .*; refused") as refused:
        provider.revoke(ALICE, make_target("https://hooks.example.com/jit"), CONTEXT)

    assert not refused.value.retryable
    assert looked_up == ["hooks.example.com"]


def test_with_allow_insecure_a_name_resolving_to_loopback_is_used(
    receiver: WebhookReceiver, sleeps: list[float]
) -> None:
    looked_up: list[str] = []
    resolve = _resolving({"hooks.rebind.test": ["127.0.0.1"]}, looked_up)
    provider = WebhookProvider(
        {SECRET_ENV: SECRET}, sleep=sleeps.append, now=lambda: NOW, resolve=resolve
    )
    port = receiver.url.split(":")[2].split("/")[0]
    url = f"http://localhost:{port}/jit"
    receiver.audience = url

    provider.grant(ALICE, make_target(url, allow_insecure=True), CONTEXT)

    assert receiver.holdings == {("alice@example.com", "grafana-admin")}


# -- the signature's audience -----------------------------------------------------------


def test_an_event_replayed_to_another_receiver_sharing_the_key_is_rejected(
    provider: WebhookProvider, receiver: WebhookReceiver
) -> None:
    # Two services behind one key (a common shortcut): an event captured on its way to
    # one (a grant to a dev tool) must not be accepted by the other (a prod admin panel).
    provider.grant(ALICE, make_target(receiver.url), CONTEXT)
    [sent] = receiver.requests
    with WebhookReceiver(SECRET, clock=NOW.timestamp) as other:
        replay = urllib.request.Request(
            other.url,
            data=sent.body,
            method="POST",
            headers={
                name: sent.headers[name]
                for name in (
                    "content-type",
                    "idempotency-key",
                    "x-jit-timestamp",
                    "x-jit-signature",
                )
            },
        )
        with pytest.raises(urllib.error.HTTPError) as rejected:
            urllib.request.urlopen(replay, timeout=5)

        assert rejected.value.code == 401
        assert json.loads(rejected.value.read()) == {"error": "signature does not match"}
        assert other.holdings == set()


def test_the_signed_audience_is_the_url_as_written_including_its_query(
    provider: WebhookProvider, receiver: WebhookReceiver
) -> None:
    url = receiver.url + "?tenant=prod"
    receiver.audience = url
    provider.grant(ALICE, make_target(url), CONTEXT)
    [request] = receiver.requests

    assert request.status == 200
    assert request.headers["x-jit-signature"] == expected_signature(
        request.headers["x-jit-timestamp"], url, request.body
    )
    assert request.headers["x-jit-signature"] != expected_signature(
        request.headers["x-jit-timestamp"], receiver.url, request.body
    )


def test_validate_refuses_a_target_of_another_provider(provider: WebhookProvider) -> None:
    with pytest.raises(TypeError):
        provider.validate(FakeTarget(resource="x"))


def test_describe_names_the_target_and_leaves_out_the_query(provider: WebhookProvider) -> None:
    target = make_target("https://hooks.example.com/jit?token=abc123")

    assert provider.describe(target) == "webhook `grafana-admin` (https://hooks.example.com/jit)"


def test_is_granted_cannot_tell(provider: WebhookProvider, receiver: WebhookReceiver) -> None:
    target = make_target(receiver.url)
    provider.grant(ALICE, target, CONTEXT)

    assert provider.is_granted(ALICE, target) is None


# -- the target model -------------------------------------------------------------------


def test_target_defaults_are_ten_seconds_and_five_attempts() -> None:
    target = WebhookTarget(
        provider="webhook",
        name="grafana-admin",
        url="https://hooks.example.com/jit",
        secret_env=SECRET_ENV,
    )

    assert target.timeout_seconds == 10
    assert target.max_attempts == 5


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/jit",
        "file:///etc/passwd",
        "hooks.example.com/jit",
        "https://",
        "https:///jit",
        "https://user:password@hooks.example.com/jit",
        "https://hooks.example.com/jit#frag",
        "https://hooks.example.com:99999/jit",
        "https://hooks.example.com/a b",
    ],
)
def test_target_rejects_a_url_that_is_not_plain_http(url: str) -> None:
    with pytest.raises(ValidationError, match="url"):
        make_target(url)


@pytest.mark.parametrize(
    "secret_env", ["lowercase", "1STARTS_WITH_DIGIT", "HAS-DASH", "HAS SPACE", ""]
)
def test_target_rejects_a_bad_secret_env_name(secret_env: str) -> None:
    with pytest.raises(ValidationError, match="secret_env"):
        make_target("https://hooks.example.com/jit", secret_env=secret_env)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout_seconds", 0),
        ("timeout_seconds", 61),
        ("max_attempts", 0),
        ("max_attempts", 11),
        ("name", ""),
        ("name", " padded"),
        ("name", "two\nlines"),
        ("name", "back`tick"),
        ("provider", "aws"),
    ],
)
def test_target_rejects_out_of_range_fields(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        make_target("https://hooks.example.com/jit", **{field: value})


def test_target_is_frozen() -> None:
    target = make_target("https://hooks.example.com/jit")

    with pytest.raises(ValidationError):
        target.name = "other"  # type: ignore[misc]
