"""The ``mysql`` provider (MySQL 8, MariaDB 10.5+): existing roles granted to a person's
account ``'login'@'%'`` for the length of a request, then revoked and the account's open
connections killed (unless ``end_sessions: false``).

With ``credentials: external`` the company makes the accounts (and how people log in);
the bot only grants roles to them. With ``credentials: generated`` the bot creates a
missing account (``CREATE USER IF NOT EXISTS``) with a password nobody knows, marked as
its own by a marker role; a person gets a usable password only by asking for one, and
revoke replaces it (or drops the account when it holds nothing else).

Each role of a target is its own unit (providers/dblogins.py), as for PostgreSQL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from providers.base import Credentials, GrantOutcome, Holding, Provider, ProviderError
from providers.dblogins import email_of, generate_password, login_name, one_unit_per_role
from providers.mysql.accounts import SEE_EVERY_CONNECTION, Server
from providers.mysql.calls import MysqlCalls
from providers.mysql.target import MysqlTarget, as_mysql

if TYPE_CHECKING:  # annotations only
    from providers.base import GrantContext, Principal, TargetSpec

log = logging.getLogger(__name__)

#: The role that marks the accounts the bot created.
MARKER_ROLE = "jit_bot_created"


class MysqlProvider(Provider):
    """Grants roles on MySQL and MariaDB servers. ``environ`` is where each target's
    ``dsn_env`` is looked up, on every call; ``marker_role`` marks the accounts the bot
    created."""

    name = "mysql"
    target_model = MysqlTarget

    def __init__(
        self,
        environ: Mapping[str, str],
        *,
        sleep: Callable[[float], None] = time.sleep,
        marker_role: str = MARKER_ROLE,
    ) -> None:
        self.calls = MysqlCalls(environ, sleep=sleep)
        self.marker = marker_role

    def validate(self, target: TargetSpec, *, live: bool = False) -> list[str]:
        mysql = as_mysql(target)
        self.calls.server(mysql)
        if not live:
            return []
        from providers.mysql.checks import check_server  # only `check --live` needs it

        return self.calls.run(
            mysql, lambda connection: check_server(Server.of(connection), mysql, self.marker)
        )

    def expand(self, target: TargetSpec) -> list[TargetSpec]:
        return list(one_unit_per_role(as_mysql(target)))

    def describe(self, target: TargetSpec) -> str:
        mysql = as_mysql(target)
        where = f" database `{mysql.database}`" if mysql.database else ""
        plural = "s" * (len(mysql.grant_roles) > 1)
        roles = ", ".join(f"`{name}`" for name in mysql.grant_roles)
        return f"MySQL `{mysql.name}`{where}: role{plural} {roles}"

    def endpoint(self, target: TargetSpec) -> str:
        return f"{self.name}:{as_mysql(target).dsn_env}"

    def grant(
        self, principal: Principal, target: TargetSpec, context: GrantContext
    ) -> GrantOutcome:
        mysql = as_mysql(target)

        def work(connection: Any) -> GrantOutcome:
            server = Server.of(connection)
            user = self._login(mysql, principal, server.max_name)
            if why := server.refusal(user):
                raise ProviderError(
                    f"mysql `{mysql.name}`: '{user}'@'%' is not {principal.email.lower()}'s "
                    f"own account ({why}), so jit-bot grants nothing to it; check the "
                    "target's login_template"
                )
            if not server.user_exists(user):
                if mysql.credentials != "generated":
                    raise ProviderError(
                        f"mysql `{mysql.name}`: there is no account '{user}'@'%' and this "
                        "target's credentials are external, so jit-bot does not create one"
                    )
                server.create_user(user, self.marker)
            standing = []
            for name in mysql.grant_roles:
                if server.has_role(user, name):
                    standing.append(name)
                else:
                    server.grant(user, name)
            detail = f"account '{user}'@'%'"
            if standing:
                detail += f"; already held {', '.join(standing)}"
            return GrantOutcome(
                preexisting=len(standing) == len(mysql.grant_roles), detail=detail, principal=user
            )

        return self.calls.run(mysql, work)

    def revoke(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        mysql = as_mysql(target)

        def work(connection: Any) -> None:
            server = Server.of(connection)
            user = principal.recorded or self._login(mysql, principal, server.max_name)
            if not server.user_exists(user):
                return
            if why := server.refusal(user):
                # A failed grant's clean-up: nothing was granted to it, and its
                # connections are not the bot's to kill.
                log.warning("mysql `%s`: left '%s'@'%%' alone: %s", mysql.name, user, why)
                return
            for name in mysql.grant_roles:
                if server.has_role(user, name):
                    server.revoke(user, name)
            if mysql.end_sessions:
                # Without PROCESS the process list shows the bot only its own
                # connections: none of the person's would be killed, silently.
                if not server.privileges() & SEE_EVERY_CONNECTION:
                    raise ProviderError(
                        f"mysql `{mysql.name}`: the role is revoked, but the bot's account "
                        f"lacks PROCESS, so it cannot see (or kill) the open connections of "
                        f"'{user}'@'%'; grant it PROCESS ON *.* (docs/databases.md)"
                    )
                ended = server.end_sessions(user)
                if ended:
                    log.info("mysql `%s`: ended %d connection(s) of %s", mysql.name, ended, user)
            held = server.roles_of(user)
            if self.marker in held and held == [self.marker]:
                server.drop_user(user)
            elif mysql.credentials == "generated" and self.marker in held:
                server.set_password(user, generate_password())  # the shown one stops working

        self.calls.run(mysql, work)

    def issue_credentials(
        self, principal: Principal, target: TargetSpec, context: GrantContext
    ) -> Credentials | None:
        """A fresh password on the account, for accounts the bot created only (one a DBA
        made keeps the DBA's password, which revoke would not take back). Neither server
        can end a password at a time: ``PASSWORD EXPIRE`` counts whole days and lets the
        holder choose a new password once it expires, so here the bot's revocation, which
        replaces the password, is the only end."""
        mysql = as_mysql(target)
        if mysql.credentials != "generated":
            return None
        password = generate_password()

        def work(connection: Any) -> str:
            server = Server.of(connection)
            user = principal.recorded or self._login(mysql, principal, server.max_name)
            held = server.roles_of(user) if server.user_exists(user) else []
            if self.marker not in held:
                raise ProviderError(
                    f"mysql `{mysql.name}`: the account '{user}'@'%' was not created by "
                    "jit-bot, so its password is not the bot's to set"
                )
            missing = [name for name in mysql.grant_roles if name not in held]
            if missing:
                raise ProviderError(
                    f"mysql `{mysql.name}`: '{user}'@'%' does not hold {', '.join(missing)} "
                    "now, so no password was set"
                )
            server.set_password(user, password)
            return user

        user = self.calls.run(mysql, work)
        dsn = self.calls.dsn(mysql)
        return Credentials(dsn.host, dsn.port, dsn.database, user, password)

    def is_granted(self, principal: Principal, target: TargetSpec) -> bool | None:
        mysql = as_mysql(target)

        def work(connection: Any) -> bool:
            server = Server.of(connection)
            user = self._login(mysql, principal, server.max_name)
            return all(server.has_role(user, name) for name in mysql.grant_roles)

        return self.calls.run(mysql, work)

    def inventory(self, target: TargetSpec) -> list[Holding] | None:
        """The accounts the bot created that hold each role: neither server records who
        granted a role, so only those can be told apart from standing access."""
        mysql = as_mysql(target)

        def work(connection: Any) -> list[Holding]:
            server = Server.of(connection)
            ours = set(server.members(self.marker))
            return [
                Holding(email=email_of(mysql.login_template, user), unit=unit, principal=user)
                for unit in one_unit_per_role(mysql)
                for user in server.members(unit.grant_roles[0])
                if user in ours
            ]

        return self.calls.run(mysql, work)

    @staticmethod
    def _login(target: MysqlTarget, principal: Principal, max_name: int) -> str:
        return login_name(target.login_template, principal.email, max_length=max_name)
