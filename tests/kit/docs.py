"""The repository's Markdown as tests read it: the pages (README.md and docs/*.md), their
text outside code blocks, their relative links, their headings' anchors, and the example
targets they show. Tests that pin what the docs say read the page through here, so a page
that moves is followed in one place."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^ *```.*?^ *```[^\n]*$", re.M | re.S)
_YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.M | re.S)
# [text](target) and ![alt](target); a target has no spaces (an optional "title" may follow).
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^#{1,6} +(.+?) *#* *$", re.M)


def pages() -> list[Path]:
    """Every Markdown page a reader reaches from the front page: the README and docs/."""
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def prose(page: Path) -> str:
    """The page without its fenced code blocks: a link or a ``#`` inside an example is
    not a link or a heading."""
    return _FENCE.sub("", page.read_text())


def relative_links(page: Path) -> list[str]:
    """Link targets on the page that point into the repository (not a URL, not mail)."""
    found = _LINK.findall(prose(page))
    return [t for t in found if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings: lower case, inline markup and
    punctuation dropped, spaces as hyphens, a repeated one suffixed -1, -2, …"""
    seen: dict[str, int] = {}
    result: set[str] = set()
    for heading in _HEADING.findall(prose(page)):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def example_targets(page: str, provider: str) -> list[dict[str, Any]]:
    """The targets of ``provider`` that ``docs/<page>`` shows as roles.yaml entries: every
    yaml block that is a list of targets starting ``- provider: <provider>``."""
    found: list[dict[str, Any]] = []
    for block in _YAML_BLOCK.findall((DOCS / page).read_text()):
        if block.startswith(f"- provider: {provider}\n"):
            found.extend(yaml.safe_load(block))
    return found
