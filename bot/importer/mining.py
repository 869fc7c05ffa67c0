"""Role mining: the fewest roles that reproduce a user–permission matrix exactly.

This is the core behind ``jit-bot import``: every estate reader (a matrix file, AWS, GCP,
Azure) turns what it finds into (user, permission) pairs with labels of its own, and
:func:`mine` proposes roles (sets of permissions) and which users get which, so that
each user's roles together grant exactly the permissions they hold today, nothing more.

Minimising the number of such roles is the Role Mining Problem, NP-complete (Vaidya,
Atluri and Guo, SACMAT 2007) and the same as minimum biclique cover (Ene et al., SACMAT
2008). The benchmark matrices of the literature are nevertheless solved exactly, and so
are they here: merge identical users and permissions, take every maximal biclique as a
candidate role, choose a minimum set cover among them, and prove a lower bound. Within a
time limit the result may fall short of the optimum; the figures say by how much at most.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from bot.importer.bounds import incompatible_assignments
from bot.importer.concepts import Candidates, maximal_bicliques
from bot.importer.cover import Cover, Outcome, instance, minimum_cover
from bot.importer.reduction import Reduced, bits, reduce_matrix

U = TypeVar("U", bound=Hashable)
P = TypeVar("P", bound=Hashable)

DEFAULT_TIME_LIMIT = 60.0
# Past this many candidate roles the enumeration stops (see concepts.py).
DEFAULT_MAX_CANDIDATES = 20_000


class Progress(Protocol):
    """Told how each stage advances; the command line draws it, tests ignore it."""

    def __call__(self, stage: str, done: int, total: int) -> None: ...


@dataclass(frozen=True)
class Role(Generic[P]):
    name: str
    permissions: tuple[P, ...]


@dataclass(frozen=True)
class Figures:
    """What a reader needs to judge the result: sizes, how many roles, and how far from
    the optimum that can be (``roles - lower_bound`` at most)."""

    users: int
    permissions: int
    assignments: int
    distinct_users: int  # user classes after merging users with identical permissions
    distinct_permissions: int  # permission classes after merging identical permissions
    candidates: int
    candidates_complete: bool
    roles: int
    lower_bound: int
    incompatible_assignments: int  # the combinatorial part of the bound
    outcome: Outcome
    seconds: float

    @property
    def optimal(self) -> bool:
        return self.roles == self.lower_bound


@dataclass(frozen=True)
class Mining(Generic[U, P]):
    roles: tuple[Role[P], ...]
    assignments: Mapping[U, tuple[str, ...]]  # user → names of their roles
    figures: Figures
    # Assignments no two of which can share a role: a certificate of the lower bound that
    # anyone can check against the matrix (one user and permission of each class).
    witness: tuple[tuple[U, P], ...]
    # user → what their roles give beyond what they hold today: empty unless the roles
    # were relaxed for fewer of them (overgrant.relax, ``--max-overgrant``).
    overgrant: Mapping[U, tuple[P, ...]] = field(default_factory=dict)


def mine(
    pairs: Iterable[tuple[U, P]],
    *,
    time_limit: float = DEFAULT_TIME_LIMIT,
    max_candidates: int = DEFAULT_MAX_CANDIDATES,
    progress: Progress | None = None,
) -> Mining[U, P]:
    """Roles and assignments reproducing ``pairs`` exactly, as few roles as found within
    ``time_limit`` seconds. The same pairs (in any order) always give the same result."""
    started = time.monotonic()
    distinct = set(pairs)
    matrix = reduce_matrix(distinct)
    candidates = maximal_bicliques(
        matrix.rows, matrix.cols, max_candidates, _stage(progress, "candidate roles")
    )
    edges = matrix.edges
    problem = instance(candidates.intents, candidates.extents, edges)
    hardness = [len(ks) for ks in problem.covering]
    witness = incompatible_assignments(
        matrix.rows, edges, hardness, _stage(progress, "lower bound")
    )
    if progress is not None:
        progress("exact search", 0, 1)
    cover = minimum_cover(problem, time_limit)
    if progress is not None:
        progress("exact search", 1, 1)
    roles, assignments = _name_roles(matrix, candidates, cover)
    figures = _figures(matrix, distinct, candidates, cover, len(witness), started)
    labels = tuple((matrix.user_classes[i][0], matrix.perm_classes[j][0]) for i, j in witness)
    return Mining(roles, assignments, figures, labels)


def _stage(progress: Progress | None, name: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    report = progress
    return lambda done, total: report(name, done, total)


def _name_roles(
    matrix: Reduced[U, P], candidates: Candidates, cover: Cover
) -> tuple[tuple[Role[P], ...], dict[U, tuple[str, ...]]]:
    """role-1 … role-K, most permissions first (ties: most users, then the permission
    classes' order), and each user's roles: as few of the chosen ones as cover them."""
    ordered = sorted(
        cover.chosen,
        key=lambda k: (
            -sum(len(matrix.perm_classes[j]) for j in bits(candidates.intents[k])),
            -sum(len(matrix.user_classes[i]) for i in bits(candidates.extents[k])),
            bits(candidates.intents[k]),
        ),
    )
    names = {k: f"role-{n}" for n, k in enumerate(ordered, start=1)}
    roles = tuple(
        Role(
            names[k], tuple(p for j in bits(candidates.intents[k]) for p in matrix.perm_classes[j])
        )
        for k in ordered
    )
    assignments: dict[U, tuple[str, ...]] = {}
    for i, row in enumerate(matrix.rows):
        mine_ = _roles_of(row, [(k, candidates.intents[k]) for k in ordered])
        for user in matrix.user_classes[i]:
            assignments[user] = tuple(names[k] for k in mine_)
    return roles, assignments


def _roles_of(row: int, chosen: list[tuple[int, int]]) -> list[int]:
    """The fewest of ``chosen`` (candidate, intent) whose intents fit in ``row`` and
    together make it up: greedy, then without any the others make redundant."""
    fitting = [(k, intent) for k, intent in chosen if intent & ~row == 0]
    picked: list[tuple[int, int]] = []
    missing = row
    while missing:
        best = max(fitting, key=lambda c: (c[1] & missing).bit_count())
        picked.append(best)
        missing &= ~best[1]
    for entry in sorted(picked, key=lambda c: c[1].bit_count()):
        rest = 0
        for other in picked:
            if other is not entry:
                rest |= other[1]
        if rest == row:
            picked.remove(entry)
    order = [k for k, _ in chosen]
    return sorted((k for k, _ in picked), key=order.index)


def _figures(
    matrix: Reduced[U, P],
    distinct: set[tuple[U, P]],
    candidates: Candidates,
    cover: Cover,
    incompatible: int,
    started: float,
) -> Figures:
    # The solver's bound holds for covers drawn from the candidates only, which is every
    # cover when the candidates are all the maximal bicliques.
    solver_bound = cover.bound if candidates.complete else 0
    return Figures(
        users=sum(len(us) for us in matrix.user_classes),
        permissions=sum(len(ps) for ps in matrix.perm_classes),
        assignments=len(distinct),
        distinct_users=len(matrix.rows),
        distinct_permissions=len(matrix.cols),
        candidates=len(candidates.intents),
        candidates_complete=candidates.complete,
        roles=len(cover.chosen),
        lower_bound=max(incompatible, solver_bound),
        incompatible_assignments=incompatible,
        outcome=cover.outcome,
        seconds=time.monotonic() - started,
    )
