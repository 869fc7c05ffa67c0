"""Fewer roles for a little more access: ``--max-overgrant N``.

The exact mining gives everyone exactly what they hold today. An estate often needs a
few more roles for that than a team would like, because some people hold a role's access
but for one or two cells. Relaxing trades that back: starting from the exact roles, it
repeatedly removes one role (dropping it, its people covered by other roles, or merging
it into another) as long as nobody ends up with more than ``N`` cells beyond what they
hold today, cheapest first (fewest extra cells handed out in all). Everything given
beyond today is listed per person in the result's ``overgrant``, for the report.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, replace
from itertools import combinations
from typing import Generic, TypeVar

from bot.importer.mining import Mining, Role
from bot.importer.reduction import stable_order

U = TypeVar("U", bound=Hashable)
P = TypeVar("P", bound=Hashable)


@dataclass
class _Class(Generic[U, P]):
    """Users with identical rows: they are given the same roles."""

    row: frozenset[P]
    users: list[U]
    roles: set[int]


def relax(mining: Mining[U, P], pairs: Iterable[tuple[U, P]], limit: int) -> Mining[U, P]:
    """``mining`` with roles removed while each user's extra cells stay within ``limit``."""
    if limit <= 0 or len(mining.roles) < 2:
        return mining
    rows: dict[U, set[P]] = {}
    for user, permission in pairs:
        rows.setdefault(user, set()).add(permission)
    index = {role.name: k for k, role in enumerate(mining.roles)}
    roles: dict[int, frozenset[P]] = {
        k: frozenset(role.permissions) for k, role in enumerate(mining.roles)
    }
    classes: dict[frozenset[P], _Class[U, P]] = {}
    for user in stable_order(rows):
        row = frozenset(rows[user])
        given = {index[name] for name in mining.assignments[user]}
        classes.setdefault(row, _Class(row, [], given)).users.append(user)
    while len(roles) > 1:
        move = _cheapest(roles, list(classes.values()), limit)
        if move is None:
            break
        _apply(move, roles, list(classes.values()))
    return _result(mining, roles, list(classes.values()))


@dataclass(frozen=True)
class _Move:
    cost: int
    removed: int
    merged_into: int | None  # None: dropped, its people covered by the roles in ``adds``
    adds: tuple[tuple[int, frozenset[int]], ...]  # class index → roles it gains


def _cheapest(
    roles: dict[int, frozenset[P]], classes: list[_Class[U, P]], limit: int
) -> _Move | None:
    best: _Move | None = None
    for k in sorted(roles):
        move = _drop(k, roles, classes, limit)
        if move is not None and (best is None or move.cost < best.cost):
            best = move
    for a, b in combinations(sorted(roles), 2):
        move = _merge(a, b, roles, classes, limit)
        if move is not None and (best is None or move.cost < best.cost):
            best = move
    return best


def _union(ks: Iterable[int], roles: dict[int, frozenset[P]]) -> frozenset[P]:
    found: set[P] = set()
    for k in ks:
        found |= roles[k]
    return frozenset(found)


def _merge(
    a: int, b: int, roles: dict[int, frozenset[P]], classes: list[_Class[U, P]], limit: int
) -> _Move | None:
    """Role ``a`` becomes a ∪ b and ``b`` goes: its people gain what they lacked."""
    merged = roles[a] | roles[b]
    cost = 0
    for c in classes:
        if a in c.roles or b in c.roles:
            before = _union(c.roles, roles) - c.row
            after = (_union(c.roles, roles) | merged) - c.row
            if len(after) > limit:
                return None
            cost += (len(after) - len(before)) * len(c.users)
    return _Move(cost, b, a, ())


def _drop(
    k: int, roles: dict[int, frozenset[P]], classes: list[_Class[U, P]], limit: int
) -> _Move | None:
    """Role ``k`` goes; each of its people is given other roles for what it carried."""
    cost = 0
    adds: list[tuple[int, frozenset[int]]] = []
    for n, c in enumerate(classes):
        if k not in c.roles:
            continue
        kept = c.roles - {k}
        have = _union(kept, roles)
        extra = have - c.row
        missing = c.row - have
        gained: set[int] = set()
        while missing:
            options = [r for r in sorted(roles) if r != k and r not in kept and roles[r] & missing]
            if not options:
                return None
            pick = min(
                options, key=lambda r: (len(roles[r] - c.row - extra), -len(roles[r] & missing))
            )
            gained.add(pick)
            extra |= roles[pick] - c.row
            missing -= roles[pick]
            if len(extra) > limit:
                return None
        cost += (len(extra) - len(_union(c.roles, roles) - c.row)) * len(c.users)
        adds.append((n, frozenset(gained)))
    return _Move(cost, k, None, tuple(adds))


def _apply(move: _Move, roles: dict[int, frozenset[P]], classes: list[_Class[U, P]]) -> None:
    if move.merged_into is not None:
        roles[move.merged_into] = roles[move.merged_into] | roles[move.removed]
        for c in classes:
            if move.removed in c.roles:
                c.roles = (c.roles - {move.removed}) | {move.merged_into}
    else:
        for n, gained in move.adds:
            classes[n].roles = (classes[n].roles - {move.removed}) | gained
    del roles[move.removed]


def _result(
    mining: Mining[U, P], roles: dict[int, frozenset[P]], classes: list[_Class[U, P]]
) -> Mining[U, P]:
    """Renamed role-1 … role-K (most permissions first), with the over-grant listed."""
    order = sorted(roles, key=lambda k: (-len(roles[k]), k))
    names = {k: f"role-{n}" for n, k in enumerate(order, start=1)}
    relaxed = tuple(Role(names[k], tuple(stable_order(roles[k]))) for k in order)
    assignments: dict[U, tuple[str, ...]] = {}
    overgrant: dict[U, tuple[P, ...]] = {}
    for c in classes:
        mine = tuple(names[k] for k in order if k in c.roles)
        extra = _union(c.roles, roles) - c.row
        for user in c.users:
            assignments[user] = mine
            if extra:
                overgrant[user] = tuple(stable_order(extra))
    figures = replace(mining.figures, roles=len(relaxed))
    return replace(
        mining, roles=relaxed, assignments=assignments, figures=figures, overgrant=overgrant
    )
