"""The documentation holds together: every relative link in README.md and docs/*.md reaches
a file of the repository and, when it names one, a heading on that page; every docs page
is reachable from the README and says what it is, with a way back."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.cli import main
from bot.importer.aws.convert import AWS
from bot.importer.outputs import FILES
from tests.kit.docs import DOCS, ROOT, anchors, pages, prose, relative_links


def _broken_links(page: Path) -> list[str]:
    """The links on ``page`` whose file, or whose heading on a Markdown page, is missing."""
    broken = []
    for link in relative_links(page):
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{link}: no heading with that anchor in {target.name}")
    return broken


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file_and_heading(page: Path) -> None:
    assert relative_links(page), "a page with no links is cut off from the others"
    assert _broken_links(page) == []


def test_the_link_check_sees_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## A section\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n[ok](other.md#a-section) [file](gone.md) [heading](other.md#nowhere)\n"
        "[here](#page) [not here](#gone) [web](https://example.com/x.md)\n\n"
        "```md\n[in an example](skipped.md)\n```\n"
    )
    assert _broken_links(page) == [
        "gone.md: no such file",
        "other.md#nowhere: no heading with that anchor in other.md",
        "#gone: no heading with that anchor in page.md",
    ]


def test_every_docs_page_is_linked_from_the_readme_and_links_back() -> None:
    readme_links = {(ROOT / link).resolve() for link in relative_links(ROOT / "README.md")}
    for page in sorted(DOCS.glob("*.md")):
        assert page in readme_links, f"{page.name} is not linked from README.md"
        title, what, nav = [p for p in prose(page).split("\n\n") if p][:3]
        assert title.startswith("# ") and "\n" not in what, f"{page.name}: title, one line"
        assert nav.startswith("[README](../README.md)"), f"{page.name}: no way back"


def test_the_readme_fits_on_about_three_screens() -> None:
    """The two commands, what it is, trying it, connecting Slack, migrating, the set-up a
    database or a cluster needs on its side, and the latest performance table; the rest
    is in docs/."""
    assert len((ROOT / "README.md").read_text().splitlines()) <= 160


def test_the_migration_guide_names_every_option_and_file_of_import_aws(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["import", "aws", "--help"])
    options = set(re.findall(r"(--[a-z][a-z-]+)", capsys.readouterr().out)) - {"--help"}
    written = {*FILES, "report.html", f"{AWS.proposed_dir}/<role>.json"}
    readme = (ROOT / "README.md").read_text().split("## Migrating to jit-bot\n", 1)[1]
    readme = readme.split("\n## ", 1)[0]
    guide = (DOCS / "migrating.md").read_text()

    assert {"--output", "--environments", "--similarity", "--max-overgrant"} <= options
    assert [o for o in sorted(options) if o not in guide] == []
    assert [o for o in sorted(options - {"--time-limit"}) if o not in readme] == []
    assert [f for f in sorted(written) if f"`{f}`" not in guide or f"`{f}`" not in readme] == []
    assert "images/import-report.png" in readme and "images/import-report.png" in guide
