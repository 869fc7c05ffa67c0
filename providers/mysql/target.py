"""What a ``mysql`` entry of roles.yaml may say (the fields are shared with postgresql:
providers/dblogins.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from providers.base import TargetSpec
from providers.dblogins import DatabaseTarget

#: MySQL 8 keeps user names of up to 32 characters; MariaDB up to 80 (a role, 128).
MAX_NAME_MYSQL = 32
MAX_NAME_MARIADB = 80


class MysqlTarget(DatabaseTarget):
    """Roles on one MySQL 8 or MariaDB 10.5+ server, granted to the person's account
    (``'login'@'%'``)."""

    provider: Literal["mysql"]

    @field_validator("end_sessions")
    @classmethod
    def _sessions_end(cls, value: bool) -> bool:
        # Unlike PostgreSQL's, a MySQL or MariaDB session keeps a role it took (SET ROLE,
        # or a default role) after REVOKE: only killing the connection ends the access.
        if not value:
            raise ValueError(
                "cannot be false for mysql: an open connection keeps a role it took after "
                "REVOKE, so revoked access would go on working; leave end_sessions out"
            )
        return value


def as_mysql(target: TargetSpec) -> MysqlTarget:
    if not isinstance(target, MysqlTarget):
        raise TypeError(f"the mysql provider cannot handle a {type(target).__name__}")
    return target
