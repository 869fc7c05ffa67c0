"""A chaotic GCP estate in FakeGoogle, the kind ``jit-bot import gcp`` is for.

- per-project copies: projects/<p>/roles/auditor in acme-prod-a and acme-prod-b, the same
  permissions, each bound to the sre group in its own project;
- predefined roles that belong together: compute.viewer, cloudsql.client and
  bigquery.dataViewer, bound together to the developers group on both dev projects (and
  compute.viewer alone to dave on acme-dev-a);
- an exact duplicate: organizations/<org>/roles/breakGlass and breakGlassCopy (both may
  set IAM policies), bound to alice on one prod project each;
- a dead custom role: organizations/<org>/roles/legacyKms, bound to nobody; and a deleted
  one still bound to bob;
- user and group bindings across the prod and dev folders, the organization and a folder
  (sre's nested oncall group brings erin);
- what the import skips: a service account, a domain, allUsers, a conditional binding;
  and a basic role (roles/owner, alice's on the organization), which it lists ungranted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.fakes.gcp import FakeGoogle

ORGANIZATION = "100000000001"
PROD, DEV = "200000000001", "200000000002"
DOMAIN = "example.com"
PEOPLE = ("alice", "bob", "carol", "dave", "erin")
AUDITOR = ("cloudsql.instances.get", "storage.objects.get", "storage.objects.list")
BREAK_GLASS = ("compute.instances.start", "resourcemanager.projects.setIamPolicy")
TOGETHER = ("roles/compute.viewer", "roles/cloudsql.client", "roles/bigquery.dataViewer")


@dataclass
class ChaoticGcp:
    organization: str = f"organizations/{ORGANIZATION}"
    folders: dict[str, str] = field(default_factory=dict)  # name → folders/N
    projects: dict[str, str] = field(default_factory=dict)  # id → the folder (or org) above
    # (member, role, resource) of every unconditional binding of a person or a group
    bindings: list[tuple[str, str, str]] = field(default_factory=list)
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # group → its people

    def held(self) -> Iterator[tuple[str, str, str]]:
        """(person, role, resource) for every binding that reaches a person today."""
        for member, role, resource in self.bindings:
            kind, _, email = member.partition(":")
            for person in self.groups[email] if kind == "group" else (email,):
                yield person, role, resource


def _user(name: str) -> str:
    return f"user:{name}@{DOMAIN}"


def seed_gcp_chaos(google: FakeGoogle) -> ChaoticGcp:
    """Reset the fake, then build the estate; returns what it made."""
    google.reset()
    estate = ChaoticGcp()
    org = estate.organization
    google.add_organization(ORGANIZATION, display_name=DOMAIN)
    for number, name in ((PROD, "prod"), (DEV, "dev")):
        estate.folders[name] = google.add_folder(number, parent=org, display_name=name)
    for project, above, env in (
        ("acme-prod-a", estate.folders["prod"], "production"),
        ("acme-prod-b", estate.folders["prod"], "production"),
        ("acme-dev-a", estate.folders["dev"], "development"),
        ("acme-dev-b", estate.folders["dev"], "development"),
        ("acme-shared", org, "shared"),
    ):
        google.add_project(project, parent=above, display_name=project.upper(), labels={"env": env})
        estate.projects[project] = above
    _roles(google)
    _groups(google, estate)
    _bind(google, estate)
    return estate


def _roles(google: FakeGoogle) -> None:
    for project in ("acme-prod-a", "acme-prod-b"):
        google.add_role(f"projects/{project}/roles/auditor", title="Auditor", permissions=AUDITOR)
    for copy in ("breakGlass", "breakGlassCopy"):
        google.add_role(
            f"organizations/{ORGANIZATION}/roles/{copy}",
            title="Break glass",
            permissions=BREAK_GLASS,
        )
    google.add_role(
        f"organizations/{ORGANIZATION}/roles/legacyKms",
        title="Legacy KMS",
        permissions=("cloudkms.cryptoKeyVersions.useToDecrypt",),
    )
    google.add_role(
        "projects/acme-dev-b/roles/old",
        title="Old",
        permissions=("pubsub.topics.get",),
        deleted=True,
    )


def _groups(google: FakeGoogle, estate: ChaoticGcp) -> None:
    google.add_group(f"developers@{DOMAIN}", [f"bob@{DOMAIN}", f"carol@{DOMAIN}"])
    google.add_group(f"oncall@{DOMAIN}", [f"erin@{DOMAIN}"])
    google.add_group(f"sre@{DOMAIN}", [f"alice@{DOMAIN}", (f"oncall@{DOMAIN}", "GROUP")])
    estate.groups = {
        f"developers@{DOMAIN}": (f"bob@{DOMAIN}", f"carol@{DOMAIN}"),
        f"sre@{DOMAIN}": (f"alice@{DOMAIN}", f"erin@{DOMAIN}"),
    }


def _bind(google: FakeGoogle, estate: ChaoticGcp) -> None:
    org, prod = estate.organization, estate.folders["prod"]

    def bind(resource: str, role: str, member: str) -> None:
        google.add_binding(resource, role, [member])
        estate.bindings.append((member, role, resource))

    for project in ("acme-prod-a", "acme-prod-b"):
        bind(f"projects/{project}", f"projects/{project}/roles/auditor", f"group:sre@{DOMAIN}")
    bind(prod, "roles/logging.viewer", f"group:sre@{DOMAIN}")
    bind("projects/acme-prod-a", f"{org}/roles/breakGlass", _user("alice"))
    bind("projects/acme-prod-b", f"{org}/roles/breakGlassCopy", _user("alice"))
    bind(org, "roles/resourcemanager.organizationAdmin", _user("alice"))
    bind(org, "roles/owner", _user("alice"))  # basic: listed, not granted
    for project in ("acme-dev-a", "acme-dev-b"):
        for role in TOGETHER:
            bind(f"projects/{project}", role, f"group:developers@{DOMAIN}")
    bind("projects/acme-dev-a", "roles/compute.viewer", _user("dave"))
    # What the import leaves out.
    google.add_binding("projects/acme-dev-b", "projects/acme-dev-b/roles/old", [_user("bob")])
    google.add_binding(
        "projects/acme-shared",
        "roles/logging.viewer",
        ["serviceAccount:ci@acme-shared.iam.gserviceaccount.com", "allUsers"],
    )
    google.add_binding(org, "roles/browser", [f"domain:{DOMAIN}"])
    google.add_binding(
        "projects/acme-dev-b",
        "roles/logging.viewer",
        [_user("erin")],
        condition={"title": "business hours", "expression": "request.time.getHours('UTC') >= 9"},
    )
