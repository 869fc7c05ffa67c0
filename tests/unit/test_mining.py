"""The role-mining core (bot.importer.mining) as a specification: the fewest roles that
reproduce a user–permission matrix exactly, a lower bound that holds, and the same
answer for the same matrix every time.

Small matrices with known optima, an exhaustive cross-check on random tiny ones, and the
three benchmark matrices of the literature at their published minimum."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import Hashable, Iterable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.importer.cover import Outcome
from bot.importer.matrix import read_matrix
from bot.importer.mining import Mining, mine

DATA = Path(__file__).resolve().parents[1] / "data" / "rolemining"


def holdings(pairs: Iterable[tuple[Hashable, Hashable]]) -> dict[Hashable, set[Hashable]]:
    held: dict[Hashable, set[Hashable]] = defaultdict(set)
    for user, permission in pairs:
        held[user].add(permission)
    return dict(held)


def assert_reproduces_exactly(result: Mining, pairs: Iterable[tuple[Hashable, Hashable]]) -> None:
    """Every user's roles together grant exactly their permissions, nothing more, and no
    role is empty, repeated or given to nobody."""
    held = holdings(pairs)
    permissions = {role.name: set(role.permissions) for role in result.roles}
    assert len(permissions) == len(result.roles)
    assert all(permissions.values())
    assert set(result.assignments) == set(held)
    for user, names in result.assignments.items():
        granted = set().union(*(permissions[name] for name in names))
        assert granted == held[user], user
    assert {n for names in result.assignments.values() for n in names} == set(permissions)


def assert_the_witness_proves_the_bound(
    result: Mining, pairs: Iterable[tuple[Hashable, Hashable]]
) -> None:
    """The witness is assignments of the matrix no two of which fit in one role."""
    held = holdings(pairs)
    witness = result.witness
    assert len(witness) == result.figures.incompatible_assignments
    assert all(p in held[u] for u, p in witness)
    for (u1, p1), (u2, p2) in itertools.combinations(witness, 2):
        assert not (p2 in held[u1] and p1 in held[u2]), ((u1, p1), (u2, p2))


def brute_force_minimum(pairs: list[tuple[str, str]]) -> int:
    """The optimum by trying every set of roles, smallest first: a role is any non-empty
    set of permissions, given to every user who holds all of it."""
    held = holdings(pairs)
    universe = sorted({p for _, p in pairs})
    roles = [
        frozenset(c)
        for size in range(1, len(universe) + 1)
        for c in itertools.combinations(universe, size)
        if any(set(c) <= ps for ps in held.values())
    ]
    for count in range(len(roles) + 1):
        for chosen in itertools.combinations(roles, count):
            if all(set().union(*(r for r in chosen if r <= ps)) == ps for ps in held.values()):
                return count
    raise AssertionError("the user rows themselves are always a cover")


def test_an_empty_matrix_needs_no_roles() -> None:
    result = mine([])

    assert result.roles == ()
    assert result.assignments == {}
    assert (result.figures.roles, result.figures.lower_bound) == (0, 0)
    assert result.figures.optimal


def test_one_user_gets_one_role_with_all_their_permissions() -> None:
    pairs = [("alice", "s3:Get"), ("alice", "s3:Put"), ("alice", "ec2:Describe")]

    result = mine(pairs)

    assert [set(r.permissions) for r in result.roles] == [{"s3:Get", "s3:Put", "ec2:Describe"}]
    assert result.assignments == {"alice": ("role-1",)}
    assert result.figures.lower_bound == 1
    assert_reproduces_exactly(result, pairs)


def test_identical_users_share_one_role_and_count_once_in_the_reduction() -> None:
    pairs = [(f"user{n}", p) for n in range(5) for p in ("read", "write", "list")]

    result = mine(pairs)

    assert len(result.roles) == 1
    assert result.figures.users == 5
    assert result.figures.distinct_users == 1
    assert result.figures.distinct_permissions == 1  # the three travel together
    assert_reproduces_exactly(result, pairs)


def test_a_permission_nobody_else_has_costs_exactly_one_more_role() -> None:
    shared = [(u, p) for u in ("ann", "bob", "cy") for p in ("logs:read", "metrics:read")]
    pairs = [*shared, ("cy", "db:admin")]

    result = mine(pairs)

    assert (result.figures.roles, result.figures.lower_bound) == (2, 2)
    assert_reproduces_exactly(result, pairs)
    assert result.assignments["ann"] == result.assignments["bob"]
    assert result.assignments["cy"] != result.assignments["ann"]


def test_the_optimum_can_need_roles_that_overlap() -> None:
    # Disjoint roles would need {a}, {b}, {c}: three. Two overlapping ones share b.
    pairs = [("u1", "a"), ("u1", "b"), ("u2", "b"), ("u2", "c")]
    pairs += [("u3", "a"), ("u3", "b"), ("u3", "c")]

    result = mine(pairs)

    assert result.figures.roles == 2
    assert result.figures.lower_bound == 2
    first, second = (set(r.permissions) for r in result.roles)
    assert first & second == {"b"}
    assert_reproduces_exactly(result, pairs)


def test_the_exact_search_finds_fewer_roles_than_the_greedy_cover() -> None:
    rows = {"u0": "p2 p4 p5", "u1": "p0 p1 p3 p4", "u2": "p0 p1 p2 p4", "u3": "p0 p1 p3 p4"}
    pairs = [(u, p) for u, ps in rows.items() for p in ps.split()]

    greedy = mine(pairs, time_limit=0)
    exact = mine(pairs)

    assert greedy.figures.roles == 4
    assert greedy.figures.outcome is Outcome.GREEDY
    assert greedy.figures.lower_bound <= 3
    assert (exact.figures.roles, exact.figures.lower_bound) == (3, 3)
    assert exact.figures.outcome is Outcome.OPTIMAL
    assert_reproduces_exactly(greedy, pairs)
    assert_reproduces_exactly(exact, pairs)


def test_labels_can_be_any_hashable_values() -> None:
    pairs = [(1, ("aws", "111111111111", "ReadOnly")), (2, ("aws", "111111111111", "ReadOnly"))]
    pairs += [(2, ("gcp", "acme-prod", "roles/viewer"))]

    result = mine(pairs)

    assert result.figures.roles == 2
    assert_reproduces_exactly(result, pairs)


def test_the_same_matrix_in_any_order_gives_the_same_roles_and_names() -> None:
    pairs = list(read_matrix(DATA / "domino.txt").pairs)
    shuffled = random.Random(7).sample(pairs, len(pairs))

    first, again = mine(pairs), mine(shuffled + pairs[:50])  # repeats count once

    assert first.roles == again.roles
    assert first.assignments == again.assignments
    assert [r.name for r in first.roles] == [f"role-{n}" for n in range(1, 21)]
    sizes = [len(r.permissions) for r in first.roles]
    assert sizes == sorted(sizes, reverse=True)


def test_a_capped_enumeration_still_reproduces_the_matrix_and_bounds_honestly() -> None:
    pairs = list(read_matrix(DATA / "healthcare.txt").pairs)

    result = mine(pairs, max_candidates=3)

    assert not result.figures.candidates_complete
    assert_reproduces_exactly(result, pairs)
    # Only the incompatible assignments prove the bound when candidates are missing.
    assert result.figures.lower_bound == result.figures.incompatible_assignments
    assert result.figures.lower_bound <= 14 <= result.figures.roles


tiny_matrices = st.lists(
    st.tuples(st.sampled_from("ABCDE"), st.sampled_from("vwxyz")), min_size=1, max_size=16
)


@settings(max_examples=40, deadline=None)
@given(tiny_matrices)
def test_on_any_tiny_matrix_the_roles_are_the_exhaustive_minimum(
    pairs: list[tuple[str, str]],
) -> None:
    result = mine(pairs)

    assert result.figures.roles == brute_force_minimum(pairs)
    assert result.figures.lower_bound == result.figures.roles
    assert_reproduces_exactly(result, pairs)
    assert_the_witness_proves_the_bound(result, pairs)


@pytest.mark.parametrize(
    ("name", "users", "permissions", "assignments", "minimum"),
    [
        ("healthcare.txt", 46, 46, 1486, 14),
        ("domino.txt", 79, 231, 730, 20),
        ("university.txt", 493, 56, 3954, 18),
    ],
)
def test_the_benchmark_matrices_are_mined_to_their_published_minimum(
    name: str, users: int, permissions: int, assignments: int, minimum: int
) -> None:
    pairs = read_matrix(DATA / name).pairs

    result = mine(pairs, time_limit=120)

    figures = result.figures
    assert (figures.users, figures.permissions, figures.assignments) == (
        users,
        permissions,
        assignments,
    )
    assert figures.roles == minimum
    assert figures.lower_bound == minimum
    assert figures.outcome is Outcome.OPTIMAL
    assert_reproduces_exactly(result, pairs)
    assert_the_witness_proves_the_bound(result, pairs)
    assert len(result.witness) == minimum  # the bound needs no solver here
