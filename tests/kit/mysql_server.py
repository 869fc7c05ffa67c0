"""A corner of the real MariaDB (or MySQL) server for one test: a database, roles, a
marker role and a least-privilege bot account of its own (as the README sets it up),
every name under one unique prefix, and all of it dropped at the end."""

from __future__ import annotations

import os
import secrets
import uuid
from typing import Any
from urllib.parse import urlsplit

import pymysql
import pytest

#: The server the tests use, as root (an empty password on this machine).
SERVER_URL = os.environ.get("JIT_TEST_MYSQL_SERVER", "mysql://root@127.0.0.1:3306")


class MyServer:
    def __init__(self, url: str = SERVER_URL) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 3306
        try:
            self.admin = self._connect(parts.username or "root", parts.password or "")
        except pymysql.err.OperationalError as exc:
            pytest.skip(f"no MySQL server at {self.host}:{self.port}: {exc}")
        self.prefix = f"jt{uuid.uuid4().hex[:8]}_"
        self.database = f"{self.prefix}db"
        self.bot = f"{self.prefix}bot"
        self.marker = f"{self.prefix}created"
        self.bot_password = secrets.token_urlsafe(12)
        self.sql(f"CREATE DATABASE {self.database}")
        self.sql(f"CREATE TABLE {self.database}.orders (id int)")
        self.sql(f"INSERT INTO {self.database}.orders VALUES (1), (2)")
        self.sql(f"CREATE USER '{self.bot}'@'%' IDENTIFIED BY '{self.bot_password}'")
        # The README's least privilege: create and drop accounts, read who holds which
        # role, see and kill everyone's connections; each role WITH ADMIN OPTION.
        self.sql(f"GRANT CREATE USER, PROCESS, CONNECTION ADMIN ON *.* TO '{self.bot}'@'%'")
        self.sql(f"GRANT SELECT ON mysql.* TO '{self.bot}'@'%'")
        self.sql(f"CREATE ROLE {self.marker}")
        self.sql(f"GRANT {self.marker} TO '{self.bot}'@'%' WITH ADMIN OPTION")

    def _connect(self, user: str, password: str, database: str | None = None) -> Any:
        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=user,
            password=password,
            database=database,
            autocommit=True,
            connect_timeout=3,
        )

    @property
    def template(self) -> str:
        return self.prefix + "{email}"

    def dsn(self) -> str:
        """The bot's connection URL."""
        return f"mysql://{self.bot}:{self.bot_password}@{self.host}:{self.port}/{self.database}"

    def login(self, email: str) -> str:
        return self.prefix + email

    def group(self, name: str) -> str:
        """A role of this test's that may read orders, which the bot may grant."""
        role = self.prefix + name
        self.sql(f"CREATE ROLE `{role}`")
        self.sql(f"GRANT `{role}` TO '{self.bot}'@'%' WITH ADMIN OPTION")
        self.sql(f"GRANT SELECT ON {self.database}.orders TO `{role}`")
        return role

    def account(self, login: str, password: str) -> None:
        """An account made by the DBA (credentials: external)."""
        self.sql(f"CREATE USER '{login}'@'%' IDENTIFIED BY '{password}'")

    def connect(self, login: str, password: str) -> Any:
        """A connection as ``login``, with no database selected: MariaDB lets it open one
        only once it took a role (SET ROLE)."""
        return self._connect(login, password)

    def sql(self, statement: str, *args: object) -> list[tuple[Any, ...]]:
        with self.admin.cursor() as cursor:
            cursor.execute(statement, args or None)
            return list(cursor.fetchall())

    def exists(self, user: str) -> bool:
        return bool(self.sql("SELECT 1 FROM mysql.user WHERE User = %s", user))

    def holds(self, login: str, role: str) -> bool:
        """Whether SHOW GRANTS for the account lists the role."""
        if not self.exists(login):
            return False
        return any(f"GRANT `{role}` TO" in g for (g,) in self.sql(f"SHOW GRANTS FOR '{login}'@'%'"))

    def sessions_of(self, login: str) -> int:
        return len(self.sql("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", login))

    def close(self) -> None:
        self.sql(f"DROP DATABASE IF EXISTS {self.database}")
        for user, host in self.sql(
            "SELECT User, Host FROM mysql.user WHERE User LIKE %s", self.prefix + "%"
        ):
            for (thread,) in self.sql(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", user
            ):
                self.sql(f"KILL CONNECTION {int(thread)}")
            if host:
                self.sql(f"DROP USER IF EXISTS '{user}'@'{host}'")
            else:
                self.sql(f"DROP ROLE IF EXISTS `{user}`")
        self.admin.close()
