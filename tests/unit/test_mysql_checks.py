"""Reading SHOW GRANTS for the roles the bot may grant, as MySQL 8 and MariaDB print it
(MySQL 8 names a role with its host, and puts several on one line; only this machine's
MariaDB is there to run against)."""

from __future__ import annotations

import pytest

from providers.mysql.checks import admin_roles

MARIADB = [
    "GRANT ALL PRIVILEGES ON *.* TO `jit_bot`@`%` IDENTIFIED BY PASSWORD '*AB12'",
    "GRANT `orders_read` TO `jit_bot`@`%` WITH ADMIN OPTION",
    "GRANT `orders_write` TO `jit_bot`@`%`",
]
MYSQL8 = [
    "GRANT CREATE USER, PROCESS ON *.* TO `jit_bot`@`%`",
    "GRANT `orders_read`@`%`,`orders-ops`@`%` TO `jit_bot`@`%` WITH ADMIN OPTION",
    "GRANT `orders_write`@`%` TO `jit_bot`@`%`",
    "GRANT `elsewhere`@`10.0.0.1` TO `jit_bot`@`%` WITH ADMIN OPTION",
]


@pytest.mark.parametrize(
    ("lines", "roles"),
    [
        (MARIADB, {"orders_read"}),
        (MYSQL8, {"orders_read", "orders-ops"}),
        ([], set()),
    ],
    ids=["mariadb", "mysql 8", "nothing"],
)
def test_the_roles_held_with_admin_option_are_read_from_either_servers_show_grants(
    lines: list[str], roles: set[str]
) -> None:
    assert admin_roles(lines) == roles


def test_a_role_on_another_host_or_without_admin_option_is_not_grantable() -> None:
    found = admin_roles(MYSQL8)

    assert "orders_write" not in found
    assert "elsewhere" not in found
