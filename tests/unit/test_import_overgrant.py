"""``--max-overgrant N`` (bot.importer.overgrant.relax): fewer roles for at most N cells
per person beyond what they hold today, every one of them listed."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.cli import main
from bot.importer.mining import mine
from bot.importer.overgrant import relax

Pairs = list[tuple[str, int]]


def _given(result_roles: dict[str, set[int]], names: tuple[str, ...]) -> set[int]:
    return set().union(*(result_roles[n] for n in names)) if names else set()


def _check(pairs: Pairs, limit: int) -> int:
    """Relax the exact mining of ``pairs`` and check its promises; the roles it kept."""
    exact = mine(pairs, time_limit=5)
    relaxed = relax(exact, pairs, limit)
    held: dict[str, set[int]] = defaultdict(set)
    for user, permission in pairs:
        held[user].add(permission)
    roles = {r.name: set(r.permissions) for r in relaxed.roles}
    assert len(relaxed.roles) <= len(exact.roles)
    assert relaxed.figures.roles == len(relaxed.roles)
    assert all(roles.values())
    for user, row in held.items():
        got = _given(roles, relaxed.assignments[user])
        assert row <= got  # nobody loses anything
        assert got - row == set(relaxed.overgrant.get(user, ()))  # every extra is listed
        assert len(got - row) <= limit
    assert set(relaxed.overgrant) <= set(held)
    return len(relaxed.roles)


def test_one_cell_more_for_one_person_saves_a_role() -> None:
    # ann holds 1 and 2, ben 1, 2 and 3: exactly, that takes two roles; one cell more
    # for ann (3) makes one role serve both.
    pairs = [("ann", 1), ("ann", 2), ("ben", 1), ("ben", 2), ("ben", 3)]
    exact = mine(pairs)

    relaxed = relax(exact, pairs, 1)

    assert len(exact.roles) == 2 and exact.overgrant == {}
    assert [set(r.permissions) for r in relaxed.roles] == [{1, 2, 3}]
    assert relaxed.overgrant == {"ann": (3,)}
    assert relax(exact, pairs, 0) is exact


def test_the_limit_is_per_person_and_never_exceeded() -> None:
    # Merging the two roles would give ann two extra cells: allowed at 2, not at 1.
    pairs = [("ann", 1), ("ben", 1), ("ben", 2), ("ben", 3), ("cat", 2), ("cat", 3)]

    assert _check(pairs, 1) == 2
    assert _check(pairs, 2) == 1


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abcdefgh"), st.integers(0, 7)), min_size=1, max_size=30),
    st.integers(0, 3),
)
def test_relaxing_keeps_every_promise_on_any_matrix(pairs: Pairs, limit: int) -> None:
    _check(sorted(set(pairs)), limit)


@pytest.mark.parametrize("bad", ["-1", "1.5", "inf", "nan", "some"])
def test_the_option_refuses_what_is_not_a_whole_number(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["import", "aws", "--output", "out", "--max-overgrant", bad])

    assert exited.value.code == 2
    assert f"'{bad}' is not a whole number ≥ 0" in capsys.readouterr().err
