"""From an estate as read to the files written: the part of ``jit-bot import`` every
cloud shares. Mine who holds what today, relax it if asked, draft roles.yaml and
approvers.yaml, and write the drafts, the tables and the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.importer.access import CannotImport, Imported
from bot.importer.drafts import draft
from bot.importer.findings import render
from bot.importer.holdings import held_today
from bot.importer.mining import DEFAULT_TIME_LIMIT, Progress, mine
from bot.importer.outputs import Outcome, write_files
from bot.importer.overgrant import relax
from bot.importer.report_html import render_html
from bot.importer.similarity import DEFAULT_SIMILARITY, capability_labels, near_duplicates


class NothingToPropose(CannotImport):
    """No assignment reaches anyone: there is no access to turn into roles."""


@dataclass(frozen=True)
class Options:
    time_limit: float = DEFAULT_TIME_LIMIT
    similarity: float = DEFAULT_SIMILARITY
    max_overgrant: int = 0  # extra cells per person allowed for fewer roles
    consolidate: bool = False  # roles.yaml grants through the proposed definitions


def propose(imported: Imported, options: Options, progress: Progress | None = None) -> Outcome:
    held = held_today(imported)
    if not held.pairs:
        raise NothingToPropose("no assignment reaches anyone: there is nothing to propose")
    mining = mine(held.pairs, time_limit=options.time_limit, progress=progress)
    mining = relax(mining, held.pairs, options.max_overgrant)
    drafts = draft(mining, held, imported, consolidate=options.consolidate)
    similar = near_duplicates(capability_labels(imported), options.similarity)
    return Outcome(imported, held, drafts, mining, similar, options.similarity, options.consolidate)


def write_outputs(outcome: Outcome, directory: Path) -> None:
    """Every file into ``directory``; OSError when it cannot be written."""
    write_files(outcome, directory)
    (directory / "report.md").write_text(render(outcome), encoding="utf-8")
    (directory / "report.html").write_text(render_html(outcome), encoding="utf-8")
