"""The candidate roles: every maximal biclique of the reduced user–permission graph.

Any role of an exact cover can be widened to a maximal biclique (more users who hold all
its permissions, more permissions all its users hold) without breaking the cover, so a
minimum cover exists among maximal bicliques alone. Their permission sides are exactly
the non-empty intersections of user rows (the intents of formal concept analysis), which
are built one row at a time: after row ``k`` the set holds every intersection of rows
``0..k``.

Real estates can have very many; past ``limit`` enumeration stops and only the remaining
rows themselves are added. The candidates still cover every assignment (each row is one),
so a cover is still found, but it is no longer proven minimal: ``complete`` says which.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.importer.reduction import bits

Step = Callable[[int, int], None]


@dataclass(frozen=True)
class Candidates:
    """Permission sides (``intents``) and user sides (``extents``) of the candidate roles,
    as bit sets over permission and user classes, largest roles first."""

    intents: tuple[int, ...]
    extents: tuple[int, ...]
    complete: bool  # every maximal biclique is among them


def maximal_bicliques(
    rows: Sequence[int], cols: Sequence[int], limit: int, step: Step | None = None
) -> Candidates:
    """The maximal bicliques of the graph given by ``rows``/``cols``, up to ``limit``."""
    closed: set[int] = set()
    complete = True
    for done, row in enumerate(rows, start=1):
        if complete:
            closed |= {row} | {c & row for c in closed if c & row}
            complete = len(closed) <= limit
        else:
            closed.add(row)
        if step is not None:
            step(done, len(rows))
    extents = {intent: _extent(intent, cols) for intent in closed}
    # Largest area first, then by the bit sets themselves: a stable order.
    ordered = sorted(
        closed, key=lambda c: (-c.bit_count() * extents[c].bit_count(), -c.bit_count(), c)
    )
    return Candidates(tuple(ordered), tuple(extents[c] for c in ordered), complete)


def _extent(intent: int, cols: Sequence[int]) -> int:
    """The user classes holding every permission class of ``intent``."""
    users = -1  # all bits
    for j in bits(intent):
        users &= cols[j]
    return users
