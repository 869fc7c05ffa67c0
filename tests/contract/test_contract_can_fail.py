"""The contract's checks can fail: each is run against every harness with its provider
swapped for a subclass that breaks that part of the contract, and must raise.

Without these, a check that passes for every provider could be one that passes for any
provider (a `validate` that returns [] or an `is_granted` that always answers "unknown"
once did)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from providers.base import GrantContext, Principal, Provider, ProviderError, TargetSpec
from tests.contract.checks import (
    check_extend_keeps_access_and_moves_its_end,
    check_is_granted_follows_grant_and_revoke,
    check_validate_rejects_what_the_backend_cannot_serve,
)
from tests.contract.harnesses import ProviderHarness


def _accepts_anything(self: Provider, target: TargetSpec, *, live: bool = False) -> list[str]:
    return []


def _refuses_vaguely(self: Provider, target: TargetSpec, *, live: bool = False) -> list[str]:
    raise ProviderError("invalid target")


def _cannot_tell(self: Provider, principal: Principal, target: TargetSpec) -> bool | None:
    return None


def _always_granted(self: Provider, principal: Principal, target: TargetSpec) -> bool | None:
    return True


def _never_granted(self: Provider, principal: Principal, target: TargetSpec) -> bool | None:
    return False


def _takes_access_away(
    self: Provider, principal: Principal, target: TargetSpec, context: GrantContext
) -> None:
    self.revoke(principal, target, context)


def _leaves_the_end_as_it_was(
    self: Provider, principal: Principal, target: TargetSpec, context: GrantContext
) -> None:
    return None


# What each broken provider overrides, and the check that must then fail.
BREAKAGES: dict[str, tuple[str, Callable[..., Any], Callable[[ProviderHarness], None]]] = {
    "validate accepts anything": (
        "validate",
        _accepts_anything,
        check_validate_rejects_what_the_backend_cannot_serve,
    ),
    "validate refuses without saying why": (
        "validate",
        _refuses_vaguely,
        check_validate_rejects_what_the_backend_cannot_serve,
    ),
    "is_granted always answers unknown": (
        "is_granted",
        _cannot_tell,
        check_is_granted_follows_grant_and_revoke,
    ),
    "is_granted always answers yes": (
        "is_granted",
        _always_granted,
        check_is_granted_follows_grant_and_revoke,
    ),
    "is_granted always answers no": (
        "is_granted",
        _never_granted,
        check_is_granted_follows_grant_and_revoke,
    ),
    "extend takes the access away": (
        "extend",
        _takes_access_away,
        check_extend_keeps_access_and_moves_its_end,
    ),
    "extend leaves the end where it was": (
        "extend",
        _leaves_the_end_as_it_was,
        check_extend_keeps_access_and_moves_its_end,
    ),
}


def _break(harness: ProviderHarness, method: str, replacement: Callable[..., Any]) -> None:
    """Turn the harness's provider into an instance of a subclass that overrides
    ``method`` (the instance keeps its clients and backend)."""
    honest = type(harness.provider)
    broken = type(f"Broken{honest.__name__}", (honest,), {method: replacement})
    harness.provider.__class__ = broken


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_each_contract_check_fails_for_a_provider_that_breaks_it(
    harness: ProviderHarness, breakage: str
) -> None:
    method, replacement, check = BREAKAGES[breakage]
    if breakage == "is_granted always answers unknown" and not harness.reports_grants:
        pytest.skip(f"the {harness.id} provider cannot tell, so 'unknown' is its honest answer")
    if breakage == "extend leaves the end where it was" and not harness.ends_access:
        pytest.skip(f"the {harness.id} backend does not end access itself: nothing to move")
    check(harness)  # the honest provider passes
    _break(harness, method, replacement)

    # The check's own finding, not some other assertion on the way.
    with pytest.raises(
        AssertionError, match=r"^(validate accepted|validate's error|is_granted|extend)"
    ):
        check(harness)
