"""Writing ``jit-bot import``'s drafts into the output directory.

- roles.yaml and approvers.yaml: the drafts (``jit-bot check`` reads them as they are);
- mapping.csv: every assignment of today → the role and environment now covering it;
- standing.csv: the standing assignments the roles make unnecessary, for the team to
  remove once the bot is live (the command removes nothing);
- permission-sets/<role>.json (or the cloud's own directory): one merged definition
  per role, where the cloud has them;
- report.md and report.html (report.py, report_html.py).

Names in the estate are someone else's text: YAML and CSV quote them as their formats
need, and a CSV cell that a spreadsheet would run as a formula is written as text.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.importer.access import Imported
from bot.importer.drafts import Drafts
from bot.importer.holdings import Cell, Held
from bot.importer.mining import Mining
from bot.importer.report import text_cell
from bot.importer.similarity import DEFAULT_SIMILARITY, NearDuplicate

FILES = ("roles.yaml", "approvers.yaml", "mapping.csv", "standing.csv", "report.md")


@dataclass(frozen=True)
class Outcome:
    """Everything the outputs are made from."""

    imported: Imported
    held: Held
    drafts: Drafts
    mining: Mining[str, Cell]
    similar: tuple[NearDuplicate, ...] = ()
    similarity: float = DEFAULT_SIMILARITY  # the threshold ``similar`` was found with
    consolidated: bool = False  # roles.yaml grants through the proposed definitions


def headline(outcome: Outcome) -> str:
    """``N permission sets × M accounts (A assignments, U people) → K roles``."""
    i = outcome.imported
    return (
        f"{len(i.sources)} {i.cloud.sources_noun} × {len(i.scopes)} {i.cloud.scopes_noun} "
        f"({len(i.holdings)} assignments, {len(outcome.held.people)} people) "
        f"→ {len(outcome.mining.roles)} roles"
    )


def write_files(outcome: Outcome, directory: Path) -> None:
    """The drafts and tables into ``directory`` (created if missing); OSError if not."""
    directory.mkdir(parents=True, exist_ok=True)
    command = f"jit-bot import {outcome.imported.cloud.key}"
    header = f"# Draft written by `{command}`: review it, then run `jit-bot check`.\n"
    for name, document in (
        ("roles.yaml", outcome.drafts.roles),
        ("approvers.yaml", outcome.drafts.approvers),
    ):
        text = yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
        (directory / name).write_text(header + text, encoding="utf-8")
    columns = outcome.imported.cloud.columns
    _csv(directory / "mapping.csv", (*columns, *_MAPPING), mapping_rows(outcome))
    _csv(directory / "standing.csv", (*columns, *_STANDING), standing_rows(outcome))
    proposals = outcome.drafts.proposals
    if proposals:
        (directory / outcome.imported.cloud.proposed_dir).mkdir(exist_ok=True)
        for role, (_, document) in proposals.items():
            path = directory / outcome.imported.cloud.proposed_dir / f"{role}.json"
            path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", "utf-8")


_MAPPING = ("principal_type", "principal", "person", "role", "environment")
_STANDING = ("principal_type", "principal", "covered_by")


def _csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows([text_cell(value) for value in row] for row in rows)


class _Dumper(yaml.SafeDumper):
    """Quotes every string of digits: an account id such as 075590744510 is a string to
    PyYAML unquoted, but a number to YAML 1.2 readers and to people."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "'" if value.isdigit() else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _string)


def mapping_rows(outcome: Outcome) -> list[tuple[str, ...]]:
    """One row per assignment and person it reaches (a group's members each have one);
    an assignment that reaches nobody (an empty group) has one row with no role."""
    imported, names = outcome.imported, outcome.drafts.names
    cells_of = {r.name: frozenset(r.permissions) for r in outcome.mining.roles}
    rows: list[tuple[str, ...]] = []
    for holding, cell in zip(imported.holdings, outcome.held.cells, strict=True):
        where = _where(imported, holding.scope, holding.source)
        base = (*where, holding.principal_type, holding.principal)
        if cell is None or not holding.people:
            rows.append((*base, "", "", ""))
            continue
        env = imported.scopes[cell[1]].environment
        for person in holding.people:
            mined = outcome.mining.assignments[person]
            role = next(m for m in mined if cell in cells_of[m])
            rows.append((*base, person, names[role], env))
    return rows


def standing_rows(outcome: Outcome) -> list[tuple[str, ...]]:
    """Each assignment of today whose every person gets it from a proposed role: once
    the bot is live it is standing access nobody needs. An assignment that reaches no
    person is not listed: it may serve what jit-bot does not replace (a group of service
    principals or service accounts, whose members are not read)."""
    return list(_covered(outcome))


def _covered(outcome: Outcome) -> Iterable[tuple[str, ...]]:
    imported, names = outcome.imported, outcome.drafts.names
    cells_of = {r.name: frozenset(r.permissions) for r in outcome.mining.roles}
    for holding, cell in zip(imported.holdings, outcome.held.cells, strict=True):
        if cell is None or not holding.people:
            continue
        covering = sorted(
            {
                names[m]
                for person in holding.people
                for m in outcome.mining.assignments.get(person, ())
                if cell in cells_of[m]
            }
        )
        where = _where(imported, holding.scope, holding.source)
        yield (*where, holding.principal_type, holding.principal, " ".join(covering))


def _where(imported: Imported, scope: str, source: str) -> tuple[str, str, str]:
    found = imported.scopes.get(scope)
    return (scope, found.name if found else "", source)
