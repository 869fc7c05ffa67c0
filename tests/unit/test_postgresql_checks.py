"""Who may grant a role, by server version: PostgreSQL 16 took that power from
CREATEROLE (only this machine's PostgreSQL 15 is there to run against)."""

from __future__ import annotations

import pytest

from providers.postgresql.checks import may_grant


@pytest.mark.parametrize(
    ("version", "superuser", "createrole", "admin", "allowed"),
    [
        (150020, False, True, False, True),  # 15: CREATEROLE grants any role
        (150020, False, False, True, True),
        (150020, False, False, False, False),
        (160004, False, True, False, False),  # 16: CREATEROLE alone no longer does
        (160004, False, True, True, True),
        (170000, False, False, True, True),
        (170000, True, False, False, True),
    ],
)
def test_who_may_grant_a_role_depends_on_the_server_version(
    version: int, superuser: bool, createrole: bool, admin: bool, allowed: bool
) -> None:
    assert may_grant(version, superuser=superuser, createrole=createrole, admin=admin) is allowed
