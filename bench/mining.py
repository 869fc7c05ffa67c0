"""Role mining (``jit-bot import matrix``): roles found against the published minimum.

For each benchmark matrix of the role-mining literature (tests/data/rolemining), the
roles the mining core finds, the published minimum, the lower bound it proves and the
time, in this process (no bot, no database: ``db`` is ignored). Then a synthetic estate
with roles planted in it (each user holds the union of one to three random roles): the
roles found must be no more than were planted, and the time shows how the core scales.
Every result is checked to reproduce its matrix exactly before it is reported.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Hashable, Sequence

from bench.harness import REPO, Row, secs
from bot.importer.matrix import read_matrix
from bot.importer.mining import Mining, mine

NAME = "mining"
DATA = REPO / "tests" / "data" / "rolemining"
PUBLISHED = {"healthcare.txt": 14, "domino.txt": 20, "university.txt": 18}
# users, permissions, planted roles, seconds for the exact search. The tiny planted
# estate only proves the benchmark runs; the matrices are small enough for every size.
SIZES = {
    "tiny": (200, 300, 12, 10.0),
    "small": (2_000, 1_000, 40, 60.0),
    "full": (5_000, 2_000, 60, 300.0),
}


def run(size: str, db: str) -> list[Row]:
    users, permissions, planted, time_limit = SIZES[size]
    # The solver's import (about a second) is the command's start-up, not mining time.
    import ortools.sat.python.cp_model  # noqa: F401

    rows: list[Row] = []
    for name, minimum in PUBLISHED.items():
        pairs = read_matrix(DATA / name).pairs
        result, took = _timed(pairs, time_limit)
        f = result.figures
        rows += [
            Row(
                NAME,
                f"{name}: roles / lower bound",
                f"= published minimum {minimum}",
                f"{f.roles} / {f.lower_bound}",
                f.roles == minimum and _reproduces(result, pairs),
            ),
            Row(NAME, f"{name}: time", "", secs(took), None),
        ]
    pairs = _planted(users, permissions, planted, seed=18)
    result, took = _timed(pairs, time_limit)
    f = result.figures
    shape = f"{f.users} users × {f.permissions} permissions, {f.assignments} assignments"
    rows += [
        Row(
            NAME,
            "planted estate: roles / lower bound",
            f"≤ {planted} planted",
            f"{f.roles} / {f.lower_bound} ({shape})",
            f.roles <= planted and _reproduces(result, pairs),
        ),
        Row(NAME, "planted estate: time", "", secs(took), None),
    ]
    return rows


def _timed(
    pairs: Sequence[tuple[Hashable, Hashable]], time_limit: float
) -> tuple[Mining[Hashable, Hashable], float]:
    started = time.monotonic()
    result = mine(pairs, time_limit=time_limit)
    return result, time.monotonic() - started


def _planted(users: int, permissions: int, roles: int, seed: int) -> list[tuple[str, str]]:
    """Users holding the union of one to three of ``roles`` random permission sets."""
    rng = random.Random(seed)
    names = [f"perm{n}" for n in range(permissions)]
    planted = [rng.sample(names, rng.randint(3, 25)) for _ in range(roles)]
    pairs = set()
    for user in range(users):
        for role in rng.sample(planted, rng.randint(1, 3)):
            pairs.update((f"user{user}", p) for p in role)
    return sorted(pairs)


def _reproduces(
    result: Mining[Hashable, Hashable], pairs: Sequence[tuple[Hashable, Hashable]]
) -> bool:
    """Every user's roles grant exactly their permissions, nothing more."""
    held: dict[Hashable, set[Hashable]] = defaultdict(set)
    for user, permission in pairs:
        held[user].add(permission)
    granted = {role.name: set(role.permissions) for role in result.roles}
    return set(result.assignments) == set(held) and all(
        set().union(*(granted[n] for n in names)) == held[user]
        for user, names in result.assignments.items()
    )
