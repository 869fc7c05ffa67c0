"""report.md for an estate import: the headline, then each finding a reviewer needs
before adopting the drafts: what merged, what is nearly the same, what nobody uses, the
roles, the exceptions, anything wider than today, and how much standing access becomes
just-in-time.

Every name comes from the estate and is escaped (bot.importer.report.escape).
"""

from __future__ import annotations

from collections import Counter

from bot.importer.access import Capability
from bot.importer.approving import prod_like
from bot.importer.consolidation import consolidation_widens
from bot.importer.outputs import Outcome, headline, standing_rows
from bot.importer.report import escape
from bot.importer.similarity import capability_labels


def render(outcome: Outcome) -> str:
    i, f = outcome.imported, outcome.mining.figures
    optimal = ", a minimum" if f.optimal and not outcome.mining.overgrant else ""
    lines = [
        f"# jit-bot import {i.cloud.key}",
        "",
        f"**{headline(outcome)}**",
        "",
        f"{len(capability_labels(i))} distinct capabilities after "
        f"normalising; the mining found {f.roles} roles (lower bound {f.lower_bound} for "
        f"roles that give exactly today's access{optimal}). Nothing was changed in "
        f"{i.cloud.title}.",
        "",
    ]
    if i.notes:
        lines += ["## Notes from reading", "", *(f"- {escape(note)}" for note in i.notes), ""]
    for section in (_merged, _similar, _dead, _roles, _exceptions, _wider, _standing):
        lines += section(outcome)
    lines += _approvers(outcome)
    return "\n".join(lines) + "\n"


def merged_sources(outcome: Outcome) -> list[tuple[list[str], str]]:
    """Sources that grant the same (copies and duplicates): their names, and the label
    of the one capability they were merged into."""
    by_cap: dict[Capability, list[str]] = {}
    for source in outcome.imported.sources.values():
        for cap in {cap for cap, _ in source.variants()}:
            by_cap.setdefault(cap, []).append(source.name)
    labels = capability_labels(outcome.imported)
    return sorted(
        (sorted(names), labels[cap][0]) for cap, names in by_cap.items() if len(names) > 1
    )


def dead_sources(outcome: Outcome) -> list[str]:
    """Sources nobody is assigned."""
    used = {h.source for h in outcome.imported.holdings}
    return sorted(name for name in outcome.imported.sources if name not in used)


def _merged(outcome: Outcome) -> list[str]:
    merged = merged_sources(outcome)
    lines = ["## Copies and duplicates merged", ""]
    if not merged:
        return [
            *lines,
            f"None: each of the {outcome.imported.cloud.sources_noun} grants something its own.",
            "",
        ]
    lines += [f"| {outcome.imported.cloud.sources_noun} | treated as one |", "| --- | --- |"]
    lines += [f"| {escape(', '.join(names))} | {escape(label)} |" for names, label in merged]
    return [*lines, ""]


def _similar(outcome: Outcome) -> list[str]:
    lines = [f"## Near-duplicates (Jaccard similarity ≥ {outcome.similarity:g})", ""]
    if not outcome.similar:
        return [*lines, "None.", ""]
    lines += ["| which | similarity | only in the first | only in the second |"]
    lines += ["| --- | --- | --- | --- |"]
    for n in outcome.similar:
        lines.append(
            f"| {escape(n.left)} / {escape(n.right)} | {n.similarity:.2f} "
            f"| {escape('; '.join(n.only_left)) or '—'} "
            f"| {escape('; '.join(n.only_right)) or '—'} |"
        )
    return [*lines, ""]


def _dead(outcome: Outcome) -> list[str]:
    dead = dead_sources(outcome)
    lines = [f"## Dead {outcome.imported.cloud.sources_noun} (no assignment)", ""]
    if not dead:
        return [*lines, "None.", ""]
    return [*lines, *(f"- {escape(name)}" for name in dead), ""]


def holders(outcome: Outcome) -> Counter[str]:
    """Proposed role name → how many people get it."""
    names = outcome.drafts.names
    return Counter(names[m] for mined in outcome.mining.assignments.values() for m in mined)


def _roles(outcome: Outcome) -> list[str]:
    roles = outcome.drafts.roles["roles"]
    count = holders(outcome)
    noun = outcome.imported.cloud.sources_noun
    lines = [
        "## Proposed roles",
        "",
        f"| role | environments | people | {noun} |",
        "| --- | --- | --- | --- |",
    ]
    for name, role in roles.items():
        envs = [f"{e}{' (approval)' if prod_like(e) else ''}" for e in role["environments"]]
        sources = sorted({_source(t) for ts in role["environments"].values() for t in ts})
        lines.append(
            f"| {escape(name)} | {escape(', '.join(envs))} | {count[name]} "
            f"| {escape(', '.join(sources))} |"
        )
    return [*lines, ""]


def _source(target: dict[str, object]) -> str:
    return str(target.get("permission_set") or target.get("role") or "")


def _exceptions(outcome: Outcome) -> list[str]:
    """Roles only one person gets: access that fits no shared role."""
    count = holders(outcome)
    alone = sorted(name for name in outcome.drafts.roles["roles"] if count[name] == 1)
    lines = ["## Exceptions (one-person roles)", ""]
    if not alone:
        return [*lines, "None: every role is shared.", ""]
    owner = {
        outcome.drafts.names[m]: person
        for person, mined in outcome.mining.assignments.items()
        for m in mined
    }
    lines += [
        "Access that fits no shared role stays with its one holder, as a role of its own. "
        "Review whether they still need it.",
        "",
        "| role | person |",
        "| --- | --- |",
    ]
    lines += [f"| {escape(name)} | {escape(owner[name])} |" for name in alone]
    return [*lines, ""]


def _wider(outcome: Outcome) -> list[str]:
    lines = ["## Wider than today", ""]
    extra = outcome.mining.overgrant
    widened = consolidation_widens(outcome.mining, outcome.imported, outcome.drafts.names)
    if not extra and not (outcome.consolidated and widened):
        return [*lines, "Nobody: each person's roles give exactly what they hold today.", ""]
    scopes = outcome.imported.scopes
    if extra:
        cells = sum(len(cells) for cells in extra.values())
        lines += [
            f"`--max-overgrant` gave {len(extra)} people {cells} cells beyond what they hold "
            "today, in exchange for fewer roles:",
            "",
            "| person | capability | where |",
            "| --- | --- | --- |",
        ]
        labels = capability_labels(outcome.imported)
        for person in sorted(extra):
            for cap, scope in extra[person]:
                where = f"{scopes[scope].name} ({scope})" if scope in scopes else scope
                lines.append(f"| {escape(person)} | {escape(labels[cap][0])} | {escape(where)} |")
        lines.append("")
    if outcome.consolidated and widened:
        lines += [
            "`--consolidate` grants each role's one merged definition on every scope the "
            "role reaches in an environment, which is more than its cells for:",
            "",
            *(f"- {escape(name)}: {n} more cells" for name, n in sorted(widened.items())),
            "",
        ]
    return lines


def _standing(outcome: Outcome) -> list[str]:
    total = len(outcome.imported.holdings)
    covered = len(standing_rows(outcome))
    people = len(outcome.held.people)
    return [
        "## Standing access that becomes just-in-time",
        "",
        f"{covered} of {total} assignments, held standing today by {people} people, are "
        "covered by the proposed roles: `standing.csv` lists them, to remove once the bot "
        "is live (this command removes nothing). Only people are read in groups: before "
        "removing a group's assignment, check that it serves no service principal or "
        "service account. Anyone may still request any role; the approver group decides "
        "(the last rule of approvers.yaml).",
        "",
    ]


def _approvers(outcome: Outcome) -> list[str]:
    drafts, group = outcome.drafts, outcome.imported.cloud.approver_group
    if drafts.fallback is None:
        return []
    who = f"Only {escape(drafts.admins[0])} holds" if drafts.admins else "Nobody holds"
    return [
        "## Approvers",
        "",
        f"{who} admin-like access today, and nobody may approve their own request, so "
        f"the approver group {escape(group)} also lists the Slack user group "
        f"{escape(drafts.fallback)}: create it or change approvers.yaml.",
        "",
    ]
