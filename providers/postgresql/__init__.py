"""The ``postgresql`` provider: group roles granted to a person's login for a request.

- ``target``: what a roles.yaml entry may say (fields shared with mysql);
- ``calls``: connections, retries under one `RETRY` policy, errors translated;
- ``roles``: the statements, built with psycopg's quoting;
- ``checks``: what ``jit-bot check --live`` verifies on each server;
- ``provider``: `PostgresProvider`.
"""

from providers.postgresql.calls import RETRY
from providers.postgresql.provider import PostgresProvider
from providers.postgresql.target import PostgresTarget

__all__ = ["RETRY", "PostgresProvider", "PostgresTarget"]
