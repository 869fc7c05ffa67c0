"""Near-duplicate sources: capabilities that are not equal but mostly overlap, by
Jaccard similarity over what they grant item by item (Capability.features), shown in the
report with what differs.

Only reported, never merged: two sets that differ by one action may differ on purpose,
and merging them would grant someone more (or less) than today.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations

from bot.importer.access import Capability, Imported

DEFAULT_SIMILARITY = 0.8


@dataclass(frozen=True)
class NearDuplicate:
    left: str  # the capabilities' names (capability_labels' first)
    right: str
    similarity: float
    only_left: tuple[str, ...]
    only_right: tuple[str, ...]


def capability_labels(imported: Imported) -> dict[Capability, tuple[str, ...]]:
    """Each capability → the labels of the sources carrying it, shortest first (the
    first names the capability)."""
    labels: dict[Capability, set[str]] = {}
    for source in imported.sources.values():
        for cap, label in source.variants():
            labels.setdefault(cap, set()).add(label)
    return {cap: tuple(sorted(found, key=lambda n: (len(n), n))) for cap, found in labels.items()}


def near_duplicates(
    names: Mapping[Capability, tuple[str, ...]], threshold: float = DEFAULT_SIMILARITY
) -> tuple[NearDuplicate, ...]:
    """Every pair of distinct capabilities at least ``threshold`` alike, most alike first."""
    found: list[NearDuplicate] = []
    featured = sorted((names[cap][0], cap.features()) for cap in names)
    for (left, a), (right, b) in combinations(featured, 2):
        union = a | b
        if not union or a == b:
            continue
        similarity = len(a & b) / len(union)
        if similarity >= threshold:
            found.append(
                NearDuplicate(left, right, similarity, tuple(sorted(a - b)), tuple(sorted(b - a)))
            )
    return tuple(sorted(found, key=lambda n: (-n.similarity, n.left, n.right)))
