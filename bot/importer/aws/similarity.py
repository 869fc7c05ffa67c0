"""Near-duplicate permission sets: capabilities that are not equal but mostly overlap,
by Jaccard similarity over what they grant, shown in the report with what differs.

Only reported, never merged: two sets that differ by one action may differ on purpose,
and merging them would grant someone more (or less) than today.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations

from bot.importer.aws.capabilities import Capability

DEFAULT_SIMILARITY = 0.8


@dataclass(frozen=True)
class NearDuplicate:
    left: str  # the capabilities' names (capability_names' first)
    right: str
    similarity: float
    only_left: tuple[str, ...]
    only_right: tuple[str, ...]


def features(cap: Capability) -> frozenset[str]:
    """What a capability grants, item by item: each managed or customer-managed policy,
    and each action on each resource of its statements (with its effect and condition)."""
    items = {f"policy {arn}" for arn in cap.managed}
    items |= {f"customer policy {name}" for name in cap.customer_managed}
    for s in cap.statements:
        effect = f"{s.effect}{' not' if s.negated else ''}"
        condition = f" if {s.condition}" if s.condition else ""
        items |= {f"{effect} {a} on {r}{condition}" for a in s.actions for r in s.resources}
    if cap.unparsed:
        items.add(f"inline {cap.unparsed}")
    return frozenset(items)


def near_duplicates(
    names: Mapping[Capability, tuple[str, ...]], threshold: float = DEFAULT_SIMILARITY
) -> tuple[NearDuplicate, ...]:
    """Every pair of distinct capabilities at least ``threshold`` alike, most alike first."""
    found: list[NearDuplicate] = []
    featured = sorted((names[cap][0], features(cap)) for cap in names)
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
