"""report.html without AWS: estate text shows as text however hostile, people with the
same access are drawn as one row, and the page stays small for a large estate."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

from bot.importer.aws.convert import imported
from bot.importer.aws.environments import environments
from bot.importer.aws.estate import Account, Assignment, Estate, PermissionSet
from bot.importer.cover import Outcome as Search
from bot.importer.drafts import draft
from bot.importer.holdings import Cell, held_today
from bot.importer.mining import Figures, Mining, Role
from bot.importer.outputs import Outcome
from bot.importer.propose import Options, propose, write_outputs
from bot.importer.report_html import CSP, render_html
from bot.importer.whocan import MAX_COLUMNS, MAX_ROWS, before_after

SCRIPT = "<script>window.pwned=1</script>"
IMG = '"><img src=x onerror=alert(1)>'
SVG_END = "</svg><b>bold</b>"
# What the page is made of: anything else (a <script>, an <img>, a <b>) came from the estate.
TAGS = {
    "html", "head", "meta", "title", "style", "body", "main", "h1", "h2", "h3", "p", "ul",
    "li", "section", "div", "code", "table", "thead", "tbody", "tr", "th", "td", "svg",
    "rect", "text",
}  # fmt: skip


class _Page(HTMLParser):
    """The tags a browser would build from the page, and its text as a reader sees it."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.closed: list[str] = []
        self.attributes: list[str] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [name for name, _ in attrs]

    def handle_endtag(self, tag: str) -> None:
        self.closed.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _policy(*actions: str) -> str:
    statement = {"Effect": "Allow", "Action": list(actions), "Resource": "*"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def _hostile_estate() -> Estate:
    sets = {
        "arn:a": PermissionSet("arn:a", SCRIPT, "PT1H", (), (), _policy("s3:GetObject", IMG)),
        "arn:b": PermissionSet("arn:b", IMG, "PT1H", (), (), _policy("s3:GetObject", IMG)),
        "arn:c": PermissionSet("arn:c", "near", None, (), (), _policy("s3:GetObject", SVG_END)),
        "arn:d": PermissionSet("arn:d", SVG_END, None, (), (f"/{SCRIPT}",), None),
    }
    accounts = {
        "111111111111": Account("111111111111", SCRIPT, "Prod"),
        "222222222222": Account("222222222222", SVG_END, "Dev"),
    }
    assignments = (
        Assignment("111111111111", "arn:a", "GROUP", "g"),
        Assignment("222222222222", "arn:b", "USER", "u2"),
        Assignment("222222222222", "arn:c", "USER", "u3"),
        Assignment("111111111111", "arn:c", "USER", "u3"),
    )
    people = {"u1": SCRIPT, "u2": IMG, "u3": f"{SVG_END}@example.com"}
    return Estate(sets, accounts, assignments, people, {"g": IMG}, {"g": ("u1", "u2")})


def test_names_from_the_estate_show_as_text_and_add_nothing_to_the_page(tmp_path: Path) -> None:
    estate = _hostile_estate()
    found = replace(
        imported(estate, environments("ou", estate.accounts)), notes=(f"note {SCRIPT}",)
    )
    outcome = propose(found, Options(similarity=0.3, max_overgrant=2))

    write_outputs(outcome, tmp_path)

    written = (tmp_path / "report.html").read_text()
    assert f'http-equiv="Content-Security-Policy" content="{CSP}"' in written
    page = _Page(written)
    assert set(page.tags) <= TAGS
    assert not any(name.startswith("on") or name in ("src", "href") for name in page.attributes)
    assert page.tags.count("svg") == page.closed.count("svg") == 6
    text = "".join(page.text)
    for name in (SCRIPT, IMG, SVG_END, f"note {SCRIPT}", f"{SVG_END}@example.com"):
        assert name in text
    assert f"{IMG}, {SCRIPT}" in text  # the duplicates, merged
    assert f"{SCRIPT} (111111111111)" in text  # the account, under its environment
    assert "Dead permission sets (no assignment)" in text and SVG_END in text
    assert "gave 1 people 1 cells beyond what they hold today" in text


def test_people_with_the_same_access_are_one_row_ordered_by_their_roles() -> None:
    sets = {
        f"arn:{n}": PermissionSet(f"arn:{n}", f"set-{n}", None, (), (), _policy(f"svc:Do{n}"))
        for n in range(3)
    }
    accounts = {"111111111111": Account("111111111111", "web", "Dev")}
    held_by = {"u1": (0, 1), "u2": (2,), "u3": (0, 1), "u4": (0, 1, 2)}
    assignments = tuple(
        Assignment("111111111111", f"arn:{n}", "USER", user)
        for user, ns in held_by.items()
        for n in ns
    )
    people = {user: f"{user}@example.com" for user in held_by}
    estate = Estate(sets, accounts, assignments, people, {}, {})
    outcome = propose(imported(estate, environments("ou", accounts)), Options())

    before, after = before_after(outcome)

    assert [(r.person, r.people) for r in before.rows] == [
        ("u1@example.com", 2),  # u1 and u3: one row
        ("u4@example.com", 1),
        ("u2@example.com", 1),
    ]
    assert after.rows == before.rows
    assert sorted(before.cells) == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 2)]
    assert sorted(after.cells) == [(0, 0), (1, 0), (1, 1), (2, 1)]  # roles as blocks
    assert (before.hidden_rows, before.hidden_people, before.hidden_columns) == (0, 0, 0)


def _large_outcome() -> Outcome:
    """500 permission sets × 60 accounts, 3,000 people in 100 teams, ~39,000 assignments,
    and the roles that reproduce it (planted, not mined: mining is benchmarked apart)."""
    sets = {
        f"arn:{n}": PermissionSet(f"arn:{n}", f"set-{n}", None, (), (), _policy(f"svc{n}:Do"))
        for n in range(500)
    }
    ids = [f"{100000000000 + n}" for n in range(60)]
    accounts = {
        i: Account(i, f"account-{n}", "Prod" if n % 3 else "Dev") for n, i in enumerate(ids)
    }
    # team k: sets 5k…5k+4 on two accounts; extra m: one set on three accounts
    teams = [[(5 * k + s, ids[(k + a) % 60]) for s in range(5) for a in (0, 1)] for k in range(100)]
    extras = [[(25 * m, ids[(m + a) % 60]) for a in (0, 20, 40)] for m in range(20)]
    people = {f"u{p}": f"person-{p}@example.com" for p in range(3000)}
    assignments = tuple(
        Assignment(account, f"arn:{n}", "USER", f"u{p}")
        for p in range(3000)
        for n, account in {*teams[p // 30], *extras[p % 20]}
    )
    estate = Estate(sets, accounts, assignments, people, {}, {})
    found = imported(estate, environments("ou", accounts))
    held = held_today(found)
    cap = {ps.name: found.sources[ps.name].capability for ps in sets.values()}

    def role(name: str, cells: list[tuple[int, str]]) -> Role[Cell]:
        return Role(name, tuple(sorted((cap[f"set-{n}"], a) for n, a in set(cells))))

    roles = tuple(role(f"role-{k + 1}", cells) for k, cells in enumerate(teams)) + tuple(
        role(f"role-{101 + m}", cells) for m, cells in enumerate(extras)
    )
    given = {people[f"u{p}"]: (f"role-{p // 30 + 1}", f"role-{101 + p % 20}") for p in range(3000)}
    figures = Figures(3000, 30_000, len(held.pairs), 2000, 500, 120, True, 120, 120, 120,
                      Search.OPTIMAL, 1.0)  # fmt: skip
    mining: Mining[str, Cell] = Mining(roles, given, figures, ())
    return Outcome(found, held, draft(mining, held, found), mining)


def test_a_large_estate_gives_a_page_under_two_megabytes_that_says_what_is_not_drawn() -> None:
    outcome = _large_outcome()
    assert len(outcome.imported.holdings) > 35_000

    started = time.monotonic()
    page = render_html(outcome)
    took = time.monotonic() - started

    assert len(page.encode()) < 2_000_000
    assert took < 5
    text = "".join(_Page(page).text)
    assert "500 permission sets × 60 accounts" in text and "→ 120 roles" in text
    # 2,000 groups (each team's 30 people in 20 extras), the largest drawn: 60 pairs
    hidden = f"{2000 - MAX_ROWS:,} more groups ({3000 - 2 * MAX_ROWS:,} people)"
    assert f"Not drawn: {hidden}" in text
    before, after = before_after(outcome)
    for grid, noun, total in ((before, "capabilities", 500), (after, "roles", 120)):
        # only what the drawn rows hold is a column: no column is empty
        assert {j for _, j in grid.cells} == set(range(len(grid.columns)))
        assert len(grid.columns) <= MAX_COLUMNS
        assert f"and {total - len(grid.columns):,} more {noun}" in text
