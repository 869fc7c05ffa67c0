"""Contract checks that several tests run: against every harness in
test_provider_contract.py, and against deliberately broken providers in
test_contract_can_fail.py, which shows that each check fails when a provider does not
honour it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from providers.base import GrantContext, Principal, ProviderError
from tests.contract.harnesses import ProviderHarness

ALICE = Principal(slack_user_id="U0ALICE", email="alice@example.com")
BOB = Principal(slack_user_id="U0BOB", email="bob@example.com")


def context(request_id: str = "req-1") -> GrantContext:
    return GrantContext(
        request_id=request_id,
        role="prod-support",
        environment="prod",
        reason="INC-123 investigating errors",
        expires_at=datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2),
    )


def check_validate_rejects_what_the_backend_cannot_serve(harness: ProviderHarness) -> None:
    """A live check of a target the backend cannot serve raises ProviderError, and its
    message names what is wrong (an operator reads it from `jit-bot check --live`)."""
    target, words = harness.make_invalid_target()
    try:
        warnings = harness.provider.validate(target, live=True)
    except ProviderError as exc:
        message = str(exc)
        assert words in message, f"validate's error {message!r} does not say {words!r}"
        return
    raise AssertionError(
        f"validate accepted {target!r}, which the backend cannot serve (warnings: {warnings})"
    )


def check_is_granted_follows_grant_and_revoke(harness: ProviderHarness) -> None:
    """is_granted says what the backend holds: not before the grant, yes after it (for
    that principal only), not after the revoke. A provider that cannot read access back
    answers None every time rather than guess."""
    target = harness.make_target("alpha")
    provider = harness.provider
    seen = {"before grant": provider.is_granted(ALICE, target)}
    provider.grant(ALICE, target, context())
    seen["after grant"] = provider.is_granted(ALICE, target)
    seen["other principal"] = provider.is_granted(BOB, target)
    provider.revoke(ALICE, target, context())
    seen["after revoke"] = provider.is_granted(ALICE, target)

    if harness.reports_grants:
        expected = {
            "before grant": False,
            "after grant": True,
            "other principal": False,
            "after revoke": False,
        }
    else:
        expected = dict.fromkeys(seen, None)
    assert seen == expected, f"is_granted answered {seen}, the backend says {expected}"
