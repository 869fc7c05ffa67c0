"""The fake provider retries its own temporary failures, as every provider does, and is
called like any provider: by position or by keyword."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from providers.base import GrantContext, Principal, ProviderError
from providers.fake import FakeProvider, FakeTarget

ALICE = Principal(slack_user_id="U0ALICE", email="alice@example.com")
TARGET = FakeTarget(resource="prod-db")
CONTEXT = GrantContext("R-AAAAAAAA", "ops", "prod", "INC-1", datetime(2026, 1, 1, tzinfo=UTC))


def test_grant_and_revoke_take_keyword_arguments_like_any_provider() -> None:
    provider = FakeProvider()
    provider.fail("grant", "prod-db", "Throttled", times=1, retryable=True)

    provider.grant(principal=ALICE, target=TARGET, context=CONTEXT)
    assert provider.holdings == {("alice@example.com", "prod-db")}

    provider.revoke(principal=ALICE, target=TARGET, context=CONTEXT)
    assert provider.holdings == set()
    assert [c.action for c in provider.calls] == ["grant", "grant", "revoke"]


def test_a_temporary_failure_is_tried_again_up_to_the_policys_attempts() -> None:
    provider = FakeProvider()
    provider.fail("revoke", "prod-db", "Throttled", times=provider.retry.attempts, retryable=True)
    provider.grant(ALICE, TARGET, CONTEXT)

    with pytest.raises(ProviderError, match="Throttled") as gave_up:
        provider.revoke(ALICE, TARGET, CONTEXT)

    assert gave_up.value.retryable
    assert [c.action for c in provider.calls].count("revoke") == provider.retry.attempts
    assert provider.holdings == {("alice@example.com", "prod-db")}


def test_a_permanent_failure_is_not_tried_again() -> None:
    provider = FakeProvider()
    provider.fail("grant", "prod-db", "AccessDenied", times=1, retryable=False)

    with pytest.raises(ProviderError, match="AccessDenied"):
        provider.grant(ALICE, TARGET, CONTEXT)

    assert [c.action for c in provider.calls] == ["grant"]
