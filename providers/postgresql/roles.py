"""The statements the postgresql provider runs, each built with psycopg's identifier
and literal quoting (``psycopg.sql``), never by formatting a name into SQL text.

A login the bot creates carries a comment that says so: what the bot did not create it
never drops. A membership the bot granted has the bot's login as its grantor: one it
did not grant is standing access, which neither drift nor revocation touches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the driver is imported where it is used
    import psycopg

#: The start of the comment on every login the bot created.
CREATED_MARK = "jit-bot: created for "


@dataclass(frozen=True)
class Login:
    """A role as the server has it, with what tells a person's login from anything else."""

    name: str
    #: The email its creation comment names, if the bot created it; else None.
    created_for: str | None
    can_login: bool
    superuser: bool
    createrole: bool
    bypassrls: bool
    #: Whether any role is a member of it (and so would gain what it is granted).
    has_members: bool
    is_me: bool

    @property
    def created_by_bot(self) -> bool:
        return self.created_for is not None

    def refusal(self, email: str) -> str | None:
        """Why this role is not ``email``'s own login to grant to, if it is not: a
        template can name a group role, a system role or the bot itself, and what is
        granted to those reaches whoever holds them."""
        if self.is_me:
            return "it is jit-bot's own login"
        if self.name.startswith("pg_"):
            return "it is one of PostgreSQL's own roles"
        if self.created_for is not None and self.created_for != email.lower():
            return f"jit-bot created it for {self.created_for}"
        # A login the bot made and could not drop was set NOLOGIN: it may log in again.
        if not (self.can_login or self.created_by_bot):
            return "it cannot log in (a group role, not a person's login)"
        if self.superuser:
            return "it is a superuser"
        if self.createrole or self.bypassrls:
            return "it has CREATEROLE or BYPASSRLS"
        if self.has_members:
            return "it has members, who would gain what it is granted"
        return None


def find_login(connection: psycopg.Connection, name: str) -> Login | None:
    # On 16+ a role that creates a login is made its admin (neither INHERIT nor SET): such
    # a membership gives nothing, so it does not count. Read through to_jsonb, as the
    # columns are missing before 16 (where every membership counts).
    row = connection.execute(
        "SELECT r.rolname, coalesce(shobj_description(r.oid, 'pg_authid'), ''),"
        " r.rolcanlogin, r.rolsuper, r.rolcreaterole, r.rolbypassrls,"
        " EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.roleid = r.oid AND coalesce("
        "   (to_jsonb(m) ->> 'inherit_option')::bool OR (to_jsonb(m) ->> 'set_option')::bool,"
        "   true)),"
        " r.rolname = current_user"
        " FROM pg_roles r WHERE r.rolname = %s",
        (name,),
    ).fetchone()
    if row is None:
        return None
    comment = str(row[1])
    created_for = comment.removeprefix(CREATED_MARK) if comment.startswith(CREATED_MARK) else None
    return Login(row[0], created_for, *(bool(value) for value in row[2:]))


def create_login(connection: psycopg.Connection, name: str, email: str) -> None:
    """A login without a password (people authenticate as the company arranges, or with
    a generated password), marked as the bot's in one transaction."""
    from psycopg import sql

    with connection.transaction():
        connection.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        connection.execute(
            sql.SQL("COMMENT ON ROLE {} IS {}").format(
                sql.Identifier(name), sql.Literal(CREATED_MARK + email)
            )
        )


def membership(connection: psycopg.Connection, group: str, login: str) -> bool | None:
    """Whether ``login`` is a direct member of ``group``: True if the bot granted it,
    False if only others did (standing), None if it is not a member. (16+ keeps one
    membership per grantor.)"""
    row = connection.execute(
        "SELECT bool_or(m.grantor = (SELECT oid FROM pg_roles WHERE rolname = current_user))"
        " FROM pg_auth_members m"
        " JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member"
        " WHERE g.rolname = %s AND u.rolname = %s",
        (group, login),
    ).fetchone()
    return None if row is None or row[0] is None else bool(row[0])


def grant(connection: psycopg.Connection, group: str, login: str) -> None:
    from psycopg import sql

    connection.execute(
        sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(login))
    )


def revoke(connection: psycopg.Connection, group: str, login: str) -> bool:
    """REVOKE the bot's grant of ``group``; whether it is gone. 16+ revokes only the
    grants the current role made and merely warns otherwise, so the server is asked."""
    from psycopg import sql

    connection.execute(
        sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(group), sql.Identifier(login))
    )
    return membership(connection, group, login) is not True


def has_memberships(connection: psycopg.Connection, login: str) -> bool:
    row = connection.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles u ON u.oid = m.member"
        " WHERE u.rolname = %s)",
        (login,),
    ).fetchone()
    return bool(row and row[0])


def end_sessions(connection: psycopg.Connection, login: str) -> int:
    """Terminate every session of ``login`` on the server (each database), waiting up
    to five seconds for each to go; how many there were."""
    rows = connection.execute(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
        " WHERE usename = %s AND pid <> pg_backend_pid()",
        (login,),
    ).fetchall()
    return len(rows)


def drop_login(connection: psycopg.Connection, login: str) -> bool:
    """Drop a login the bot created; False (and the login set NOLOGIN instead) where
    the person made objects the server will not drop with it."""
    from psycopg import errors, sql

    try:
        with connection.transaction():
            connection.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login)))
    except errors.DependentObjectsStillExist:
        with connection.transaction():
            connection.execute(
                sql.SQL("ALTER ROLE {} NOLOGIN PASSWORD NULL").format(sql.Identifier(login))
            )
        return False
    return True


def enable_login(connection: psycopg.Connection, login: str) -> None:
    """A login the bot created and could not drop last time may log in again."""
    from psycopg import sql

    connection.execute(sql.SQL("ALTER ROLE {} LOGIN").format(sql.Identifier(login)))


def set_password(
    connection: psycopg.Connection, login: str, password: str, until: datetime
) -> None:
    """A password that stops working at ``until`` (PostgreSQL refuses new logins with it
    after that, even if the bot never comes back). What is sent is its SCRAM verifier,
    made here by libpq: the password itself never reaches the server, so no server log
    (``log_statement = all`` included) can hold it."""
    from psycopg import sql

    verifier = connection.pgconn.encrypt_password(
        password.encode(), login.encode(), b"scram-sha-256"
    ).decode()
    connection.execute(
        sql.SQL("ALTER ROLE {} PASSWORD {} VALID UNTIL {}").format(
            sql.Identifier(login), sql.Literal(verifier), sql.Literal(until.isoformat())
        )
    )


def move_valid_until(connection: psycopg.Connection, login: str, until: datetime) -> bool:
    """A password set to end earlier than ``until`` now ends then (an extension); one
    with no end (never set by the bot) or a later one is left as it is. Whether it moved."""
    from psycopg import sql

    row = connection.execute(
        "SELECT rolvaliduntil < %s FROM pg_roles WHERE rolname = %s", (until, login)
    ).fetchone()
    if not (row and row[0]):
        return False
    connection.execute(
        sql.SQL("ALTER ROLE {} VALID UNTIL {}").format(
            sql.Identifier(login), sql.Literal(until.isoformat())
        )
    )
    return True


def clear_password(connection: psycopg.Connection, login: str) -> None:
    from psycopg import sql

    connection.execute(sql.SQL("ALTER ROLE {} PASSWORD NULL").format(sql.Identifier(login)))


def members_granted_by_bot(connection: psycopg.Connection, group: str) -> list[tuple[str, str]]:
    """(login, the email its creation comment names, or '') of every member of
    ``group`` whose membership the bot's login granted."""
    rows = connection.execute(
        "SELECT u.rolname, coalesce(shobj_description(u.oid, 'pg_authid'), '')"
        " FROM pg_auth_members m"
        " JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member"
        " WHERE g.rolname = %s"
        " AND m.grantor = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
        " ORDER BY u.rolname",
        (group,),
    ).fetchall()
    return [
        (name, comment.removeprefix(CREATED_MARK) if comment.startswith(CREATED_MARK) else "")
        for name, comment in rows
    ]
