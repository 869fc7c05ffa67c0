"""providers/resilience.py: the one retry policy, Retry-After parsing and the TTL cache,
and each provider's worst-case time to give up on one call, pinned.

Providers retry their own calls; the domain does not retry on top. So the figures below
are the whole wait of one call before its ProviderError reaches the domain, and each must
fit inside the revocation deadline (bot/config.py ``revoke_deadline``), or a revocation
would be cut off while its provider is still waiting to try again. (An operation of
several calls can wait for several of them; the revoker's deadline bounds that.)
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from bot import google_groups
from bot.config import Settings
from bot.slack import directory as slack_directory
from providers import aws, azure, gcp, kubernetes, mysql, postgresql, webhook
from providers.base import GrantContext, Principal, ProviderError
from providers.fake import FakeProvider, FakeTarget
from providers.resilience import NO_WAIT, RetryPolicy, TtlCache, parse_retry_after

REVOKE_DEADLINE: timedelta = Settings.model_fields["revoke_deadline"].default

# (name, policy, worst case): sums of the capped backoffs (or of the longest Retry-After
# honoured, where that is longer), bounded by the policy's budget.
WORST_CASES = [
    # 0.5 + 1 + 2 + 4 + 8 + 16 + 20 (seven waits between eight tries, capped at 20s)
    ("aws", aws.RETRY, timedelta(seconds=51.5)),
    # five waits of up to a 120s Retry-After would be 600s; the 90s budget stops it
    ("azure", azure.RETRY, timedelta(seconds=90)),
    # 0.5 + 1 + 2 + 4 × 8 (eleven waits between twelve tries, capped at 4s)
    ("gcp", gcp.RETRY, timedelta(seconds=35.5)),
    # four waits of up to a 60s Retry-After would be 240s; the 90s budget stops it
    ("webhook", webhook.RETRY, timedelta(seconds=90)),
    # 0.5 + 1 + 2, each connection attempt bounded by its 5s connect timeout
    ("postgresql", postgresql.RETRY, timedelta(seconds=3.5)),
    ("mysql", mysql.RETRY, timedelta(seconds=3.5)),
    # seven waits of up to a 10s Retry-After would be 70s; the 30s budget stops it
    ("kubernetes", kubernetes.RETRY, timedelta(seconds=30)),
    # 0.5 + 1 + 2
    ("google groups", google_groups.RETRY, timedelta(seconds=3.5)),
    # two waits, each up to a 5s Retry-After
    ("slack directory", slack_directory.RETRY, timedelta(seconds=10)),
    # a test double: four tries, no waiting
    ("fake", NO_WAIT, timedelta(0)),
]


@pytest.mark.parametrize(
    ("name", "policy", "worst"), WORST_CASES, ids=[case[0] for case in WORST_CASES]
)
def test_each_providers_worst_case_is_pinned_and_inside_the_revoke_deadline(
    name: str, policy: RetryPolicy, worst: timedelta
) -> None:
    assert policy.worst_case() == worst
    assert policy.worst_case() < REVOKE_DEADLINE


def test_a_kubernetes_operation_gives_up_inside_the_deadline_however_slow_the_cluster() -> None:
    # A revocation makes several calls (list, delete, read back), each try up to its
    # timeout: the operation's own elapsed-time budget bounds them all, timeouts included
    # (tests/unit/test_kubernetes_provider.py shows it against a slow fake cluster).
    assert kubernetes.RETRY.worst_case() < timedelta(seconds=kubernetes.OPERATION_BUDGET)
    assert timedelta(seconds=kubernetes.OPERATION_BUDGET) < REVOKE_DEADLINE


def test_a_gcp_policy_change_read_and_written_at_worst_still_fits_the_revoke_deadline() -> None:
    # A revocation reads the IAM policy and writes it back: two calls, each retried.
    assert 2 * gcp.RETRY.worst_case() < REVOKE_DEADLINE


@pytest.mark.parametrize("attempts", range(1, 11))
def test_a_webhook_target_with_any_allowed_attempts_stays_inside_the_deadline(
    attempts: int,
) -> None:
    target = webhook.WebhookTarget(
        provider="webhook",
        name="grafana-admin",
        url="https://hooks.example.com/jit",
        secret_env="JIT_WEBHOOK_SECRET",
        max_attempts=attempts,
    )
    assert webhook.retry_policy(target).worst_case() < REVOKE_DEADLINE


def test_the_fake_provider_retries_four_times_without_waiting() -> None:
    waits: list[float] = []
    provider = FakeProvider(sleep=waits.append)
    provider.fail("grant", "db", "Throttled", times=5, retryable=True)
    alice = Principal(slack_user_id="UALICE", email="alice@example.com")
    context = GrantContext("R-1", "ops", "prod", "INC-1", datetime(2024, 5, 1, tzinfo=UTC))

    with pytest.raises(ProviderError, match="Throttled"):
        provider.grant(alice, FakeTarget(resource="db"), context)

    assert [c.action for c in provider.calls] == ["grant"] * 4
    assert waits == [0.0, 0.0, 0.0]


# ------------------------------------------------------------------ the policy


def test_backoff_doubles_from_base_to_cap_in_the_upper_half_of_each_ceiling() -> None:
    policy = RetryPolicy(attempts=10, base=0.5, cap=4.0)

    assert [policy.ceiling(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert policy.backoff(3, 0.0) == 1.0
    assert policy.backoff(3, 0.999) == pytest.approx(2.0, abs=0.01)
    for attempt in range(1, 10):
        delay = policy.delay(attempt)
        assert delay is not None
        assert policy.ceiling(attempt) / 2 <= delay <= policy.ceiling(attempt)


def test_without_jitter_the_wait_is_the_ceiling() -> None:
    policy = RetryPolicy(attempts=3, base=0.5, cap=1.0, jitter=False)

    assert [policy.delay(1), policy.delay(2), policy.delay(3)] == [0.5, 1.0, None]


def test_the_last_attempt_gives_up() -> None:
    policy = RetryPolicy(attempts=2)

    assert policy.delay(1) is not None
    assert policy.delay(2) is None


def test_a_retry_after_replaces_the_backoff_and_a_longer_one_than_the_cap_gives_up() -> None:
    policy = RetryPolicy(attempts=5, retry_after_cap=5.0)

    assert policy.delay(1, 3.0) == 3.0
    assert policy.delay(1, 5.0) == 5.0
    assert policy.delay(1, 6.0) is None


def test_a_policy_that_does_not_honour_retry_after_backs_off_instead() -> None:
    policy = RetryPolicy(attempts=5, base=0.5, cap=0.5, jitter=False)

    assert policy.delay(1, 60.0) == 0.5


def test_a_wait_that_would_pass_the_budget_is_not_started() -> None:
    policy = RetryPolicy(attempts=10, retry_after_cap=60.0, budget=90.0)

    assert policy.delay(1, 60.0, waited=30.0) == 60.0
    assert policy.delay(2, 60.0, waited=60.0) is None


def test_retrying_counts_attempts_and_waiting() -> None:
    waits: list[float] = []
    tries = RetryPolicy(attempts=3, base=1.0, cap=1.0, jitter=False).start(waits.append)

    assert tries.again() and tries.again()
    assert not tries.again()
    assert waits == [1.0, 1.0]
    assert (tries.attempt, tries.waited) == (3, 2.0)


def test_a_policy_needs_an_attempt() -> None:
    with pytest.raises(ValueError, match="at least one attempt"):
        RetryPolicy(attempts=0)


# ------------------------------------------------------------------ Retry-After


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), (" 0.5 ", 0.5), ("100000", 60.0), ("-3", 0.0), ("soon", None), (None, None)],
)
def test_retry_after_is_read_as_seconds_and_clipped(
    header: str | None, seconds: float | None
) -> None:
    assert parse_retry_after(header, cap=60.0) == seconds


def test_retry_after_may_be_an_http_date() -> None:
    sent = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    header = format_datetime(sent + timedelta(seconds=12), usegmt=True)

    assert parse_retry_after(header, cap=60.0, now=sent) == 12.0


def test_an_http_date_in_the_past_means_at_once() -> None:
    sent = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    header = format_datetime(sent - timedelta(seconds=12), usegmt=True)

    assert parse_retry_after(header, cap=60.0, now=sent) == 0.0


def test_a_nan_retry_after_is_ignored() -> None:
    assert parse_retry_after("nan", cap=60.0) is None


# ------------------------------------------------------------------ the cache


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_cache_answers_until_the_ttl_has_passed_then_asks_again() -> None:
    clock = _Clock()
    cache: TtlCache[str, int] = TtlCache(60.0, clock)
    loads: list[int] = []

    def load() -> int:
        loads.append(1)
        return len(loads)

    assert cache.get("k", load) == 1
    clock.now += 59.9
    assert cache.get("k", load) == 1
    clock.now += 0.1
    assert cache.get("k", load) == 2
    assert len(loads) == 2


def test_clearing_the_cache_forgets_everything() -> None:
    cache: TtlCache[str, str] = TtlCache(60.0, _Clock())
    cache.put("k", "old")

    cache.clear()

    assert cache.get("k", lambda: "new") == "new"


def test_a_failed_load_is_not_cached() -> None:
    cache: TtlCache[str, str] = TtlCache(60.0, _Clock())

    def fail() -> str:
        raise ProviderError("throttled", retryable=True)

    with pytest.raises(ProviderError):
        cache.get("k", fail)
    assert cache.get("k", lambda: "found") == "found"


def test_a_slow_load_holds_up_no_other_key() -> None:
    cache: TtlCache[str, str] = TtlCache(60.0, _Clock())
    entered, release = threading.Event(), threading.Event()

    def slow() -> str:
        entered.set()
        release.wait(5)
        return "slow"

    worker = threading.Thread(target=cache.get, args=("slow", slow))
    worker.start()
    try:
        assert entered.wait(5)
        assert cache.get("fast", lambda: "fast") == "fast"
    finally:
        release.set()
        worker.join(5)
    assert cache.get("slow", lambda: "reloaded") == "slow"
