"""What a ``gcp`` entry of roles.yaml may say (the role and where), how resources are
named to people, and how Slack emails map to Google accounts (``JIT_GCP_DOMAIN_MAP``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from providers.base import TargetSpec

BASIC_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})

_PREDEFINED_ROLE = re.compile(r"^roles/[A-Za-z0-9_.]{1,128}$")
_CUSTOM_ROLE = re.compile(r"^(projects|organizations)/([a-z0-9-]{1,64})/roles/[A-Za-z0-9_.]{3,64}$")
_PROJECT = re.compile(r"^([a-z][a-z0-9-]{4,28}[a-z0-9]|\d{1,20})$")
_NUMERIC = re.compile(r"^\d{1,20}$")
_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")

# Where each kind of resource lives in the API, how people name it, and the predefined
# role that lets the bot change its policy (for error messages and docs/gcp.md).
_KINDS = {
    "projects": ("project", "roles/resourcemanager.projectIamAdmin"),
    "folders": ("folder", "roles/resourcemanager.folderIamAdmin"),
    "organizations": ("organization", "roles/resourcemanager.organizationAdmin"),
}


def _matching(*patterns: re.Pattern[str], expected: str) -> Callable[[str], str]:
    """A validator that lets through what one of ``patterns`` matches and says of anything
    else that it is not ``expected``."""

    def check(value: str) -> str:
        if not any(pattern.match(value) for pattern in patterns):
            raise ValueError(f"'{value}' is not {expected}")
        return value

    return check


_iam_role = _matching(
    _PREDEFINED_ROLE,
    _CUSTOM_ROLE,
    expected="an IAM role; expected roles/<name>, "
    "projects/<project>/roles/<id> or organizations/<org id>/roles/<id>",
)


def _role(value: str) -> str:
    if value in BASIC_ROLES:
        raise ValueError(
            f"basic role {value} cannot carry IAM conditions, so its access could not "
            "expire by itself; use a predefined role (roles/logging.viewer …) or a custom role"
        )
    return _iam_role(value)


def _strip(kind: str) -> Callable[[Any], Any]:
    """Accept ``folders/123`` as well as ``123``: the form the console copies."""

    def strip(value: Any) -> Any:
        return value.removeprefix(f"{kind}/") if isinstance(value, str) else value

    return strip


_project = _matching(
    _PROJECT,
    expected="a GCP project id; expected 6–30 lower-case letters, digits "
    "and hyphens starting with a letter (acme-prod), or a project number",
)


def _numeric(what: str) -> Callable[[str], str]:
    return _matching(_NUMERIC, expected=f"a {what} id; expected its number (123456789012)")


ProjectId = Annotated[str, BeforeValidator(_strip("projects")), AfterValidator(_project)]
FolderId = Annotated[str, BeforeValidator(_strip("folders")), AfterValidator(_numeric("folder"))]
OrganizationId = Annotated[
    str, BeforeValidator(_strip("organizations")), AfterValidator(_numeric("organization"))
]


class GcpTarget(TargetSpec):
    """``provider: gcp`` in roles.yaml: ``role`` on every listed resource."""

    provider: Literal["gcp"] = "gcp"
    role: Annotated[str, AfterValidator(_role)]
    projects: list[ProjectId] = Field(default_factory=list)
    folders: list[FolderId] = Field(default_factory=list)
    organization: OrganizationId | None = None

    @model_validator(mode="after")
    def _somewhere(self) -> GcpTarget:
        if not (self.projects or self.folders or self.organization):
            raise ValueError("expected 'projects', 'folders' and/or 'organization' to grant on")
        custom = _CUSTOM_ROLE.match(self.role)
        if custom and custom.group(1) == "projects":
            owner = custom.group(2)
            if self.folders or self.organization or set(self.projects) != {owner}:
                raise ValueError(
                    f"the custom role {self.role} exists only in project {owner} and can be "
                    f"granted there only; expected projects: [{owner}]"
                )
        return self

    def resources(self) -> list[str]:
        """The resource names the API uses: projects/…, folders/…, organizations/…."""
        names = [f"projects/{p}" for p in self.projects]
        names += [f"folders/{f}" for f in self.folders]
        if self.organization:
            names.append(f"organizations/{self.organization}")
        return list(dict.fromkeys(names))


@dataclass(frozen=True)
class DomainMap:
    """How Slack emails become Google accounts: ``example.org=example.com`` turns
    alice@example.org into alice@example.com. Domains not mapped stay as they are."""

    pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> DomainMap:
        """``JIT_GCP_DOMAIN_MAP``: comma-separated ``slack-domain=google-domain`` pairs."""
        pairs: list[tuple[str, str]] = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            source, sep, target = (s.strip().lower() for s in item.partition("="))
            if not sep or not _DOMAIN.match(source) or not _DOMAIN.match(target):
                raise ValueError(
                    f"JIT_GCP_DOMAIN_MAP: '{item}' is not a domain pair; expected "
                    "slack-domain=google-domain, for example example.org=example.com"
                )
            if source in dict(pairs):
                raise ValueError(f"JIT_GCP_DOMAIN_MAP: {source} is mapped twice")
            pairs.append((source, target))
        return cls(tuple(pairs))

    def to_google(self, email: str) -> str:
        local, _, domain = email.lower().rpartition("@")
        return f"{local}@{dict(self.pairs).get(domain, domain)}"

    def to_slack(self, email: str) -> list[str]:
        """Every Slack email that may stand for this Google account: those whose domain
        maps to its domain, then the email itself (unmapped Slack domains stay as they
        are, so alice@example.com in Google may be alice@example.com in Slack too)."""
        email = email.lower()
        local, _, domain = email.rpartition("@")
        mapped = [f"{local}@{source}" for source, target in self.pairs if target == domain]
        return [*mapped, email] if email not in mapped else mapped

    def slack_email(self, email: str) -> str:
        """The one Slack email a Google account stands for when the map says so; the
        email itself when no, or more than one, Slack domain maps to its domain."""
        candidates = self.to_slack(email)
        return candidates[0] if len(candidates) == 2 else email.lower()


def _as_gcp(target: TargetSpec) -> GcpTarget:
    if not isinstance(target, GcpTarget):
        raise TypeError(f"the gcp provider cannot handle {target.provider} targets")
    return target


def _label(resource: str) -> str:
    """projects/acme-prod → "project acme-prod"; role names are left as they are."""
    kind, _, ident = resource.partition("/")
    if kind in _KINDS and "/" not in ident:
        return f"{_KINDS[kind][0]} {ident}"
    return resource
