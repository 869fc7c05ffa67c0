"""Which environment each resource belongs to: the folder a project sits in directly (the
default, ``folder``), one of its labels (``label:KEY``) or a mapping file of
``<resource> <environment>`` lines.

A folder or an organization with bindings of its own is its own environment under
``folder`` and ``label:KEY`` (folders have no labels). Environment names become keys of
roles.yaml, so they are made into valid names there (lower case, letters, digits, ``-``
and ``_``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from pathlib import Path

from bot.importer import mapping_file
from bot.importer.gcp.estate import Estate, Node
from bot.importer.mapping_file import EnvironmentsError
from bot.importer.naming import valid_name

UNLABELLED = "unlabelled"
CHOICES = "folder, label:KEY or a file of '<resource> <environment>' lines"
_RESOURCE = re.compile(r"projects/[a-z][a-z0-9-]{4,28}[a-z0-9]|(?:folders|organizations)/\d{1,20}")


def is_file(choice: str) -> bool:
    return choice != "folder" and not choice.startswith("label:")


def environments(choice: str, estate: Estate, needed: Collection[str]) -> dict[str, str]:
    """Resource name → environment, as ``choice`` says, for every resource read; a
    mapping file must name each of ``needed`` (the resources with bindings)."""
    if choice == "folder":
        return {name: _by_folder(node, estate) for name, node in estate.nodes.items()}
    if choice.startswith("label:"):
        key = choice[6:]
        if not key:
            raise EnvironmentsError("--environments label:KEY needs a label key, e.g. label:env")
        return {
            name: valid_name(node.labels.get(key) or UNLABELLED)
            if node.kind == "projects"
            else valid_name(node.display_name)
            for name, node in estate.nodes.items()
        }
    mapping = read_mapping(Path(choice))
    missing = sorted(set(needed) - set(mapping))
    if missing:
        shown = ", ".join(f"{n} ({estate.nodes[n].display_name})" for n in missing[:10])
        raise EnvironmentsError(
            f"{choice}: no environment for {shown}; expected a line "
            "'<resource> <environment>' for each resource with bindings"
        )
    return {name: mapping[name] for name in estate.nodes if name in mapping}


def _by_folder(node: Node, estate: Estate) -> str:
    """A project's folder (or organization), by name, else by id if it could not be
    read; a folder, an organization or a project at the top: its own name."""
    if node.kind == "projects" and node.parent:
        return valid_name(estate.parent_name(node) or node.parent)
    return valid_name(node.display_name)


def read_mapping(path: Path) -> Mapping[str, str]:
    """Resource (``projects/<id>``, ``folders/<number>`` or ``organizations/<number>``)
    → environment, a ``<resource> <environment>`` line each."""
    return mapping_file.read_mapping(
        path,
        lambda text: text if _RESOURCE.fullmatch(text) else None,
        "'<resource> <environment>' on each line, the resource being projects/<project id>, "
        "folders/<number> or organizations/<number>",
        CHOICES,
    )
