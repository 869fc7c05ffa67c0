"""Contract checks that several tests run: against every harness in
test_provider_contract.py, and against deliberately broken providers in
test_contract_can_fail.py, which shows that each check fails when a provider does not
honour it."""

from __future__ import annotations

import dataclasses
import uuid
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


def later(granted: GrantContext, by: timedelta) -> GrantContext:
    """The same request with its expiry moved by ``by``: what an extension passes."""
    return dataclasses.replace(granted, expires_at=granted.expires_at + by)


def check_extend_keeps_access_and_moves_its_end(harness: ProviderHarness) -> None:
    """After grant then extend to a later time, the access is still held; where the
    backend ends access by itself, it now ends at the new time (a PIM schedule on the
    minute after it at the latest); a revoke then removes it. Each run is a request of
    its own, so the check can run twice against one backend."""
    target = harness.make_target("alpha")
    granted = context(f"req-{uuid.uuid4().hex[:8]}")
    harness.provider.grant(ALICE, target, granted)
    extended = later(granted, timedelta(hours=2))

    harness.provider.extend(ALICE, target, extended)

    assert harness.holds(ALICE, target), "extend took the access away"
    ends = harness.ends_at(ALICE, target)
    if harness.ends_access:
        wanted = extended.expires_at
        assert ends is not None and wanted <= ends < wanted + timedelta(minutes=1), (
            f"extend left the backend ending the access at {ends}, not at {wanted}"
        )
    else:
        assert ends is None, f"extend: the harness says the backend ends access at {ends}"
    harness.provider.revoke(ALICE, target, extended)
    assert not harness.holds(ALICE, target), "extend: the extended access outlived revoke"


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
