"""How the azure provider reads Azure's permission lists: wildcards, notActions, case."""

from __future__ import annotations

import pytest

from providers.azure_rights import NEEDED, Permission, missing

WRITE = "Microsoft.Authorization/roleAssignments/write"


@pytest.mark.parametrize(
    ("permissions", "expected"),
    [
        ([Permission(("*",), ())], []),
        ([Permission(("Microsoft.Authorization/*",), ())], []),
        ([Permission(("microsoft.authorization/roleassignments/*",), ())], []),
        ([Permission(("*/read",), ())], [WRITE]),
        ([Permission(("*",), ("Microsoft.Authorization/*/Write",))], [WRITE]),
        ([Permission(("*/read",), ()), Permission((WRITE,), ())], []),
        ([], [WRITE]),
    ],
    ids=["owner", "authorization", "case", "reader", "not-actions", "two-roles", "none"],
)
def test_an_action_is_allowed_by_some_permission_that_does_not_exclude_it(
    permissions: list[Permission], expected: list[str]
) -> None:
    assert missing(permissions, [WRITE]) == expected


def test_each_mode_needs_what_its_grant_and_revoke_write() -> None:
    reader = [Permission(("*/read",), ())]

    assert missing(reader, NEEDED["pim"]) == [
        "Microsoft.Authorization/roleAssignmentScheduleRequests/write"
    ]
    assert missing(reader, NEEDED["rbac"]) == [
        WRITE,
        "Microsoft.Authorization/roleAssignments/delete",
    ]
