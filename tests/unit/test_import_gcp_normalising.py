"""Normalising a GCP estate for the mining: roles into capabilities, bindings into
holdings (and notes for what is left out), resources into environments and targets that
the gcp provider's own model accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.importer.access import Source
from bot.importer.gcp.capabilities import Capability, capability_of, label
from bot.importer.gcp.convert import (
    custom_role_proposal,
    custom_roles_parent,
    gcp_target,
    imported,
)
from bot.importer.gcp.environments import EnvironmentsError, environments, read_mapping
from bot.importer.gcp.estate import Binding, Estate, Node, Role
from bot.importer.gcp.members import holdings
from providers.gcp.target import DomainMap, GcpTarget

ORG = "organizations/1"
PROD = Node("folders/2", "Prod", ORG)
NODES = {
    ORG: Node(ORG, "example.com", None),
    PROD.name: PROD,
    "projects/acme-prod": Node("projects/acme-prod", "Acme prod", PROD.name, {"env": "live"}),
    "projects/acme-top": Node("projects/acme-top", "Acme top", ORG),
}
ROLES = {
    "roles/logging.viewer": Role("roles/logging.viewer", "Logs Viewer", ("logging.logs.list",)),
    "roles/owner": Role("roles/owner", "Owner", ("resourcemanager.projects.setIamPolicy",)),
    "projects/acme-prod/roles/gone": Role("projects/acme-prod/roles/gone", "", ("a.b.c",), True),
}


def _estate(*bindings: Binding, **changes: object) -> Estate:
    fields: dict[str, object] = {
        "node": ORG,
        "organization": ORG,
        "nodes": NODES,
        "ancestors": {},
        "bindings": bindings,
        "roles": ROLES,
        "groups": {"sre@example.com": ("alice@example.com", "erin@example.com")},
    }
    return Estate(**(fields | changes))  # type: ignore[arg-type]


def test_per_project_copies_and_duplicates_of_a_custom_role_are_one_capability() -> None:
    a = capability_of(Role("projects/acme-a/roles/auditor", "A", ("s.b", "s.a")))
    b = capability_of(Role("projects/acme-b/roles/auditor", "B", ("s.a", "s.b", "s.a")))
    c = capability_of(Role("organizations/1/roles/copy", "C", ("s.a", "s.b")))

    assert a == b == c and hash(a) == hash(c)
    assert a.describe() == "custom: s.a, s.b"
    assert a.features() == {"s.a", "s.b"}


def test_a_predefined_role_is_its_name_whatever_it_includes() -> None:
    predefined = capability_of(Role("roles/x.viewer", "X", ("s.a", "s.b")))
    custom = capability_of(Role("projects/p/roles/x", "X", ("s.a", "s.b")))

    assert predefined != custom
    assert predefined == Capability("roles/x.viewer", ())
    assert predefined.describe() == "roles/x.viewer"
    assert predefined.features() == {"s.a", "s.b"}
    assert Capability("roles/y", ()).features() == {"roles/y"}  # IAM did not say


@pytest.mark.parametrize(
    ("role", "admin"),
    [
        (Role("roles/owner", "", ()), True),
        (
            Role(
                "roles/resourcemanager.folderAdmin", "", ("resourcemanager.folders.setIamPolicy",)
            ),
            True,
        ),
        (Role("projects/p/roles/x", "", ("resourcemanager.projects.setIamPolicy",)), True),
        (
            Role("organizations/1/roles/xyz", "", ("resourcemanager.organizations.setIamPolicy",)),
            True,
        ),
        (
            Role("roles/editor", "", ("compute.instances.start", "resourcemanager.projects.get")),
            False,
        ),
        (Role("projects/p/roles/x", "", ("resourcemanager.projects.getIamPolicy",)), False),
    ],
)
def test_admin_like_means_it_may_change_iam_policies(role: Role, admin: bool) -> None:
    assert capability_of(role).admin_like is admin


@pytest.mark.parametrize(
    ("name", "abstracted"),
    [
        ("projects/acme-prod/roles/auditor", "projects/{project}/roles/auditor"),
        ("organizations/123/roles/breakGlass", "organizations/{organization}/roles/breakGlass"),
        ("roles/logging.viewer", "roles/logging.viewer"),
    ],
)
def test_labels_abstract_where_a_custom_role_is_defined(name: str, abstracted: str) -> None:
    assert label(name) == abstracted


def test_people_and_groups_are_held_and_everything_else_is_counted_in_a_note() -> None:
    viewer = "roles/logging.viewer"
    estate = _estate(
        Binding("projects/acme-prod", viewer, "user:Alice@Example.com"),
        Binding("projects/acme-prod", viewer, "group:SRE@example.com"),
        Binding("projects/acme-prod", viewer, "group:unknown@example.com"),
        Binding("projects/acme-prod", viewer, "serviceAccount:ci@p.iam.gserviceaccount.com"),
        Binding("projects/acme-prod", viewer, "serviceAccount:ci2@p.iam.gserviceaccount.com"),
        Binding("projects/acme-prod", viewer, "allUsers"),
        Binding("projects/acme-prod", viewer, "deleted:user:bob@example.com?uid=123"),
        Binding("projects/acme-prod", viewer, "user:carol@example.com", condition="hours"),
        Binding("projects/acme-prod", "projects/acme-prod/roles/gone", "user:dave@example.com"),
        Binding("projects/acme-prod", "roles/nonexistent", "user:dave@example.com"),
        Binding(ORG, "roles/owner", "user:erin@example.com"),
    )

    found = holdings(estate, DomainMap.parse("example.org=example.com"))

    assert [(h.principal_type, h.principal, h.people) for h in found.holdings] == [
        ("USER", "alice@example.com", ("alice@example.org",)),
        ("GROUP", "sre@example.com", ("alice@example.org", "erin@example.org")),
        ("USER", "erin@example.com", ("erin@example.org",)),
    ]
    assert found.notes == (
        "1 conditional binding member(s) skipped: a roles.yaml target cannot carry an IAM "
        "condition, so jit-bot could not grant them as they are.",
        "1 binding(s) of 1 group(s) kept out (unknown@example.com): their members could "
        "not be read.",
        "4 binding member(s) that are not people skipped (allUsers 1, deleted 1, "
        "serviceAccount 2): jit-bot grants people.",
        "2 binding member(s) of deleted, disabled or unknown roles skipped "
        "(projects/acme-prod/roles/gone, roles/nonexistent): they grant nothing.",
        "1 binding member(s) of basic roles (roles/owner, roles/editor, roles/viewer) are in "
        "mapping.csv with no role: IAM cannot put a condition on a basic role, so jit-bot "
        "cannot grant one. Replace them with predefined roles.",
    )


def test_a_basic_role_is_held_but_is_no_source_to_grant_through() -> None:
    estate = _estate(Binding(ORG, "roles/owner", "user:erin@example.com"))

    result = imported(estate, {n: "prod" for n in NODES}, DomainMap())

    assert [h.source for h in result.holdings] == ["roles/owner"]
    assert "roles/owner" not in result.sources
    assert "roles/logging.viewer" not in result.sources  # predefined and held by nobody


def test_environments_by_folder_by_label_and_from_a_file(tmp_path: Path) -> None:
    unread = Node("projects/acme-lost", "Lost", "folders/9")
    estate = _estate(nodes={**NODES, unread.name: unread})
    mapping = tmp_path / "envs.txt"
    mapping.write_text(
        "# resource environment\n\nprojects/acme-prod, Production  # live\nfolders/2 prod\n"
    )

    assert environments("folder", estate, ()) == {
        ORG: "example-com",
        "folders/2": "prod",
        "projects/acme-prod": "prod",
        "projects/acme-top": "example-com",  # at the top: the organization's name
        "projects/acme-lost": "folders-9",  # its folder could not be read
    }
    assert environments("label:env", estate, ())["projects/acme-prod"] == "live"
    assert environments("label:env", estate, ())["projects/acme-top"] == "unlabelled"
    assert environments("label:env", estate, ())["folders/2"] == "prod"
    assert environments(str(mapping), estate, ["projects/acme-prod"]) == {
        "folders/2": "prod",
        "projects/acme-prod": "production",
    }
    with pytest.raises(
        EnvironmentsError, match=r"no environment for projects/acme-top \(Acme top\)"
    ):
        environments(str(mapping), estate, ["projects/acme-top"])
    with pytest.raises(EnvironmentsError, match="label:KEY needs a label key"):
        environments("label:", estate, ())


def test_every_bad_line_of_a_mapping_file_is_named(tmp_path: Path) -> None:
    mapping = tmp_path / "envs.txt"
    mapping.write_text("acme-prod prod\nprojects/acme-prod prod\nfolders/x dev\nprojects/P x\n")

    with pytest.raises(EnvironmentsError) as raised:
        read_mapping(mapping)

    lines = str(raised.value).splitlines()
    assert lines[:3] == [
        f"{mapping}:1: 'acme-prod prod'",
        f"{mapping}:3: 'folders/x dev'",
        f"{mapping}:4: 'projects/P x'",
    ]
    assert lines[3].startswith("expected '<resource> <environment>' on each line")
    with pytest.raises(EnvironmentsError, match="cannot read"):
        read_mapping(tmp_path / "missing.txt")


def test_targets_name_each_kind_of_resource_and_pass_the_providers_model() -> None:
    target = gcp_target(
        "organizations/1/roles/xyz", ["folders/2", "organizations/1", "projects/a-prod"]
    )

    assert target == {
        "provider": "gcp",
        "role": "organizations/1/roles/xyz",
        "projects": ["a-prod"],
        "folders": ["2"],
        "organization": "1",
    }
    GcpTarget.model_validate(target)
    GcpTarget.model_validate(gcp_target("projects/a-prod/roles/xyz", ["projects/a-prod"]))


def test_the_proposed_custom_role_has_every_permission_of_the_roles_it_replaces() -> None:
    custom = Role("projects/acme-prod/roles/auditor", "", ("s.b", "s.a"))
    viewer = ROLES["roles/logging.viewer"]
    sources = [Source(r.name, capability_of(r), label(r.name)) for r in (custom, viewer)]

    name, document = custom_role_proposal(ORG)("prod-support", sources)

    assert name == "organizations/1/roles/jit_prod_support"
    assert document == {
        "name": name,
        "title": "jit-bot prod-support",
        "description": "jit-bot role prod-support; replaces projects/{project}/roles/auditor, "
        "roles/logging.viewer",
        "includedPermissions": ["logging.logs.list", "s.a", "s.b"],
        "stage": "GA",
    }


def test_without_an_organization_custom_roles_go_to_the_project_or_are_left_to_fill_in() -> None:
    project = _estate(node="projects/acme-prod", organization=None)
    folder = _estate(node="folders/2", organization=None)

    assert custom_roles_parent(project) == "projects/acme-prod"
    assert custom_roles_parent(folder) == "organizations/{organization}"
    notes = imported(folder, {}, DomainMap()).notes
    assert notes[-1].startswith("No organization above folders/2 could be read")


def test_a_disabled_custom_role_grants_nothing_like_a_deleted_one() -> None:
    from google.cloud import iam_admin_v1

    from bot.importer.gcp.reading import _role

    def role(stage: iam_admin_v1.Role.RoleLaunchStage) -> iam_admin_v1.Role:
        return iam_admin_v1.Role(
            name="projects/acme-dev-a/roles/auditor",
            title="Auditor",
            included_permissions=["logging.logEntries.list"],
            stage=stage,
        )

    assert _role(role(iam_admin_v1.Role.RoleLaunchStage.DISABLED)).deleted
    assert not _role(role(iam_admin_v1.Role.RoleLaunchStage.GA)).deleted
