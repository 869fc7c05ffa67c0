"""Writing ``jit-bot import aws``'s drafts and report into the output directory:
roles.yaml, approvers.yaml, mapping.csv (every assignment → the role and environment now
covering it) and report.md.

Names in the estate are someone else's text: the Markdown report escapes them
(bot.importer.report.escape), YAML and CSV quote them as their formats need.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.importer.aws.capabilities import Capability
from bot.importer.aws.drafts import FALLBACK_APPROVER, Drafts, prod_like
from bot.importer.aws.estate import Estate
from bot.importer.aws.holdings import Cell, Holdings
from bot.importer.aws.similarity import NearDuplicate
from bot.importer.mining import Mining
from bot.importer.report import escape

FILES = ("roles.yaml", "approvers.yaml", "mapping.csv", "report.md")
MAPPING_HEADER = (
    "account_id",
    "account_name",
    "permission_set",
    "principal_type",
    "principal",
    "person",
    "role",
    "environment",
)


@dataclass(frozen=True)
class Outcome:
    """Everything the outputs are made from."""

    estate: Estate
    held: Holdings
    drafts: Drafts
    mining: Mining[str, Cell]
    cap_names: Mapping[Capability, tuple[str, ...]]
    caps: Mapping[str, Capability]  # permission set ARN → capability
    similar: tuple[NearDuplicate, ...] = ()
    similarity: float = 0.8  # the threshold ``similar`` was found with


def headline(outcome: Outcome) -> str:
    """``N permission sets × M accounts (A assignments, U people) → K roles``."""
    e = outcome.estate
    return (
        f"{len(e.permission_sets)} permission sets × {len(e.accounts)} accounts "
        f"({len(e.assignments)} assignments, {len(outcome.held.people)} people) "
        f"→ {len(outcome.mining.roles)} roles"
    )


def write_outputs(outcome: Outcome, directory: Path) -> None:
    """All four files into ``directory`` (created if missing); OSError if not."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, document in (
        ("roles.yaml", outcome.drafts.roles),
        ("approvers.yaml", outcome.drafts.approvers),
    ):
        text = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
        (directory / name).write_text(_HEADER + text, encoding="utf-8")
    with (directory / "mapping.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(MAPPING_HEADER)
        writer.writerows(mapping_rows(outcome))
    (directory / "report.md").write_text(render_report(outcome), encoding="utf-8")


class _Dumper(yaml.SafeDumper):
    """Quotes every string of digits: an account id such as 075590744510 is a string to
    PyYAML unquoted, but a number to YAML 1.2 readers and to people."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "'" if value.isdigit() else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)

_HEADER = "# Draft written by `jit-bot import aws`: review it, then run `jit-bot check`.\n"


def mapping_rows(outcome: Outcome) -> list[tuple[str, ...]]:
    """One row per assignment and person it reaches (a group's members each have one);
    an assignment that reaches nobody (an empty group) has one row with no role."""
    estate, held, names = outcome.estate, outcome.held, outcome.drafts.names
    roles_of = {
        person: [r for r in outcome.mining.roles if r.name in mined]
        for person, mined in outcome.mining.assignments.items()
    }
    rows: list[tuple[str, ...]] = []
    for a in estate.assignments:
        account = estate.accounts.get(a.account_id)
        ps = estate.permission_sets.get(a.permission_set_arn)
        principal = (
            estate.groups.get(a.principal_id, a.principal_id)
            if a.principal_type == "GROUP"
            else estate.people.get(a.principal_id, a.principal_id)
        )
        base = (
            a.account_id,
            account.name if account else "",
            ps.name if ps else a.permission_set_arn,
            a.principal_type,
            principal,
        )
        cell = held.cells.get(a)
        people = estate.holders(a)
        if cell is None or not people:
            rows.append((*base, "", "", ""))
            continue
        for person in people:
            role = next(r for r in roles_of[person] if cell in r.permissions)
            rows.append((*base, person, names[role.name], cell[1]))
    return rows


def render_report(outcome: Outcome) -> str:
    mining = outcome.mining
    f = mining.figures
    lines = [
        "# jit-bot import aws",
        "",
        f"**{headline(outcome)}**",
        "",
        f"{len(outcome.cap_names)} distinct capabilities after normalising account ids; "
        f"the mining found {f.roles} roles (lower bound {f.lower_bound}"
        f"{', a minimum' if f.optimal else ''}). Nothing was changed in AWS.",
        "",
    ]
    lines += _merged(outcome) + _similar(outcome) + _dead(outcome)
    lines += _roles(outcome) + _widened(outcome)
    if not outcome.drafts.admins:
        lines += [
            "",
            "## Approvers",
            "",
            f"Nobody holds an admin-like permission set today, so the approver group is "
            f"{FALLBACK_APPROVER}: create that Slack user group or change approvers.yaml.",
        ]
    return "\n".join(lines) + "\n"


def _merged(outcome: Outcome) -> list[str]:
    by_cap: dict[Capability, list[str]] = {}
    for arn, cap in outcome.caps.items():
        by_cap.setdefault(cap, []).append(outcome.estate.permission_sets[arn].name)
    merged = sorted(
        (sorted(names), outcome.cap_names[cap][0])
        for cap, names in by_cap.items()
        if len(names) > 1
    )
    lines = ["## Account copies and duplicates merged", ""]
    if not merged:
        return [*lines, "None: every permission set grants something of its own.", ""]
    lines += ["| permission sets | treated as one |", "| --- | --- |"]
    lines += [f"| {escape(', '.join(names))} | {escape(label)} |" for names, label in merged]
    return [*lines, ""]


def _similar(outcome: Outcome) -> list[str]:
    lines = [f"## Near-duplicates (Jaccard similarity ≥ {outcome.similarity:g})", ""]
    if not outcome.similar:
        return [*lines, "None.", ""]
    lines += ["| sets | similarity | only in the first | only in the second |"]
    lines += ["| --- | --- | --- | --- |"]
    for n in outcome.similar:
        lines.append(
            f"| {escape(n.left)} / {escape(n.right)} | {n.similarity:.2f} "
            f"| {escape('; '.join(n.only_left)) or '—'} "
            f"| {escape('; '.join(n.only_right)) or '—'} |"
        )
    return [*lines, ""]


def _dead(outcome: Outcome) -> list[str]:
    used = {a.permission_set_arn for a in outcome.estate.assignments}
    dead = sorted(ps.name for arn, ps in outcome.estate.permission_sets.items() if arn not in used)
    lines = ["## Dead permission sets (no assignment)", ""]
    if not dead:
        return [*lines, "None.", ""]
    return [*lines, *(f"- {escape(name)}" for name in dead), ""]


def _roles(outcome: Outcome) -> list[str]:
    roles = outcome.drafts.roles["roles"]
    holders: dict[str, int] = {}
    for mined in outcome.mining.assignments.values():
        for name in mined:
            holders[outcome.drafts.names[name]] = holders.get(outcome.drafts.names[name], 0) + 1
    lines = [
        "## Proposed roles",
        "",
        "| role | environments | people | permission sets |",
        "| --- | --- | --- | --- |",
    ]
    for name, role in roles.items():
        envs = [f"{e}{' (approval)' if prod_like(e) else ''}" for e in role["environments"]]
        sets = sorted({t["permission_set"] for ts in role["environments"].values() for t in ts})
        lines.append(
            f"| {escape(name)} | {escape(', '.join(envs))} | {holders.get(name, 0)} "
            f"| {escape(', '.join(sets))} |"
        )
    return lines


def widened(outcome: Outcome) -> dict[str, set[tuple[str, str]]]:
    """Person → (permission set, account id) their proposed roles make requestable but
    they do not hold today: the mining works per environment, so a set someone holds on
    one account of an environment comes with the others it is assigned on there."""
    held: dict[str, set[tuple[str, str]]] = {}
    estate = outcome.estate
    for a in estate.assignments:
        ps = estate.permission_sets.get(a.permission_set_arn)
        for person in estate.holders(a) if ps else ():
            held.setdefault(person, set()).add((ps.name if ps else "", a.account_id))
    roles = outcome.drafts.roles["roles"]
    extra: dict[str, set[tuple[str, str]]] = {}
    for person, mined in outcome.mining.assignments.items():
        given = {
            (t["permission_set"], account)
            for name in mined
            for targets in roles[outcome.drafts.names[name]]["environments"].values()
            for t in targets
            for account in t["accounts"]
        }
        if given - held.get(person, set()):
            extra[person] = given - held.get(person, set())
    return extra


def _widened(outcome: Outcome) -> list[str]:
    extra = widened(outcome)
    lines = ["", "## Wider than today (per environment)", ""]
    if not extra:
        return [*lines, "Nobody: each person's roles give exactly what they hold today."]
    lines += [
        "Each role grants its permission sets on every account of the environment where "
        "they are assigned today; these people could request more than they hold:",
        "",
        "| person | permission set | account |",
        "| --- | --- | --- |",
    ]
    accounts = outcome.estate.accounts
    for person in sorted(extra):
        for ps, account in sorted(extra[person]):
            where = f"{accounts[account].name} ({account})" if account in accounts else account
            lines.append(f"| {escape(person)} | {escape(ps)} | {escape(where)} |")
    return lines
