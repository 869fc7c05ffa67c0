"""The ``mysql`` provider (MySQL 8, MariaDB 10.5+): roles granted to a person's account.

- ``target``: what a roles.yaml entry may say (fields shared with postgresql);
- ``quoting``: the one place names become SQL, checked then quoted;
- ``calls``: connections, retries under one `RETRY` policy, errors translated;
- ``accounts``: the statements, for both servers;
- ``checks``: what ``jit-bot check --live`` verifies on each server;
- ``provider``: `MysqlProvider`.
"""

from providers.mysql.calls import RETRY
from providers.mysql.provider import MARKER_ROLE, MysqlProvider
from providers.mysql.target import MysqlTarget

__all__ = ["MARKER_ROLE", "RETRY", "MysqlProvider", "MysqlTarget"]
