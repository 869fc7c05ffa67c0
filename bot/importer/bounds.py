"""A lower bound on the number of roles: assignments no two of which fit in one role.

Two assignments (u1, p1) and (u2, p2) can share a role only if u1 also holds p2 and u2
also holds p1; when either is missing they are *incompatible*. A role covers at most one
assignment of a pairwise-incompatible set, so every exact cover has at least as many
roles as the set has members (Ene et al., SACMAT 2008). Finding the largest such set is
itself hard; a few greedy passes find a good one, and the bound holds whatever the
solver later manages, including when it runs out of time.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from bot.importer.reduction import bits

Step = Callable[[int, int], None]
# Greedy passes after the first: a few shuffles of equally hard assignments often find a
# larger set; seeded, so the bound is the same on every run. Each pass costs about
# edges × bound checks, so big matrices get the first pass only.
PASSES = 16
PASSES_UP_TO_EDGES = 20_000


def incompatible_assignments(
    rows: Sequence[int],
    edges: Sequence[tuple[int, int]],
    hardness: Sequence[int],
    step: Step | None = None,
) -> list[tuple[int, int]]:
    """The largest pairwise-incompatible set of ``edges`` the greedy passes find.
    ``hardness[e]`` is how many candidate roles can cover edge ``e``: edges few roles can
    cover are tried first, since they exclude few others."""
    order = sorted(range(len(edges)), key=lambda e: (hardness[e], e))
    best = _greedy(rows, edges, order)
    shuffler = random.Random(0)
    passes = PASSES if len(edges) <= PASSES_UP_TO_EDGES else 0
    for done in range(1, passes + 1):
        keys = {e: (hardness[e], shuffler.random()) for e in order}
        found = _greedy(rows, edges, sorted(order, key=keys.__getitem__))
        if len(found) > len(best):
            best = found
        if step is not None:
            step(done, passes)
    return best


def compatible(rows: Sequence[int], a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether assignments ``a`` and ``b`` (user class, permission class) fit in one role."""
    (u1, p1), (u2, p2) = a, b
    return bool(rows[u1] >> p2 & 1) and bool(rows[u2] >> p1 & 1)


def _greedy(
    rows: Sequence[int], edges: Sequence[tuple[int, int]], order: Sequence[int]
) -> list[tuple[int, int]]:
    """Each edge in ``order`` that is incompatible with every one chosen before it.

    Edge (u, p) fits with chosen (u', p') when u holds p' and u' holds p; so it fits with
    some chosen one exactly when the chosen ones whose permission u holds (``fits_user``,
    a bit set over the chosen) meet those whose user holds p (``fits_perm``): one AND
    per edge instead of a comparison with every chosen edge."""
    holders: dict[int, list[int]] = {}
    for u, p in edges:
        holders.setdefault(p, []).append(u)
    fits_user = [0] * len(rows)
    fits_perm: dict[int, int] = {}
    chosen: list[tuple[int, int]] = []
    for e in order:
        u, p = edges[e]
        if fits_user[u] & fits_perm.get(p, 0):
            continue
        bit = 1 << len(chosen)
        chosen.append((u, p))
        for holder in holders[p]:
            fits_user[holder] |= bit
        for held in bits(rows[u]):
            fits_perm[held] = fits_perm.get(held, 0) | bit
    return chosen
