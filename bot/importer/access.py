"""What every estate reader hands the rest of ``jit-bot import``: who holds what today,
in words no one cloud owns.

A *source* grants access today: an AWS permission set, a GCP role, an Azure role
definition. A *scope* is where it is granted (an account, a project, a subscription or a
resource group) and belongs to one environment. A *holding* is one assignment of a source
on a scope to a user or a group, with the people it reaches. The mining, the drafts and
the report work on these alone, so a cloud only has to read its estate and say how a
source is granted in roles.yaml.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class CannotImport(Exception):
    """The estate or the options cannot be used: the message says why, and what is
    expected instead. Every reader's errors are of this kind."""


class Capability(Protocol):
    """What a source lets you do, normalised so that copies compare equal. Hashable and
    ordered among capabilities of one cloud: it labels columns of the mining matrix."""

    def __hash__(self) -> int: ...

    def __lt__(self, other: Any, /) -> bool: ...

    @property
    def admin_like(self) -> bool:
        """Full access: whoever holds it today is proposed as an approver."""
        ...

    def describe(self) -> str:
        """One line for people: the policies, roles or actions it grants."""
        ...

    def features(self) -> frozenset[str]:
        """What it grants item by item, for comparing near-duplicates."""
        ...


@dataclass(frozen=True)
class Source:
    name: str  # as the cloud names it, and as roles.yaml grants it
    capability: Capability
    label: str  # the name with scope ids abstracted: ProdReadOnly-{account}
    session_duration: str | None = None  # ISO 8601, where the cloud has one
    # scope → (capability, label) where the source grants something else there: an AWS
    # set that names its own account grants on each account that account's resources
    on_scopes: Mapping[str, tuple[Capability, str]] = field(default_factory=dict)

    def capability_on(self, scope: str) -> Capability:
        return self.on_scopes[scope][0] if scope in self.on_scopes else self.capability

    def variants(self) -> set[tuple[Capability, str]]:
        """Every (capability, label) the source has, on whichever scope."""
        return {(self.capability, self.label), *self.on_scopes.values()}


@dataclass(frozen=True)
class Scope:
    id: str  # account id, project id, Azure scope
    name: str
    environment: str  # a valid roles.yaml environment name


@dataclass(frozen=True)
class Holding:
    """One assignment as the cloud holds it today."""

    source: str  # Source.name
    scope: str  # Scope.id
    principal_type: str  # USER or GROUP
    principal: str  # the user's email or the group's name, for people to read
    people: tuple[str, ...]  # whom it reaches: the user, or each member of the group


#: Builds the roles.yaml entry that grants a source on some scopes.
TargetOf = Callable[[str, Sequence[str]], dict[str, Any]]


class Proposal(Protocol):
    """A role's one merged definition (an AWS permission set, a custom role), from the
    role's name and the sources it grants through today: the name to create it under
    (``name`` when given: one the cloud's length limit made unique), and what to create,
    as JSON for the team's own infrastructure code."""

    def __call__(
        self, role: str, sources: Sequence[Source], name: str | None = None
    ) -> tuple[str, dict[str, Any]]: ...


@dataclass(frozen=True)
class Cloud:
    """How one cloud is spoken of, and how its sources are granted in roles.yaml."""

    key: str  # the command's and the provider's name: aws, gcp, azure
    title: str  # the cloud's name for people: AWS, Google Cloud, Azure
    sources_noun: str  # "permission sets"
    scopes_noun: str  # "accounts"
    target: TargetOf
    # mapping.csv and standing.csv's first three columns: scope id, scope name, source
    columns: tuple[str, str, str] = ("scope", "scope_name", "source")
    approver_group: str = "admins"  # the approvers.yaml group proposed from admin holders
    propose: Proposal | None = None  # None: the cloud has nothing to merge sources into
    proposed_dir: str = "proposed"  # where the proposals go: DIR/<proposed_dir>/<role>.json


@dataclass(frozen=True)
class Imported:
    cloud: Cloud
    sources: Mapping[str, Source]  # by name, those nobody holds included
    scopes: Mapping[str, Scope]  # by id
    holdings: tuple[Holding, ...]
    notes: tuple[str, ...] = field(default=())  # what the reader wants the report to say

    def source_of(self, holding: Holding) -> Source | None:
        return self.sources.get(holding.source)
