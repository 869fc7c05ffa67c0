"""The contract every provider honours, run against each harness in harnesses.HARNESSES.

What the domain relies on: grant returns once access is effective and is idempotent for
the same request; revoke is idempotent and "already absent" is success; targets are
independent of each other and principals of each other; target models are strict and
survive a round trip through the database; a live check refuses a target the backend
cannot serve and says why; is_granted reports what the backend holds (or None where the
provider cannot tell); failures are ProviderError; extend keeps access without a lapse,
moves the backend's own end later (where it has one), is idempotent and never shortens.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from providers.base import GrantOutcome, ProviderError
from tests.contract.checks import (
    ALICE,
    BOB,
    check_extend_keeps_access_and_moves_its_end,
    check_is_granted_follows_grant_and_revoke,
    check_validate_rejects_what_the_backend_cannot_serve,
    context,
    later,
)
from tests.contract.harnesses import ProviderHarness


def test_grant_makes_access_effective(harness: ProviderHarness) -> None:
    target = harness.make_target("alpha")

    outcome = harness.provider.grant(ALICE, target, context())

    assert isinstance(outcome, GrantOutcome)
    assert harness.holds(ALICE, target)
    assert harness.provider.is_granted(ALICE, target) is (True if harness.reports_grants else None)


def test_granting_twice_for_the_same_request_leaves_one_effective_grant(
    harness: ProviderHarness,
) -> None:
    target = harness.make_target("alpha")

    harness.provider.grant(ALICE, target, context())
    harness.provider.grant(ALICE, target, context())
    assert harness.holds(ALICE, target)

    harness.provider.revoke(ALICE, target, context())
    assert not harness.holds(ALICE, target)


def test_revoke_removes_access(harness: ProviderHarness) -> None:
    target = harness.make_target("alpha")
    harness.provider.grant(ALICE, target, context())

    harness.provider.revoke(ALICE, target, context())

    assert not harness.holds(ALICE, target)
    assert harness.provider.is_granted(ALICE, target) is (False if harness.reports_grants else None)


def test_revoking_twice_is_success(harness: ProviderHarness) -> None:
    target = harness.make_target("alpha")
    harness.provider.grant(ALICE, target, context())

    harness.provider.revoke(ALICE, target, context())
    harness.provider.revoke(ALICE, target, context())

    assert not harness.holds(ALICE, target)


def test_revoking_access_never_granted_is_success(harness: ProviderHarness) -> None:
    target = harness.make_target("alpha")

    harness.provider.revoke(ALICE, target, context())

    assert not harness.holds(ALICE, target)


def test_revoking_one_target_leaves_another_target_of_the_same_principal(
    harness: ProviderHarness,
) -> None:
    alpha, beta = harness.make_target("alpha"), harness.make_target("beta")
    harness.provider.grant(ALICE, alpha, context())
    harness.provider.grant(ALICE, beta, context())

    harness.provider.revoke(ALICE, alpha, context())

    assert not harness.holds(ALICE, alpha)
    assert harness.holds(ALICE, beta)


def test_grants_for_two_principals_are_independent(harness: ProviderHarness) -> None:
    target = harness.make_target("alpha")
    harness.provider.grant(ALICE, target, context("req-alice"))
    harness.provider.grant(BOB, target, context("req-bob"))

    harness.provider.revoke(ALICE, target, context("req-alice"))

    assert not harness.holds(ALICE, target)
    assert harness.holds(BOB, target)


def test_expand_gives_units_of_the_providers_own_model_each_described_on_one_line(
    harness: ProviderHarness,
) -> None:
    units = harness.provider.expand(harness.make_target("alpha"))

    assert units
    for unit in units:
        assert isinstance(unit, harness.provider.target_model)
        line = harness.provider.describe(unit)
        assert line.strip()
        assert "\n" not in line


def test_target_model_rejects_unknown_keys(harness: ProviderHarness) -> None:
    fields = harness.make_target("alpha").model_dump(mode="json")

    with pytest.raises(ValidationError):
        harness.provider.target_model.model_validate({**fields, "surprise": "value"})


def test_target_model_round_trips_through_json_with_an_equal_key(
    harness: ProviderHarness,
) -> None:
    target = harness.make_target("alpha")

    again = harness.provider.target_model.model_validate(target.model_dump(mode="json"))

    assert again == target
    assert again.key() == target.key()


def test_targets_with_different_names_have_different_keys(harness: ProviderHarness) -> None:
    assert harness.make_target("alpha").key() != harness.make_target("beta").key()


@pytest.mark.parametrize("live", [False, True], ids=["offline", "live"])
def test_validate_of_a_valid_target_returns_a_list_of_warnings(
    harness: ProviderHarness, live: bool
) -> None:
    warnings = harness.provider.validate(harness.make_target("alpha"), live=live)

    assert isinstance(warnings, list)
    assert all(isinstance(warning, str) for warning in warnings)


def test_validate_rejects_a_target_the_backend_cannot_serve(harness: ProviderHarness) -> None:
    check_validate_rejects_what_the_backend_cannot_serve(harness)


def test_is_granted_reports_the_grant_and_its_revocation(harness: ProviderHarness) -> None:
    check_is_granted_follows_grant_and_revoke(harness)


def test_a_backend_failure_surfaces_as_provider_error_and_a_later_grant_succeeds(
    harness: ProviderHarness,
) -> None:
    target = harness.make_target("alpha")
    try:
        harness.break_next_grant(target)
    except NotImplementedError:
        pytest.skip(f"the {harness.id} harness cannot inject failures")

    with pytest.raises(ProviderError):
        harness.provider.grant(ALICE, target, context())

    harness.provider.grant(ALICE, target, context())
    assert harness.holds(ALICE, target)


def test_extending_keeps_access_until_a_revoke_removes_it(harness: ProviderHarness) -> None:
    check_extend_keeps_access_and_moves_its_end(harness)


def test_extending_twice_to_the_same_time_changes_nothing_the_second_time(
    harness: ProviderHarness,
) -> None:
    target = harness.make_target("alpha")
    granted = context()
    harness.provider.grant(ALICE, target, granted)
    extended = later(granted, timedelta(hours=2))
    harness.provider.extend(ALICE, target, extended)
    ends = harness.ends_at(ALICE, target)

    harness.provider.extend(ALICE, target, extended)

    assert harness.holds(ALICE, target)
    assert harness.ends_at(ALICE, target) == ends
    assert (ends is not None) is harness.ends_access


def test_extending_to_an_earlier_time_never_shortens_access(harness: ProviderHarness) -> None:
    target = harness.make_target("alpha")
    granted = context()
    harness.provider.grant(ALICE, target, granted)
    ends = harness.ends_at(ALICE, target)

    harness.provider.extend(ALICE, target, later(granted, -timedelta(hours=1)))

    assert harness.holds(ALICE, target)
    assert harness.ends_at(ALICE, target) == ends
    if harness.ends_access:
        assert ends is not None and ends >= granted.expires_at


def test_extending_leaves_another_principals_access_as_it_was(harness: ProviderHarness) -> None:
    target = harness.make_target("alpha")
    bobs = context("req-bob")
    harness.provider.grant(ALICE, target, context("req-alice"))
    harness.provider.grant(BOB, target, bobs)
    bob_ends = harness.ends_at(BOB, target)

    harness.provider.extend(ALICE, target, later(context("req-alice"), timedelta(hours=2)))

    assert harness.holds(BOB, target)
    assert harness.ends_at(BOB, target) == bob_ends
    harness.provider.revoke(BOB, target, bobs)
    assert harness.holds(ALICE, target)
