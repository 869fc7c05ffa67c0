"""What ``jit-bot import gcp`` read from a GCP resource tree: plain values, no SDK.

The reader (reading.py) fills these; everything after it (capabilities, environments,
the conversion) works on them alone, so it is tested without Google.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

BASIC_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})


@dataclass(frozen=True)
class Node:
    """A project, folder or organization."""

    name: str  # projects/<project id>, folders/<number>, organizations/<number>
    display_name: str
    parent: str | None  # the folder or organization it sits in directly; None at the top
    labels: Mapping[str, str] = field(default_factory=dict)  # projects only

    @property
    def kind(self) -> str:
        """projects, folders or organizations."""
        return self.name.split("/")[0]


@dataclass(frozen=True)
class Binding:
    """One member of one binding of a resource's IAM policy."""

    resource: str  # Node.name
    role: str  # roles/…, projects/<id>/roles/…, organizations/<n>/roles/…
    member: str  # as IAM writes it: user:…, group:…, serviceAccount:…, allUsers …
    condition: str = ""  # the condition's title (or expression); "" when unconditional


@dataclass(frozen=True)
class Role:
    name: str
    title: str
    permissions: tuple[str, ...]  # includedPermissions, sorted
    deleted: bool = False  # or disabled: it grants nothing

    @property
    def custom(self) -> bool:
        return not self.name.startswith("roles/")


@dataclass(frozen=True)
class Estate:
    node: str  # the resource the import started from
    organization: str | None  # organizations/<n> above (or at) the node, if it was readable
    nodes: Mapping[str, Node]  # the node and every folder and project under it, by name
    ancestors: Mapping[str, Node]  # the folders and organization above it, as far as readable
    bindings: tuple[Binding, ...]
    roles: Mapping[str, Role]  # custom roles defined in the tree and every role bound, by name
    groups: Mapping[str, tuple[str, ...]]  # group email → its users' emails, nested included
    directory_refusal: str = ""  # why group members could not be read, if they could not
    missing_roles: tuple[str, ...] = ()  # roles bound but unknown to IAM

    def parent_name(self, node: Node) -> str | None:
        """The display name of the folder or organization a node sits in directly."""
        if node.parent is None:
            return None
        parent = self.nodes.get(node.parent) or self.ancestors.get(node.parent)
        return parent.display_name if parent else None
