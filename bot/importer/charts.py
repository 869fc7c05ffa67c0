"""Inline SVG charts for report.html: bars, one stacked bar, and a matrix.

Plain SVG with presentation attributes and no script, so the page draws in any browser
from the file alone. Every label may come from someone's estate: it is escaped here,
where it is written, and cut to a length a chart can hold (the whole of it goes in a
tooltip).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from bot.importer.whocan import Grid

BLUE = "#2f6fde"
GREY = "#9aa3af"
ORANGE = "#e8871e"
GREEN = "#2f9e5b"
_FONT = 'font-family="system-ui, sans-serif" font-size="12"'
_ROW = 22  # height of one bar's row
_LABEL = 200  # width of the labels left of the bars
_ROW_LABEL = 230  # width of a matrix's row labels
_COLUMN_CHARS = 22  # a matrix's column labels are cut to this many characters
# Room for them, slanted at 55 degrees (about 7 pixels a character), above and to the
# right (where "+N beyond today" goes too). The same for every matrix, so that two
# matrices side by side have their rows level.
_COLUMN_LABELS = 16 + round(_COLUMN_CHARS * 7 * 0.82)
_RIGHT = 10 + round(_COLUMN_CHARS * 7 * 0.58)
_MATRIX_WIDTH = 900  # the columns share this much, within a cell's width limits
_LINE = 16  # height of a matrix's row


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    colour: str = BLUE


def short(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when it was longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _svg(width: int, height: int, title: str, body: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" {_FONT}>'
        f"<title>{escape(title)}</title>{body}</svg>"
    )


def bars(title: str, items: Sequence[Bar], width: int = 640) -> str:
    """One horizontal bar per item, scaled to the largest, its value at its end."""
    most = max((b.value for b in items), default=0) or 1
    room = width - _LABEL - 70
    parts = []
    for n, item in enumerate(items):
        y = n * _ROW
        length = max(1, round(room * item.value / most)) if item.value else 0
        parts.append(
            f'<text x="{_LABEL - 8}" y="{y + 15}" text-anchor="end">'
            f"{escape(short(item.label, 30))}</text>"
            f'<rect x="{_LABEL}" y="{y + 3}" width="{length}" height="{_ROW - 6}" '
            f'fill="{item.colour}"/>'
            f'<text x="{_LABEL + length + 6}" y="{y + 15}">{item.value:,}</text>'
        )
    return _svg(width, len(items) * _ROW + 4, title, "".join(parts))


def stacked(title: str, parts: Sequence[Bar], width: int = 640) -> str:
    """One bar split into ``parts``, with a legend of each part's value and share."""
    total = sum(p.value for p in parts) or 1
    x, drawn, legend = 0.0, [], []
    for n, part in enumerate(parts):
        length = width * part.value / total
        drawn.append(
            f'<rect x="{x:.1f}" y="0" width="{length:.1f}" height="24" fill="{part.colour}">'
            f"<title>{escape(part.label)}: {part.value:,}</title></rect>"
        )
        x += length
        y = 44 + n * 20
        legend.append(
            f'<rect x="0" y="{y - 11}" width="12" height="12" fill="{part.colour}"/>'
            f'<text x="18" y="{y}">{escape(short(part.label, 80))}: {part.value:,} '
            f"({100 * part.value / total:.0f}%)</text>"
        )
    return _svg(width, 34 + 20 * len(parts), title, "".join(drawn + legend))


def matrix(title: str, grid: Grid, colour: str) -> str:
    """Rows of people (named by their first, with how many), one column per label; a
    filled cell is held, its shade how much of it."""
    columns = max(1, len(grid.columns))
    cell = max(6, min(22, _MATRIX_WIDTH // columns))
    top = _COLUMN_LABELS
    width = _ROW_LABEL + columns * cell + _RIGHT
    height = top + len(grid.rows) * _LINE + 6
    parts = [
        f'<rect x="{_ROW_LABEL}" y="{top}" width="{len(grid.columns) * cell}" '
        f'height="{len(grid.rows) * _LINE}" fill="#f1f3f6"/>'
    ]
    for j, column in enumerate(grid.columns):
        x = _ROW_LABEL + j * cell + cell // 2
        y = top - 4
        parts.append(
            f'<text x="{x}" y="{y}" transform="rotate(-55 {x} {y})">'
            f"<title>{escape(column.label)}: {escape(short(column.title, 300))}</title>"
            f"{escape(short(column.label, _COLUMN_CHARS))}</text>"
        )
    for i, row in enumerate(grid.rows):
        y = top + i * _LINE
        who = short(row.person, 30) + (f" ×{row.people:,}" if row.people > 1 else "")
        parts.append(
            f'<text x="{_ROW_LABEL - 6}" y="{y + 12}" text-anchor="end">'
            f"<title>{escape(row.person)}</title>{escape(who)}</text>"
        )
        if row.beyond_today:
            parts.append(
                f'<text x="{_ROW_LABEL + columns * cell + 6}" y="{y + 12}" fill="{ORANGE}">'
                f"+{row.beyond_today} beyond today</text>"
            )
    for (i, j), (shade, tip) in sorted(grid.cells.items()):
        parts.append(
            f'<rect x="{_ROW_LABEL + j * cell}" y="{top + i * _LINE + 1}" '
            f'width="{cell - 1}" height="{_LINE - 2}" fill="{colour}" '
            f'fill-opacity="{0.3 + 0.7 * shade:.2f}"><title>{escape(tip)}</title></rect>'
        )
    return _svg(width, height, title, "".join(parts))
