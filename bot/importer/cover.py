"""Choosing the fewest candidate roles that together cover every assignment.

This is minimum set cover: the elements are the assignments of the reduced matrix, the
sets the candidate roles. A greedy cover comes first (always available, and the solver's
starting hint); then OR-Tools' CP-SAT searches for a smaller one and proves how small a
cover over these candidates can be, within a time limit. Whatever cover is kept loses
every role that others make redundant, so each role is needed by some user.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from bot.importer.reduction import bits

# One CP-SAT worker: the same input gives the same cover on every run. With the full LP
# relaxation (linearization level 2) it proves covers minimal by their LP bound, which
# is what set cover needs: on an estate of 3,000 people (15,000 candidate roles) 9 s,
# where a portfolio of four interleaved workers took 40 s and one without the LP did
# not finish in 60 s.
WORKERS = 1
LINEARIZATION = 2


class Outcome(Enum):
    """How far the search got."""

    OPTIMAL = "proven minimal over the candidate roles"
    TIME_LIMIT = "time limit reached before the search finished"
    GREEDY = "greedy cover only (no time for the exact search)"


@dataclass(frozen=True)
class Cover:
    chosen: tuple[int, ...]  # candidate indices, in candidate order
    bound: int  # no cover over these candidates has fewer roles
    outcome: Outcome


@dataclass(frozen=True)
class Instance:
    """The set-cover instance: for each candidate the edges it covers (``members``, and
    the same as a bit set in ``masks``), and for each edge the candidates covering it."""

    members: tuple[tuple[int, ...], ...]
    masks: tuple[int, ...]
    covering: tuple[tuple[int, ...], ...]

    @property
    def everything(self) -> int:
        return (1 << len(self.covering)) - 1


def instance(
    intents: Sequence[int], extents: Sequence[int], edges: Sequence[tuple[int, int]]
) -> Instance:
    """The set-cover instance of candidate roles (``intents`` × ``extents``) over ``edges``."""
    index = {edge: e for e, edge in enumerate(edges)}
    covering: list[list[int]] = [[] for _ in edges]
    members: list[tuple[int, ...]] = []
    masks: list[int] = []
    for k, (intent, extent) in enumerate(zip(intents, extents, strict=True)):
        covered = tuple(sorted(index[i, j] for i in bits(extent) for j in bits(intent)))
        for e in covered:
            covering[e].append(k)
        members.append(covered)
        masks.append(_mask(covered, len(edges)))
    return Instance(tuple(members), tuple(masks), tuple(tuple(ks) for ks in covering))


def minimum_cover(problem: Instance, time_limit: float) -> Cover:
    """The smallest cover found within ``time_limit`` seconds, greedy if that is zero."""
    if not problem.covering:
        return Cover((), 0, Outcome.OPTIMAL)  # nothing to cover: no roles, provably
    greedy = prune(problem, _greedy(problem))
    if time_limit <= 0:
        return Cover(greedy, 0, Outcome.GREEDY)
    return _exact(problem, greedy, time_limit)


def prune(problem: Instance, chosen: Sequence[int]) -> tuple[int, ...]:
    """``chosen`` without the roles whose assignments the others already cover (smallest
    roles dropped first), in candidate order."""
    kept = sorted(chosen)
    for k in sorted(chosen, key=lambda k: (len(problem.members[k]), -k)):
        others = 0
        for other in kept:
            if other != k:
                others |= problem.masks[other]
        if problem.masks[k] & ~others == 0:
            kept.remove(k)
    return tuple(kept)


def _greedy(problem: Instance) -> list[int]:
    """Repeatedly the role covering the most uncovered assignments (first on ties).

    Lazily: a role's gain only shrinks as others are chosen, so one whose recorded gain,
    brought up to date, still beats every other recorded gain is the best; the rest are
    not recounted."""
    uncovered = problem.everything
    heap = [(-len(members), k) for k, members in enumerate(problem.members)]
    heapq.heapify(heap)
    chosen: list[int] = []
    while uncovered:
        _, k = heapq.heappop(heap)
        gain = (problem.masks[k] & uncovered).bit_count()
        if heap and (-gain, k) > heap[0]:
            heapq.heappush(heap, (-gain, k))  # stale: back with its true gain
            continue
        chosen.append(k)
        uncovered &= ~problem.masks[k]
    return chosen


def _exact(problem: Instance, greedy: tuple[int, ...], time_limit: float) -> Cover:
    from ortools.sat.python import cp_model  # heavy: only `jit-bot import` pays for it

    model = cp_model.CpModel()
    take = [model.new_bool_var(f"role{k}") for k in range(len(problem.members))]
    for covering in sorted(set(problem.covering)):
        model.add_bool_or([take[k] for k in covering])
    model.minimize(sum(take))
    for k in greedy:
        model.add_hint(take[k], True)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit
    solver.parameters.num_workers = WORKERS
    solver.parameters.linearization_level = LINEARIZATION
    status = solver.solve(model)
    bound = max(0, int(-(-solver.best_objective_bound // 1)))
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return Cover(greedy, bound, Outcome.TIME_LIMIT)
    found = prune(problem, [k for k, var in enumerate(take) if solver.boolean_value(var)])
    if len(found) > len(greedy):
        found = greedy
    outcome = Outcome.OPTIMAL if status == cp_model.OPTIMAL else Outcome.TIME_LIMIT
    return Cover(found, len(found) if outcome is Outcome.OPTIMAL else bound, outcome)


def _mask(indices: Sequence[int], size: int) -> int:
    packed = bytearray(size // 8 + 1)
    for e in indices:
        packed[e >> 3] |= 1 << (e & 7)
    return int.from_bytes(packed, "little")
