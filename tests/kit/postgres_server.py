"""A corner of the real PostgreSQL server for one test: a database, group roles and a
least-privilege bot login of its own (CREATEROLE and pg_signal_backend, as the README
sets it up), every name under one unique prefix, and all of it dropped at the end.

Role names are global to a server, so everything a test makes, the people's logins
included (the targets' ``login_template`` starts with the prefix), carries the prefix:
concurrent tests and runs never meet."""

from __future__ import annotations

import os
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

#: The server the tests use, as its superuser (trust authentication on this machine).
SERVER_URL = os.environ.get(
    "JIT_TEST_POSTGRES_SERVER", "postgresql://postgres@127.0.0.1:5432/postgres"
)


class PgServer:
    def __init__(self, url: str = SERVER_URL) -> None:
        try:
            self.admin = psycopg.connect(url, autocommit=True, connect_timeout=3)
        except psycopg.OperationalError as exc:
            pytest.skip(f"no PostgreSQL server at {url}: {exc}")
        self.url = url
        self.prefix = f"jt{uuid.uuid4().hex[:8]}_"
        self.database = f"{self.prefix}db"
        self.bot = f"{self.prefix}bot"
        self.sql(f"CREATE DATABASE {self.database}")
        self.sql(f"CREATE ROLE {self.bot} LOGIN CREATEROLE")
        self.sql(f"GRANT pg_signal_backend TO {self.bot}")
        # A table each group role can read, for sessions to show what they may do.
        with self.connect() as connection:
            connection.execute("CREATE TABLE orders (id int)")
            connection.execute("INSERT INTO orders VALUES (1), (2)")

    @property
    def template(self) -> str:
        """A login_template whose logins are this test's."""
        return self.prefix + "{email}"

    def dsn(self, user: str | None = None) -> str:
        """A connection URL for ``user`` (the bot's login by default) to the database."""
        info: dict[str, Any] = dict(conninfo_to_dict(self.url))
        info.update(user=user or self.bot, dbname=self.database)
        return make_conninfo(**info)

    def login(self, email: str) -> str:
        return self.prefix + email

    def group(self, name: str, *, readable: bool = True) -> str:
        """A group role (NOLOGIN) of this test's; with ``readable``, it may read orders."""
        role = self.prefix + name
        self.sql(f'CREATE ROLE "{role}" NOLOGIN')
        if readable:
            with self.connect() as connection:
                connection.execute(
                    sql.SQL("GRANT SELECT ON orders TO {}").format(sql.Identifier(role))
                )
        return role

    def connect(self, user: str | None = None) -> psycopg.Connection:
        """A session on the test's database: as the superuser, or as ``user`` (trust)."""
        return psycopg.connect(self.dsn(user or "postgres"), autocommit=True, connect_timeout=3)

    def sql(self, statement: str, *params: object) -> list[tuple[Any, ...]]:
        """A statement the test writes itself (names it made), as the superuser."""
        cursor = self.admin.execute(statement.encode(), params or None)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []

    def exists(self, role: str) -> bool:
        return bool(self.sql("SELECT 1 FROM pg_roles WHERE rolname = %s", role))

    def member(self, group: str, login: str) -> bool:
        """Whether ``login`` is a direct member of ``group``, as the server says."""
        return bool(
            self.sql(
                "SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid"
                " JOIN pg_roles u ON u.oid = m.member WHERE g.rolname = %s AND u.rolname = %s",
                group,
                login,
            )
        )

    def sessions_of(self, login: str) -> int:
        return len(self.sql("SELECT pid FROM pg_stat_activity WHERE usename = %s", login))

    def close(self) -> None:
        """Drop everything under the prefix: sessions, the database, the roles."""
        self.sql(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
        roles = [
            r
            for (r,) in self.sql(
                "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", self.prefix
            )
        ]
        self.sql(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE starts_with(usename, %s)",
            self.prefix,
        )
        for role in roles:
            self.sql(f'DROP ROLE IF EXISTS "{role}"')
        self.admin.close()
