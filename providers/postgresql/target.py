"""What a ``postgresql`` entry of roles.yaml may say (the fields are shared with mysql:
providers/dblogins.py)."""

from __future__ import annotations

from typing import Literal

from providers.base import TargetSpec
from providers.dblogins import DatabaseTarget

#: PostgreSQL keeps 63 bytes of a name (NAMEDATALEN - 1) and silently drops the rest.
MAX_NAME_BYTES = 63


class PostgresTarget(DatabaseTarget):
    """Group roles on one PostgreSQL server, granted to the person's login role."""

    provider: Literal["postgresql"]


def as_postgres(target: TargetSpec) -> PostgresTarget:
    if not isinstance(target, PostgresTarget):
        raise TypeError(f"the postgresql provider cannot handle a {type(target).__name__}")
    return target
