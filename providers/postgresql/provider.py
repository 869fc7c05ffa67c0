"""The ``postgresql`` provider: existing group roles granted to a person's login role for
the length of a request, and taken away for certain, open sessions included.

PostgreSQL cannot end a role membership by itself, so the bot's revocation is the only
line: ``REVOKE`` takes effect at an open session's next statement, and the person's
sessions are then terminated (``pg_terminate_backend``) unless the target says
``end_sessions: false``: a session that had switched to the group role (``SET ROLE``)
would otherwise keep what it switched to.

Each group role of a target is its own unit (providers/dblogins.py): the domain keeps a
role that another active grant of the person needs, or that they held before (standing,
told apart by the membership's grantor), and revokes the rest.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from providers.base import Credentials, GrantOutcome, Holding, Provider, ProviderError
from providers.dblogins import email_of, generate_password, login_name, one_unit_per_role
from providers.postgresql import roles
from providers.postgresql.calls import PgCalls
from providers.postgresql.target import MAX_NAME_BYTES, PostgresTarget, as_postgres

if TYPE_CHECKING:  # annotations only: the driver is imported where it is used
    import psycopg

    from providers.base import GrantContext, Principal, TargetSpec

log = logging.getLogger(__name__)


class PostgresProvider(Provider):
    """Grants group roles on PostgreSQL servers. ``environ`` is where each target's
    ``dsn_env`` is looked up (``os.environ`` in production), on every call."""

    name = "postgresql"
    target_model = PostgresTarget

    def __init__(
        self, environ: Mapping[str, str], *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.calls = PgCalls(environ, sleep=sleep)

    def validate(self, target: TargetSpec, *, live: bool = False) -> list[str]:
        postgres = as_postgres(target)
        self.calls.server(postgres)  # the variable is set and holds a connection URL
        if not live:
            return []
        from providers.postgresql.checks import check_server  # only `check --live` needs it

        return self.calls.run(postgres, lambda connection: check_server(connection, postgres))

    def expand(self, target: TargetSpec) -> list[TargetSpec]:
        return list(one_unit_per_role(as_postgres(target)))

    def describe(self, target: TargetSpec) -> str:
        postgres = as_postgres(target)
        where = f" database `{postgres.database}`" if postgres.database else ""
        return (
            f"PostgreSQL `{postgres.name}`{where}: role{'s' * (len(postgres.grant_roles) > 1)} "
            + ", ".join(f"`{role}`" for role in postgres.grant_roles)
        )

    def endpoint(self, target: TargetSpec) -> str:
        # Each server is its own endpoint: one that hangs holds up only its own calls.
        return f"{self.name}:{as_postgres(target).dsn_env}"

    def grant(
        self, principal: Principal, target: TargetSpec, context: GrantContext
    ) -> GrantOutcome:
        postgres = as_postgres(target)
        login = self.login(principal, postgres)

        def work(connection: psycopg.Connection) -> GrantOutcome:
            found = roles.find_login(connection, login)
            if found is None:
                roles.create_login(connection, login, principal.email.lower())
            elif why := found.refusal(principal.email):
                raise ProviderError(
                    f"postgresql `{postgres.name}`: {login} is not {principal.email.lower()}'s "
                    f"own login ({why}), so jit-bot grants nothing to it; check the target's "
                    "login_template"
                )
            elif found.created_by_bot:
                roles.enable_login(connection, login)
            standing = []
            for group in postgres.grant_roles:
                held = roles.membership(connection, group, login)
                if held is None:
                    roles.grant(connection, group, login)
                elif held is False:
                    standing.append(group)
            detail = f"login {login}" + (
                f"; already a member of {', '.join(standing)}" * bool(standing)
            )
            return GrantOutcome(
                preexisting=bool(standing) and len(standing) == len(postgres.grant_roles),
                detail=detail,
                principal=login,
            )

        return self.calls.run(postgres, work)

    def revoke(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        postgres = as_postgres(target)
        login = principal.recorded or self.login(principal, postgres)

        def work(connection: psycopg.Connection) -> None:
            found = roles.find_login(connection, login)
            if found is None:
                return  # never created, or dropped already: nothing to take away
            for group in postgres.grant_roles:
                # Only the bot's own grant: one a DBA made (standing) is never taken.
                held = roles.membership(connection, group, login)
                if held is True and not roles.revoke(connection, group, login):
                    raise ProviderError(
                        f"postgresql `{postgres.name}`: REVOKE {group} FROM {login} left "
                        "the membership in place (on PostgreSQL 16+ the bot's login needs "
                        "ADMIN OPTION on the role: docs/databases.md)"
                    )
            if why := found.refusal(principal.email):
                # Not the person's login (a failed grant's clean-up): its sessions and
                # password are not the bot's to touch.
                log.warning(
                    "postgresql `%s`: left %s's sessions alone: %s", postgres.name, login, why
                )
                return
            if postgres.end_sessions:
                ended = roles.end_sessions(connection, login)
                if ended:
                    log.info(
                        "postgresql `%s`: ended %d session(s) of %s", postgres.name, ended, login
                    )
            if not found.created_by_bot:
                return  # a DBA's login keeps its password: it was never the bot's to set
            if not roles.has_memberships(connection, login):
                if not roles.drop_login(connection, login):
                    log.warning(
                        "postgresql `%s`: %s owns objects, so it was set NOLOGIN, not dropped",
                        postgres.name,
                        login,
                    )
            elif postgres.credentials == "generated":
                roles.clear_password(connection, login)

        self.calls.run(postgres, work)

    def extend(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        """A generated password ends with the access: an extension moves its VALID UNTIL
        (PostgreSQL's own end, should the bot be down when the access ends), on a login
        the bot created only."""
        postgres = as_postgres(target)
        if postgres.credentials != "generated":
            return
        login = principal.recorded or self.login(principal, postgres)

        def work(connection: psycopg.Connection) -> None:
            found = roles.find_login(connection, login)
            if found is not None and found.created_by_bot:
                roles.move_valid_until(connection, login, context.expires_at)

        self.calls.run(postgres, work)

    def issue_credentials(
        self, principal: Principal, target: TargetSpec, context: GrantContext
    ) -> Credentials | None:
        postgres = as_postgres(target)
        if postgres.credentials != "generated":
            return None
        login = principal.recorded or self.login(principal, postgres)
        password = generate_password()

        def work(connection: psycopg.Connection) -> None:
            found = roles.find_login(connection, login)
            if found is None or not found.created_by_bot:
                # A login a DBA made keeps the DBA's password (and its VALID UNTIL),
                # which revoke would not take back.
                raise ProviderError(
                    f"postgresql `{postgres.name}`: the login {login} was not created by "
                    "jit-bot, so its password is not the bot's to set; log in as you "
                    "usually do"
                )
            # The grant is checked on the server too: a login whose roles were taken
            # away (by drift's clean-up, by a DBA) gets no password.
            missing = [
                group
                for group in postgres.grant_roles
                if roles.membership(connection, group, login) is None
            ]
            if missing:
                raise ProviderError(
                    f"postgresql `{postgres.name}`: {login} is not a member of "
                    f"{', '.join(missing)} now, so no password was set"
                )
            roles.set_password(connection, login, password, context.expires_at)

        self.calls.run(postgres, work)
        host, port, database = self.calls.address(postgres)
        return Credentials(host, port, database, login, password)

    def is_granted(self, principal: Principal, target: TargetSpec) -> bool | None:
        postgres = as_postgres(target)
        login = self.login(principal, postgres)
        return self.calls.run(
            postgres,
            lambda connection: all(
                roles.membership(connection, group, login) is not None
                for group in postgres.grant_roles
            ),
        )

    def inventory(self, target: TargetSpec) -> list[Holding] | None:
        postgres = as_postgres(target)

        def work(connection: psycopg.Connection) -> list[Holding]:
            return [
                Holding(
                    email=email or email_of(postgres.login_template, login),
                    unit=unit,
                    principal=login,
                )
                for unit in one_unit_per_role(postgres)
                for login, email in roles.members_granted_by_bot(connection, unit.grant_roles[0])
            ]

        return self.calls.run(postgres, work)

    def login(self, principal: Principal, target: PostgresTarget) -> str:
        """The person's login role on the target's server."""
        return login_name(target.login_template, principal.email, max_length=MAX_NAME_BYTES)
