"""Normalising Azure role definitions into capabilities, scopes into environments and
the estate into the import's words: pure functions of what was read, tested as tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.importer.azure.capabilities import capability_of
from bot.importer.azure.convert import held_scopes, imported, label
from bot.importer.azure.environments import EnvironmentsError, environments
from bot.importer.azure.estate import (
    Assignment,
    Directory,
    Estate,
    Permission,
    ResourceGroup,
    RoleDefinition,
    Subscription,
)
from bot.importer.azure.scopes import canonical

PROD_ID = "00000000-0000-4000-8000-000000000001"
DEV_ID = "00000000-0000-4000-8000-000000000002"
PROD, DEV = f"/subscriptions/{PROD_ID}", f"/subscriptions/{DEV_ID}"
APP = f"{DEV}/resourceGroups/App-Dev"


def _role(*permissions: Permission, name: str = "r", guid: str = "g") -> RoleDefinition:
    return RoleDefinition(guid, name, True, permissions)


def _estate(*assignments: Assignment, roles: tuple[RoleDefinition, ...] = ()) -> Estate:
    return Estate(
        subscriptions={
            PROD_ID: Subscription(PROD_ID, "Contoso Production", {"env": "prod"}),
            DEV_ID: Subscription(DEV_ID, "Contoso Dev", {"env": "dev"}),
        },
        resource_groups={APP.lower(): ResourceGroup(DEV_ID, "App-Dev", {"env": "app"})},
        roles={r.guid: r for r in roles},
        assignments=assignments,
        directory=Directory(
            people={"u1": "alice@example.com"},
            groups={"g1": "sre"},
            members={"g1": ("u1", "gone")},
        ),
    )


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        pytest.param(
            (Permission(("Microsoft.Compute/virtualMachines/start/action", "*/read")),),
            (Permission(("*/READ", "microsoft.compute/virtualmachines/start/action")),),
            True,
            id="action_case_and_order_do_not_matter",
        ),
        pytest.param(
            (Permission(("a/read",)), Permission(("b/read",))),
            (Permission(("b/read", "a/read")),),
            True,
            id="entries_that_exclude_nothing_are_their_union",
        ),
        pytest.param(
            (Permission(("a/read",)), Permission(("a/read",))),
            (Permission(("a/read",)),),
            True,
            id="a_repeated_entry_counts_once",
        ),
        pytest.param(
            (Permission(("*",), ("microsoft.authorization/*/write",)),),
            (Permission(("*",)),),
            False,
            id="an_exclusion_matters",
        ),
        pytest.param(
            (Permission(("*",), ("x/write",)), Permission(("x/write",))),
            (Permission(("*", "x/write"), ("x/write",)),),
            False,
            id="an_exclusion_narrows_its_own_entry_only",
        ),
        pytest.param(
            (Permission(data_actions=("blobs/read",)),),
            (Permission(("blobs/read",)),),
            False,
            id="data_actions_are_not_actions",
        ),
    ],
)
def test_permissions_compare_as_azure_applies_them(
    left: tuple[Permission, ...], right: tuple[Permission, ...], same: bool
) -> None:
    assert (capability_of(_role(*left)) == capability_of(_role(*right))) is same


@pytest.mark.parametrize(
    ("permission", "admin"),
    [
        pytest.param(Permission(("*",)), True, id="owner"),
        pytest.param(
            Permission(
                ("*",), ("Microsoft.Authorization/*/Write", "Microsoft.Authorization/*/Delete")
            ),
            False,
            id="contributor",
        ),
        pytest.param(
            Permission(("*/read", "Microsoft.Authorization/*", "Microsoft.Support/*")),
            True,
            id="user_access_administrator",
        ),
        pytest.param(
            Permission(("Microsoft.Authorization/roleAssignments/write",)),
            True,
            id="rbac_administrator",
        ),
        pytest.param(Permission(("*/read",)), False, id="reader"),
        pytest.param(
            Permission(("Microsoft.Auth*",), ("Microsoft.Authorization/roleAssignments/*",)),
            False,
            id="wildcards_on_both_sides",
        ),
    ],
)
def test_admin_like_is_every_action_or_the_right_to_assign_roles(
    permission: Permission, admin: bool
) -> None:
    assert capability_of(_role(permission)).admin_like is admin


def test_features_say_what_an_exclusion_narrows() -> None:
    contributor = capability_of(_role(Permission(("*",), ("x/write",), ("d/read",))))

    assert contributor.features() == {"action * but not x/write", "data action d/read"}
    assert contributor.describe() == "*, data d/read, not x/write"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("VM Operator (Contoso Production)", "VM Operator"),
        (f"vm operator - {DEV_ID}", "vm operator"),
        (f"[{PROD_ID}] Reader", "Reader"),
        ("Contoso Dev", "Contoso Dev"),  # nothing left: the name stays
    ],
)
def test_labels_leave_out_the_subscription_a_copy_was_made_for(name: str, expected: str) -> None:
    assert label(name, _estate()) == expected


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (PROD.upper(), PROD),
        (f"{DEV}/resourcegroups/App-Dev/", f"{DEV}/resourceGroups/App-Dev"),
        (
            f"{DEV}/RESOURCEGROUPS/app/PROVIDERS/Microsoft.Web/sites/shop",
            f"{DEV}/resourceGroups/app/providers/Microsoft.Web/sites/shop",
        ),
        ("/providers/Microsoft.Management/managementGroups/root", None),
        ("/", None),
    ],
)
def test_scopes_have_one_spelling(scope: str, expected: str | None) -> None:
    assert canonical(scope) == expected


def test_environments_by_name_tag_and_file(tmp_path: Path) -> None:
    estate = _estate()
    scopes = [PROD, DEV, APP, f"{DEV}/resourceGroups/other"]
    mapping = tmp_path / "envs"
    mapping.write_text(f"{PROD_ID} live\n{DEV.upper()}, dev # the rest\n{APP.lower()} app\n")

    assert environments("name", estate, scopes) == {
        PROD: "contoso-production",
        DEV: "contoso-dev",
        APP: "contoso-dev",
        f"{DEV}/resourceGroups/other": "contoso-dev",
    }
    assert environments("tag:env", estate, scopes)[APP] == "app"
    assert environments("tag:env", estate, scopes)[f"{DEV}/resourceGroups/other"] == "dev"
    assert environments("tag:owner", estate, scopes)[PROD] == "untagged"
    by_file = environments(str(mapping), estate, scopes)
    assert by_file == {PROD: "live", DEV: "dev", APP: "app", f"{DEV}/resourceGroups/other": "dev"}


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("prod is production\n", "{path}:1: 'prod is production'\nexpected '<scope> "),
        (f"{PROD} live\n/subscriptions/nope dev\n", "{path}:2: '/subscriptions/nope dev'"),
        (f"{PROD} live\n", "{path}: no environment for " + DEV),
    ],
)
def test_a_bad_environments_file_is_named_with_its_line(
    tmp_path: Path, text: str, said: str
) -> None:
    path = tmp_path / "envs"
    path.write_text(text)

    with pytest.raises(EnvironmentsError) as raised:
        environments(str(path), _estate(), [PROD, DEV])
    assert said.format(path=path) in str(raised.value)


def test_only_people_are_imported_and_the_rest_is_counted_in_notes() -> None:
    reader = _role(Permission(("*/read",)), name="Reader", guid="reader")
    dead = _role(Permission(("x/read",)), name="Dead", guid="dead")

    def held(principal: str, kind: str, scope: str = PROD, role: str = "reader") -> Assignment:
        return Assignment(f"{scope}/{principal}", scope, role, principal, kind)

    estate = _estate(
        held("u1", "User"),
        held("g1", "Group", f"{DEV}/resourcegroups/app-dev"),  # spelled as ARM may
        held("sp", "ServicePrincipal"),
        held("sp2", "ServicePrincipal"),
        held("x", "ForeignGroup"),
        held("deleted", "User"),
        held("u1", "User", role="deleted-role"),
        Assignment("mg", "", "reader", "u1", "User"),
        # an ABAC condition narrows it: granted without, it would be more than today
        Assignment(f"{DEV}/abac", DEV, "reader", "u1", "User", condition=True),
        roles=(reader, dead),
    )

    result = imported(estate, dict.fromkeys(held_scopes(estate), "prod"))

    assert [(h.source, h.scope, h.principal, h.people) for h in result.holdings] == [
        ("Reader", PROD, "alice@example.com", ("alice@example.com",)),
        ("Reader", APP, "sre", ("alice@example.com",)),
    ]
    assert set(result.sources) == {"Reader", "Dead"}  # a custom role nobody holds is kept
    assert set(result.scopes) == {PROD, DEV, APP}
    assert result.notes[:-1] == (
        "1 role assignment(s) at management groups or the tenant root (above every "
        "subscription) skipped.",
        "1 role assignment(s) of role definitions that no longer exist skipped.",
        "1 role assignment(s) to principals of other tenants skipped.",
        "2 role assignment(s) to service principals (applications, managed identities) skipped.",
        "1 role assignment(s) to users no longer in the directory skipped.",
        "1 role assignment(s) with a condition (ABAC), which the proposed roles could not "
        "keep, skipped.",
    )
