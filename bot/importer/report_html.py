"""report.html for an estate import: report.md's findings as one page with pictures, for
the people deciding whether to adopt the drafts.

The page stands alone: inline CSS and SVG, no script, nothing fetched (its Content
Security Policy forbids it), so it opens from a mail attachment or a CI artifact as it
does from disk. It stays small at any scale: the "who can do what" matrices group people
and draw only the largest groups (whocan.py), and long tables stop with how many more
rows report.md has. Every name is someone's estate text and is escaped where written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from html import escape

from bot.importer.approving import prod_like
from bot.importer.charts import BLUE, GREEN, GREY, ORANGE, Bar, bars, matrix, short, stacked
from bot.importer.consolidation import consolidation_widens
from bot.importer.findings import dead_sources, holders, merged_sources
from bot.importer.outputs import Outcome, headline, standing_rows
from bot.importer.similarity import capability_labels
from bot.importer.whocan import Grid, before_after

TABLE_ROWS = 200  # past this many rows a table says how many more report.md lists
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; color: #1f2328; margin: 0; background: #fff; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 32px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid #d8dee4; }
h3 { font-size: 15px; margin: 20px 0 6px; }
.headline { font-size: 20px; font-weight: 600; margin: 8px 0; }
.note { color: #57606a; }
svg { display: block; max-width: 100%; height: auto; margin: 8px 0; }
.wide { overflow-x: auto; }
.wide svg { max-width: none; }
.pair { display: flex; flex-wrap: wrap; gap: 0 48px; align-items: flex-start; }
.pair > div { max-width: 100%; }
table { border-collapse: collapse; margin: 8px 0; font-size: 14px; }
th, td { border: 1px solid #d8dee4; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td { overflow-wrap: anywhere; }
"""


def render_html(outcome: Outcome) -> str:
    """The whole page."""
    key = outcome.imported.cloud.key
    sections = (_summary, _matrices, _coverage, _standing, _merged, _roles, _environments)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>jit-bot import {escape(key)}: report</title>\n"
        f"<style>{_STYLE}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(section(outcome) for section in sections)
        + "\n</main>\n</body>\n</html>\n"
    )


def _summary(outcome: Outcome) -> str:
    i, f = outcome.imported, outcome.mining.figures
    distinct = len(capability_labels(i))
    dead = len(dead_sources(outcome))
    optimal = ", a minimum" if f.optimal and not outcome.mining.overgrant else ""
    chart = bars(
        "Before and after",
        [
            Bar(f"{i.cloud.sources_noun} today", len(i.sources), GREY),
            Bar("of them assigned to nobody", dead, GREY),
            Bar("distinct after merging copies", distinct, GREY),
            Bar("proposed roles", f.roles, BLUE),
        ],
    )
    notes = "".join(f"<li>{escape(note)}</li>" for note in i.notes)
    return (
        f"<h1>jit-bot import {escape(i.cloud.key)}</h1>\n"
        f'<p class="headline" id="headline">{escape(headline(outcome))}</p>\n'
        f"<p>{distinct} distinct capabilities after normalising; the mining found "
        f"{f.roles} roles (lower bound {f.lower_bound} for roles that give exactly today's "
        f"access{optimal}). Nothing was changed in {escape(i.cloud.key.upper())}.</p>\n"
        + (f'<ul class="note">{notes}</ul>\n' if notes else "")
        + f'<section id="summary"><h2>Before and after</h2>{chart}</section>'
    )


def _coverage(outcome: Outcome) -> str:
    extra = outcome.mining.overgrant
    beyond = sum(len(cells) for cells in extra.values())
    chart = stacked(
        "Coverage and over-grant",
        [
            Bar("cells held today, given exactly by the roles", len(outcome.held.pairs), BLUE),
            Bar("cells given beyond today (--max-overgrant)", beyond, ORANGE),
        ],
    )
    if not extra:
        said = "<p>Each person's roles give them exactly what they hold today.</p>"
    else:
        labels, scopes = capability_labels(outcome.imported), outcome.imported.scopes
        rows = [
            (person, labels[cap][0], f"{scopes[s].name} ({s})" if s in scopes else s)
            for person in sorted(extra)
            for cap, s in extra[person]
        ]
        said = (
            f"<p><code>--max-overgrant</code> gave {len(extra)} people {beyond} cells beyond "
            "what they hold today, in exchange for fewer roles:</p>"
            + _table(("person", "capability", "where"), rows)
        )
    widened = consolidation_widens(outcome.mining, outcome.imported, outcome.drafts.names)
    if outcome.consolidated and widened:
        said += (
            "<p><code>--consolidate</code> grants each role's one merged definition on every "
            "scope the role reaches in an environment, which is more than its cells for:</p>"
            + _table(("role", "more cells"), [(n, str(k)) for n, k in sorted(widened.items())])
        )
    return f'<section id="coverage"><h2>Coverage and over-grant</h2>{chart}{said}</section>'


def _standing(outcome: Outcome) -> str:
    """Standing assignments the roles cover (standing.csv), in all and per environment."""
    imported = outcome.imported
    total, covered = len(imported.holdings), len(standing_rows(outcome))
    where: Counter[str] = Counter(
        imported.scopes[cell[1]].environment for cell in outcome.held.cells if cell is not None
    )
    chart = stacked(
        "Standing access that becomes just-in-time",
        [
            Bar("assignments that become requests", covered, GREEN),
            Bar(
                "assignments not replaced (not read, or reaching no person)", total - covered, GREY
            ),
        ],
    )
    per_env = bars(
        "Assignments that become requests, per environment",
        [
            Bar(f"{env}{' (approval)' if prod_like(env) else ''}", n, GREEN)
            for env, n in sorted(where.items())
        ],
    )
    return (
        '<section id="standing"><h2>Standing access that becomes just-in-time</h2>'
        f"<p>{covered} of {total} assignments, held standing today by "
        f"{len(outcome.held.people)} people, are covered by the proposed roles: "
        "<code>standing.csv</code> lists them, to remove once the bot is live (this "
        f"command removes nothing).</p>{chart}<h3>Per environment</h3>{per_env}</section>"
    )


def _merged(outcome: Outcome) -> str:
    noun = outcome.imported.cloud.sources_noun
    merged = merged_sources(outcome)
    copies = (
        _table((noun, "treated as one"), [(_some(names), label) for names, label in merged])
        if merged
        else f"<p>None: each of the {escape(noun)} grants something its own.</p>"
    )
    differing = [
        (
            f"{n.left} / {n.right}",
            f"{n.similarity:.2f}",
            short("; ".join(n.only_left), 400) or "—",
            short("; ".join(n.only_right), 400) or "—",
        )
        for n in outcome.similar
    ]
    header = ("which", "similarity", "only in the first", "only in the second")
    similar = _table(header, differing) if differing else "<p>None.</p>"
    dead = dead_sources(outcome)
    listed = _table((noun,), [(name,) for name in dead]) if dead else "<p>None.</p>"
    return (
        f'<section id="duplicates"><h2>Copies and duplicates merged</h2>{copies}'
        f"<h3>Near-duplicates (Jaccard similarity ≥ {outcome.similarity:g})</h3>{similar}"
        f"<h3>Dead {escape(noun)} (no assignment)</h3>{listed}</section>"
    )


def _roles(outcome: Outcome) -> str:
    count = holders(outcome)
    rows = []
    for name, role in outcome.drafts.roles["roles"].items():
        envs = [f"{e}{' (approval)' if prod_like(e) else ''}" for e in role["environments"]]
        rows.append((name, ", ".join(envs), str(count[name]), role["description"]))
    owner = {
        outcome.drafts.names[m]: person
        for person, mined in outcome.mining.assignments.items()
        for m in mined
    }
    alone = [(name, owner[name]) for name in outcome.drafts.roles["roles"] if count[name] == 1]
    exceptions = (
        "<p>Access that fits no shared role stays with its one holder, as a role of its "
        "own. Review whether they still need it.</p>" + _table(("role", "person"), alone)
        if alone
        else "<p>None: every role is shared.</p>"
    )
    return (
        '<section id="roles"><h2>Proposed roles</h2>'
        + _table(("role", "environments", "people", "description"), rows)
        + f"<h3>Exceptions (one-person roles)</h3>{exceptions}</section>"
    )


def _environments(outcome: Outcome) -> str:
    noun = outcome.imported.cloud.scopes_noun
    by_env: dict[str, list[str]] = {}
    for scope in sorted(outcome.imported.scopes.values(), key=lambda s: (s.name, s.id)):
        by_env.setdefault(scope.environment, []).append(f"{scope.name} ({scope.id})")
    rows = [
        (f"{env}{' (approval)' if prod_like(env) else ''}", str(len(names)), _some(names))
        for env, names in sorted(by_env.items())
    ]
    return (
        f'<section id="environments"><h2>Environments</h2><p>Which {escape(noun)} each '
        "environment of roles.yaml covers; production-like environments require approval.</p>"
        + _table(("environment", noun, "which"), rows)
        + "</section>"
    )


def _matrices(outcome: Outcome) -> str:
    before, after = before_after(outcome)
    noun = outcome.imported.cloud.scopes_noun
    return (
        '<section id="matrix"><h2>Who can do what</h2>'
        "<p>Each row is a group of people with exactly the same access today, named by the "
        "first of them (×N: how many). Rows are ordered by the roles they are proposed, so "
        f"each role shows as a block. Before, a cell's shade is how many of the capability's "
        f"{escape(noun)} the group holds.</p>"
        '<div class="pair"><div><h3>Before: people × capabilities held today</h3>'
        + _figure(matrix("Before: people × capabilities", before, BLUE), before, "capabilities")
        + "</div><div><h3>After: people × proposed roles</h3>"
        + _figure(matrix("After: people × proposed roles", after, GREEN), after, "roles")
        + "</div></div></section>"
    )


def _figure(svg: str, grid: Grid, columns: str) -> str:
    hidden = []
    if grid.hidden_rows:
        hidden.append(f"{grid.hidden_rows:,} more groups ({grid.hidden_people:,} people)")
    if grid.hidden_columns:
        hidden.append(f"{grid.hidden_columns:,} more {columns}")
    more = f'<p class="note">Not drawn: {" and ".join(hidden)}.</p>' if hidden else ""
    return f'<div class="wide">{svg}</div>{more}'


def _some(names: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(short(n, 60) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Every cell escaped here; rows past TABLE_ROWS are counted, not shown."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>"
        for row in rows[:TABLE_ROWS]
    )
    more = len(rows) - TABLE_ROWS
    note = f'<p class="note">and {more:,} more rows: see report.md.</p>' if more > 0 else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"
