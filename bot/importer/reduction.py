"""The user–permission matrix with identical users and identical permissions merged, as
bit sets.

Two users with the same permissions need the same roles, and two permissions held by the
same users always travel together in a minimal cover, so merging them changes neither
the optimum nor any lower bound (Ene et al., SACMAT 2008) while shrinking real estates a
lot: per-account copies of one permission set collapse into one column. Rows and columns
are Python ints used as bit sets, which makes intersections and subset tests one
operation each.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

U = TypeVar("U", bound=Hashable)
P = TypeVar("P", bound=Hashable)
T = TypeVar("T", bound=Hashable)
_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class Reduced(Generic[U, P]):
    """Row ``i`` is user class ``i`` (users with identical permissions); bit ``j`` of a
    row is permission class ``j`` (permissions held by identical users). ``cols[j]`` has
    bit ``i`` set when user class ``i`` holds permission class ``j``. Classes, and the
    labels inside each, are in a stable order that does not depend on input order or on
    hash seeds, so the same matrix always mines to the same roles."""

    user_classes: tuple[tuple[U, ...], ...]
    perm_classes: tuple[tuple[P, ...], ...]
    rows: tuple[int, ...]
    cols: tuple[int, ...]

    @property
    def edges(self) -> list[tuple[int, int]]:
        """Every (user class, permission class) pair of the reduced matrix, row by row."""
        return [(i, j) for i, row in enumerate(self.rows) for j in bits(row)]


def reduce_matrix(pairs: Iterable[tuple[U, P]]) -> Reduced[U, P]:
    """Merge identical users and identical permissions of the (user, permission) pairs."""
    holders: dict[P, set[U]] = defaultdict(set)
    for user, permission in pairs:
        holders[permission].add(user)
    users = stable_order({u for us in holders.values() for u in us})
    user_index = {u: i for i, u in enumerate(users)}
    by_holders: dict[frozenset[int], list[P]] = defaultdict(list)
    for permission in stable_order(holders):
        by_holders[frozenset(user_index[u] for u in holders[permission])].append(permission)
    # Dicts keep insertion order, so classes come in the order of their first label.
    perm_classes = tuple(tuple(ps) for ps in by_holders.values())
    held: list[int] = [0] * len(users)
    for j, holder_set in enumerate(by_holders):
        for i in holder_set:
            held[i] |= 1 << j
    by_row: dict[int, list[U]] = defaultdict(list)
    for i, user in enumerate(users):
        by_row[held[i]].append(user)
    rows = tuple(by_row)
    cols = [0] * len(perm_classes)
    for i, row in enumerate(rows):
        for j in bits(row):
            cols[j] |= 1 << i
    return Reduced(tuple(tuple(us) for us in by_row.values()), perm_classes, rows, tuple(cols))


def stable_order(items: Iterable[T]) -> list[T]:
    """``items`` sorted by their own order where they have one (strings with their
    numbers compared as numbers, so "user2" before "user10"), else by type name and repr:
    never by hash or arrival order."""
    listed = list(items)
    try:
        return sorted(listed, key=_natural)
    except TypeError:
        return sorted(listed, key=lambda item: (type(item).__name__, repr(item)))


def _natural(item: Any) -> Any:
    if not isinstance(item, str):
        return item
    parts = _DIGITS.split(item)
    # Every odd part is digits: (number, text) pairs compare without mixing types; the
    # item itself breaks ties such as "01" and "1".
    return tuple((int(p), p) if n % 2 else (-1, p) for n, p in enumerate(parts)), item


def bits(mask: int) -> Sequence[int]:
    """The indices of the set bits of ``mask``, lowest first."""
    found = []
    while mask:
        low = mask & -mask
        found.append(low.bit_length() - 1)
        mask ^= low
    return found
