"""Fewer roles for a little more access: ``--max-overgrant N``.

The exact mining gives everyone exactly what they hold today. An estate often needs a
few more roles for that than a team would like, because some people hold a role's access
but for one or two cells. Relaxing trades that back: starting from the exact roles, it
repeatedly removes one role (dropping it, its people covered by other roles, or merging
it into another) as long as nobody ends up with more than ``N`` cells beyond what they
hold today, cheapest first (fewest extra cells handed out in all). Everything given
beyond today is listed per person in the result's ``overgrant``, for the report.

People with identical rows move together, and rows and roles are bit sets (one bit per
permission), so a move is checked with a few integer operations per group of people.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, replace
from itertools import combinations
from typing import TypeVar

from bot.importer.mining import Mining, Role
from bot.importer.reduction import bits, stable_order

U = TypeVar("U", bound=Hashable)
P = TypeVar("P", bound=Hashable)


@dataclass
class _Class:
    """People with identical rows: they are given the same roles."""

    row: int
    people: int
    roles: set[int]
    have: int  # what their roles give together


@dataclass(frozen=True)
class _Move:
    cost: int
    removed: int
    merged_into: int | None  # None: dropped, its people covered by the roles in ``adds``
    adds: tuple[tuple[int, frozenset[int]], ...]  # class index → roles it gains


class _Relaxing:
    def __init__(self, roles: dict[int, int], classes: list[_Class], limit: int) -> None:
        self.roles = roles
        self.classes = classes
        self.limit = limit

    def holders(self, k: int) -> list[int]:
        return [n for n, c in enumerate(self.classes) if k in c.roles]

    def cheapest(self) -> _Move | None:
        holders = {k: self.holders(k) for k in self.roles}
        moves = [self.drop(k, holders[k]) for k in sorted(self.roles)]
        moves += [self.merge(a, b, holders) for a, b in combinations(sorted(self.roles), 2)]
        found = [m for m in moves if m is not None]
        return min(found, key=lambda m: m.cost) if found else None

    def merge(self, a: int, b: int, holders: dict[int, list[int]]) -> _Move | None:
        """Role ``a`` becomes a ∪ b and ``b`` goes: its people gain what they lacked."""
        merged = self.roles[a] | self.roles[b]
        cost = 0
        for n in sorted(set(holders[a]) | set(holders[b])):
            c = self.classes[n]
            extra = ((c.have | merged) & ~c.row).bit_count()
            if extra > self.limit:
                return None
            cost += (extra - (c.have & ~c.row).bit_count()) * c.people
        return _Move(cost, b, a, ())

    def drop(self, k: int, holders: list[int]) -> _Move | None:
        """Role ``k`` goes; each of its people is given other roles for what it carried."""
        cost = 0
        adds: list[tuple[int, frozenset[int]]] = []
        for n in holders:
            c = self.classes[n]
            kept = c.roles - {k}
            have = 0
            for r in kept:
                have |= self.roles[r]
            gained = self._cover(c.row, have, kept | {k})
            if gained is None:
                return None
            for r in gained:
                have |= self.roles[r]
            cost += ((have & ~c.row).bit_count() - (c.have & ~c.row).bit_count()) * c.people
            adds.append((n, frozenset(gained)))
        return _Move(cost, k, None, tuple(adds))

    def _cover(self, row: int, have: int, excluded: set[int]) -> set[int] | None:
        """Roles that give what ``row`` misses from ``have`` within the limit, greedily."""
        gained: set[int] = set()
        while missing := row & ~have:
            options = [
                r
                for r in self.roles
                if r not in excluded and r not in gained and self.roles[r] & missing
            ]
            if not options:
                return None
            pick = min(
                options,
                key=lambda r: (
                    (self.roles[r] & ~row & ~have).bit_count(),
                    -(self.roles[r] & missing).bit_count(),
                    r,
                ),
            )
            gained.add(pick)
            have |= self.roles[pick]
            if (have & ~row).bit_count() > self.limit:
                return None
        return gained

    def apply(self, move: _Move) -> None:
        if move.merged_into is not None:
            self.roles[move.merged_into] |= self.roles[move.removed]
            for c in self.classes:
                if move.removed in c.roles:
                    c.roles = (c.roles - {move.removed}) | {move.merged_into}
        else:
            for n, gained in move.adds:
                self.classes[n].roles = (self.classes[n].roles - {move.removed}) | gained
        del self.roles[move.removed]
        for c in self.classes:
            c.have = 0
            for r in c.roles:
                c.have |= self.roles[r]


def relax(mining: Mining[U, P], pairs: Iterable[tuple[U, P]], limit: int) -> Mining[U, P]:
    """``mining`` with roles removed while each user's extra cells stay within ``limit``."""
    if limit <= 0 or len(mining.roles) < 2:
        return mining
    rows: dict[U, set[P]] = {}
    for user, permission in pairs:
        rows.setdefault(user, set()).add(permission)
    labels = stable_order({p for held in rows.values() for p in held})
    bit = {p: 1 << j for j, p in enumerate(labels)}
    index = {role.name: k for k, role in enumerate(mining.roles)}
    roles = {k: _mask(role.permissions, bit) for k, role in enumerate(mining.roles)}
    by_row: dict[int, list[U]] = {}
    for user in stable_order(rows):
        by_row.setdefault(_mask(rows[user], bit), []).append(user)
    classes = []
    for row, users in by_row.items():
        given = {index[name] for name in mining.assignments[users[0]]}
        classes.append(_Class(row, len(users), given, row))
    relaxing = _Relaxing(roles, classes, limit)
    while len(roles) > 1 and (move := relaxing.cheapest()) is not None:
        relaxing.apply(move)
    return _result(mining, relaxing, list(by_row.values()), labels)


def _mask(permissions: Iterable[P], bit: dict[P, int]) -> int:
    mask = 0
    for p in permissions:
        mask |= bit[p]
    return mask


def _result(
    mining: Mining[U, P], relaxing: _Relaxing, people: list[list[U]], labels: list[P]
) -> Mining[U, P]:
    """Renamed role-1 … role-K (most permissions first), with the over-grant listed."""
    roles = relaxing.roles
    order = sorted(roles, key=lambda k: (-roles[k].bit_count(), k))
    names = {k: f"role-{n}" for n, k in enumerate(order, start=1)}
    relaxed = tuple(Role(names[k], tuple(labels[j] for j in bits(roles[k]))) for k in order)
    assignments: dict[U, tuple[str, ...]] = {}
    overgrant: dict[U, tuple[P, ...]] = {}
    for c, users in zip(relaxing.classes, people, strict=True):
        mine = tuple(names[k] for k in order if k in c.roles)
        extra = tuple(labels[j] for j in bits(c.have & ~c.row))
        for user in users:
            assignments[user] = mine
            if extra:
                overgrant[user] = extra
    figures = replace(mining.figures, roles=len(relaxed))
    return replace(
        mining, roles=relaxed, assignments=assignments, figures=figures, overgrant=overgrant
    )
