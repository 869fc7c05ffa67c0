"""The statements the mysql provider runs, for MySQL 8 and MariaDB alike (where they
differ, `Server` says which). Names reach SQL only through providers/mysql/quoting.py;
values go as PyMySQL parameters.

Neither server records who granted a role, so an account the bot creates is marked by
holding a marker role (no privileges of its own): what does not hold it, the bot never
drops, and drift lists only such accounts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from providers.dblogins import generate_password
from providers.mysql.quoting import account, role
from providers.mysql.target import MAX_NAME_MARIADB, MAX_NAME_MYSQL

#: MySQL's and MariaDB's answer to killing a connection that is already gone.
_NO_SUCH_THREAD = 1094
#: MariaDB's answer to SET DEFAULT ROLE … FOR another account without UPDATE on mysql.*.
_NO_ACCESS_TO_DATABASE = 1044
#: "Operation CREATE USER failed": the account is there already.
_CREATE_USER_FAILED = 1396
# A line of SHOW GRANTS that gives privileges on everything: the names before ON *.*.
_GLOBAL_GRANT = re.compile(r"GRANT (.+?) ON \*\.\* TO ")
#: The global privileges that let an account see every connection, not only its own.
SEE_EVERY_CONNECTION = frozenset({"PROCESS", "ALL PRIVILEGES"})


@dataclass(frozen=True)
class Server:
    """One connection, and which of the two servers it reached."""

    connection: Any
    mariadb: bool

    @classmethod
    def of(cls, connection: Any) -> Server:
        return cls(connection, "mariadb" in str(_one(connection, "SELECT VERSION()")).lower())

    @property
    def max_name(self) -> int:
        return MAX_NAME_MARIADB if self.mariadb else MAX_NAME_MYSQL

    def execute(self, statement: str, *args: object) -> list[tuple[Any, ...]]:
        """A statement; with ``args``, PyMySQL puts them in as escaped values (and reads
        ``%%`` as ``%``). A statement that names an account has no ``args``: its
        ``'%'`` host must stay as it is."""
        with self.connection.cursor() as cursor:
            cursor.execute(statement, args or None)
            return list(cursor.fetchall())

    def literal(self, value: str) -> str:
        """A string value, escaped and quoted by PyMySQL for this connection."""
        return str(self.connection.escape(value))

    def privileges(self) -> set[str]:
        """The bot's own privileges on ``*.*``, by name (upper case). Only the names are
        read: a line of SHOW GRANTS can carry a password hash."""
        found: set[str] = set()
        for (line,) in self.execute("SHOW GRANTS"):
            granted = _GLOBAL_GRANT.match(str(line).upper())
            if granted:
                found |= {name.strip() for name in granted.group(1).split(",")}
        return found

    def refusal(self, user: str) -> str | None:
        """Why ``'user'@'%'`` is not a person's account to grant to, if it is not: a
        template can name a role (what it is granted reaches its members) or the bot's
        own account."""
        if f"{user}@%" == str(_one(self.connection, "SELECT CURRENT_USER()")):
            return "it is jit-bot's own account"
        if self.mariadb:
            query = "SELECT 1 FROM mysql.user WHERE User = %s AND is_role = 'Y'"
            named: tuple[str, ...] = (user,)
        else:  # a role is a locked account without a password, or one granted as a role
            query = (
                "SELECT 1 FROM mysql.user WHERE User = %s AND Host = '%%'"
                " AND account_locked = 'Y' AND authentication_string = ''"
                " UNION SELECT 1 FROM mysql.role_edges WHERE FROM_USER = %s AND FROM_HOST = '%%'"
            )
            named = (user, user)
        return "it is a role, not a person's account" if self.execute(query, *named) else None

    def user_exists(self, user: str) -> bool:
        return bool(self.execute("SELECT 1 FROM mysql.user WHERE User = %s AND Host = '%%'", user))

    def has_role(self, user: str, name: str) -> bool:
        """Whether ``'user'@'%'`` holds role ``name`` directly."""
        if self.mariadb:
            query = (
                "SELECT 1 FROM mysql.roles_mapping WHERE User = %s AND Host = '%%' AND Role = %s"
            )
        else:
            query = (
                "SELECT 1 FROM mysql.role_edges WHERE TO_USER = %s AND TO_HOST = '%%'"
                " AND FROM_USER = %s AND FROM_HOST = '%%'"
            )
        return bool(self.execute(query, user, name))

    def roles_of(self, user: str) -> list[str]:
        if self.mariadb:
            query = "SELECT Role FROM mysql.roles_mapping WHERE User = %s AND Host = '%%'"
        else:
            query = "SELECT FROM_USER FROM mysql.role_edges WHERE TO_USER = %s AND TO_HOST = '%%'"
        return [name for (name,) in self.execute(query, user)]

    def members(self, name: str) -> list[str]:
        """The accounts on host % that hold role ``name`` without ADMIN OPTION: the bot
        never grants with it, so its own account (and a DBA's admins) are left out."""
        if self.mariadb:
            query = (
                "SELECT User FROM mysql.roles_mapping"
                " WHERE Role = %s AND Host = '%%' AND Admin_option = 'N'"
            )
        else:
            query = (
                "SELECT TO_USER FROM mysql.role_edges"
                " WHERE FROM_USER = %s AND FROM_HOST = '%%' AND TO_HOST = '%%'"
                " AND WITH_ADMIN_OPTION = 'N'"
            )
        return sorted(user for (user,) in self.execute(query, name))

    def create_user(self, user: str, marker: str) -> None:
        """An account whose password nobody knows (until a person asks for one), marked
        as the bot's."""
        import pymysql

        self.execute(f"CREATE ROLE IF NOT EXISTS {role(marker)}")
        try:
            self.execute(
                f"CREATE USER {account(user)} IDENTIFIED BY {self.literal(generate_password())}"
            )
        except pymysql.err.OperationalError as exc:
            if exc.args[0] != _CREATE_USER_FAILED or not self.user_exists(user):
                raise
            # Another grant of the person's made it a moment ago, and marks it; an
            # account someone else made is not marked as the bot's.
            return
        self.execute(f"GRANT {role(marker)} TO {account(user)}")

    def grant(self, user: str, name: str) -> None:
        self.execute(f"GRANT {role(name)} TO {account(user)}")
        # Without a default role the person would have to SET ROLE first. MariaDB keeps
        # one default role (the latest grant's), and setting another account's asks for
        # UPDATE on the mysql schema, more than the bot should hold: without it, people
        # SET ROLE themselves.
        if self.mariadb:
            self._default_role(f"SET DEFAULT ROLE {role(name)} FOR {account(user)}")
        else:
            self.execute(f"SET DEFAULT ROLE ALL TO {account(user)}")

    def revoke(self, user: str, name: str) -> None:
        self.execute(f"REVOKE {role(name)} FROM {account(user)}")
        if self.mariadb:
            default = self.execute(
                "SELECT default_role FROM mysql.user WHERE User = %s AND Host = '%%'", user
            )
            if default and default[0][0] == name:
                self._default_role(f"SET DEFAULT ROLE NONE FOR {account(user)}")

    def _default_role(self, statement: str) -> None:
        import pymysql

        try:
            self.execute(statement)
        except pymysql.err.OperationalError as exc:
            if exc.args[0] != _NO_ACCESS_TO_DATABASE:
                raise

    def end_sessions(self, user: str) -> int:
        """KILL every connection of ``user`` (any host); how many there were."""
        import pymysql

        ids = self.execute(
            "SELECT ID FROM information_schema.PROCESSLIST"
            " WHERE USER = %s AND ID <> CONNECTION_ID()",
            user,
        )
        for (thread,) in ids:
            try:
                self.execute(f"KILL CONNECTION {int(thread)}")
            except pymysql.err.OperationalError as exc:
                if exc.args[0] != _NO_SUCH_THREAD:
                    raise
        return len(ids)

    def set_password(self, user: str, password: str) -> None:
        self.execute(f"ALTER USER {account(user)} IDENTIFIED BY {self.literal(password)}")

    def drop_user(self, user: str) -> None:
        self.execute(f"DROP USER IF EXISTS {account(user)}")


def _one(connection: Any, query: str) -> Any:
    with connection.cursor() as cursor:
        cursor.execute(query)
        row = cursor.fetchone()
    return row[0] if row else None
