"""Writing a mining result: ``roles.csv`` (role,permission), ``assignments.csv``
(user,role) and ``report.md`` for the people deciding whether to adopt the roles.

Labels come from someone's estate, so in the Markdown report they are escaped: a
permission named ``<img src=x>`` or ``a|b`` shows as itself and cannot add HTML, links or
table cells to the page. The CSV files carry them verbatim, quoted as CSV needs.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Hashable
from pathlib import Path
from typing import TypeVar

from bot.importer.mining import Figures, Mining
from bot.importer.reduction import stable_order

U = TypeVar("U", bound=Hashable)
P = TypeVar("P", bound=Hashable)

WITNESS_SHOWN = 100
FILES = ("roles.csv", "assignments.csv", "report.md")
# Characters that mean something anywhere in a line, and those that do at its start
# (a heading, a list item, a numbered item). "<" and ">" become entities instead.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_MARKDOWN_LEADING = re.compile(r"^(\d*)([#+\-=.)])")
# What GitHub-flavoured Markdown links by itself: scheme:// and www. (the last character
# of the match becomes an entity, which shows the same and links nothing)
_AUTOLINK = re.compile(r"(?i)\b(?:[a-z][a-z0-9+.-]*:/|www\.)")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def summary_line(figures: Figures) -> str:
    """The one line ``jit-bot import`` prints."""
    f = figures
    return (
        f"{f.users} users × {f.permissions} permissions ({f.assignments} assignments) "
        f"→ {f.roles} roles (lower bound {f.lower_bound})"
    )


def write_outputs(result: Mining[U, P], directory: Path, source: str) -> None:
    """Write the three files into ``directory`` (created if missing); OSError if not."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "roles.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["role", "permission"])
        writer.writerows([r.name, text_cell(str(p))] for r in result.roles for p in r.permissions)
    with (directory / "assignments.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["user", "role"])
        for user in stable_order(result.assignments):
            writer.writerows([text_cell(str(user)), name] for name in result.assignments[user])
    (directory / "report.md").write_text(render_report(result, source), encoding="utf-8")


def render_report(result: Mining[U, P], source: str) -> str:
    """The Markdown report: figures, how close to the optimum, then every role."""
    f = result.figures
    holders: dict[str, int] = {}
    for names in result.assignments.values():
        for name in names:
            holders[name] = holders.get(name, 0) + 1
    lines = [
        f"# Proposed roles for {escape(source)}",
        "",
        f"**{summary_line(f)}**",
        "",
        _verdict(f),
        "",
        "| figure | value |",
        "| --- | ---: |",
        f"| users | {f.users} ({f.distinct_users} distinct permission sets) |",
        f"| permissions | {f.permissions} ({f.distinct_permissions} distinct sets of holders) |",
        f"| assignments (user, permission) | {f.assignments} |",
        f"| roles proposed | {f.roles} |",
        f"| lower bound | {f.lower_bound} |",
        f"| pairwise-incompatible assignments found | {f.incompatible_assignments} |",
        f"| candidate roles (maximal bicliques) | {_candidates(f)} |",
        f"| search | {f.outcome.value} |",
        f"| time | {f.seconds:.2f} s |",
        "",
        "Every user's roles together grant exactly the permissions they hold today, "
        "nothing more (`assignments.csv` says who gets which; `roles.csv` lists each "
        "role's permissions).",
        "",
        *_why_no_fewer(result),
        "",
        "## Roles",
    ]
    for role in result.roles:
        lines += [
            "",
            f"### {role.name}: {len(role.permissions)} permissions, "
            f"{holders.get(role.name, 0)} users",
            "",
        ]
        lines += [f"- {escape(str(p))}" for p in role.permissions]
    return "\n".join(lines) + "\n"


def escape(text: str) -> str:
    """``text`` shown as itself in Markdown: HTML neutralised, Markdown syntax escaped,
    kept on one line, and no bare address a renderer would turn into a link."""
    text = " ".join(text.splitlines())
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    text = _MARKDOWN_LEADING.sub(r"\1\\\2", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _AUTOLINK.sub(lambda m: m.group(0)[:-1] + "&#" + str(ord(m.group(0)[-1])) + ";", text)


def text_cell(value: str) -> str:
    """A CSV cell a spreadsheet shows as text: one starting with = + - @ (a formula to
    it) gets a leading apostrophe."""
    return f"'{value}" if value.startswith(_FORMULA) else value


def _verdict(f: Figures) -> str:
    if f.optimal:
        return (
            f"This is a minimum: no set of roles that reproduces this matrix exactly "
            f"has fewer than {f.lower_bound}."
        )
    return (
        f"No exact set of roles has fewer than {f.lower_bound}, so these {f.roles} are at "
        f"most {f.roles - f.lower_bound} more than the minimum. A longer `--time-limit` "
        "may close the gap."
    )


def _why_no_fewer(result: Mining[U, P]) -> list[str]:
    """The certificate of the combinatorial bound, shown so it can be checked by hand."""
    f = result.figures
    lines = [
        "## Why no fewer",
        "",
        f"No two of these {len(result.witness)} assignments can share a role (for each "
        "pair, one user lacks the other's permission), so every exact set of roles has at "
        f"least {len(result.witness)}.",
    ]
    if f.lower_bound > len(result.witness):
        lines[-1] += (
            f" The exact search proved more: no set of candidate roles, which include "
            f"every maximal biclique, has fewer than {f.lower_bound}."
        )
    shown = result.witness[:WITNESS_SHOWN]
    lines += ["", "| user | permission |", "| --- | --- |"]
    lines += [f"| {escape(str(u))} | {escape(str(p))} |" for u, p in shown]
    if len(result.witness) > len(shown):
        lines += ["", f"… and {len(result.witness) - len(shown)} more."]
    return lines


def _candidates(f: Figures) -> str:
    if f.candidates_complete:
        return f"{f.candidates}, all of them"
    return (
        f"{f.candidates}: enumeration stopped at the limit, so only the incompatible "
        "assignments prove the bound"
    )
