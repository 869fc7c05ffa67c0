"""What ``jit-bot check --live`` verifies on a MySQL or MariaDB server: every role
exists and the bot's account may grant it, create accounts (for generated credentials),
see everyone's connections (PROCESS) and kill them; a warning when the bot has every
privilege (root)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from providers.base import ProviderError
from providers.mysql.accounts import SEE_EVERY_CONNECTION, Server
from providers.mysql.target import MysqlTarget


def check_server(server: Server, target: MysqlTarget, marker: str) -> list[str]:
    """Raise ProviderError naming what the bot cannot do; return warnings. ``marker``:
    the role that marks the accounts the bot creates."""
    label = f"mysql `{target.name}`"
    # SHOW GRANTS is read for privilege and role names only: a line can carry a password
    # hash.
    privileges = server.privileges()
    everything = "ALL PRIVILEGES" in privileges
    warnings = []
    if everything:
        warnings.append(
            f"{label}: the bot connects with ALL PRIVILEGES on *.*; give it an account with "
            "only what the README lists (MySQL and MariaDB)"
        )
    problems = []
    if target.credentials == "generated" and not (everything or "CREATE USER" in privileges):
        problems.append("the bot lacks CREATE USER, so it cannot create accounts")
    if target.end_sessions and not privileges & SEE_EVERY_CONNECTION:
        problems.append("the bot lacks PROCESS, so it cannot see other accounts' connections")
    if target.end_sessions and not (everything or _can_kill(privileges, server.mariadb)):
        problems.append("the bot cannot kill other accounts' connections")
    me = server.execute("SELECT CURRENT_USER()")[0][0]
    # MySQL 8's ALL PRIVILEGES includes ROLE_ADMIN; MariaDB grants a role only to an
    # account holding it WITH ADMIN OPTION, whatever else it may do.
    grants_any = not server.mariadb and (everything or "ROLE_ADMIN" in privileges)
    admin = admin_roles(str(line) for (line,) in server.execute("SHOW GRANTS"))
    for name in target.grant_roles:
        if not _role_exists(server, name):
            problems.append(f"role {name} does not exist")
        elif not (grants_any or name in admin):
            problems.append(
                f"{me} may not grant role {name} (needs WITH ADMIN OPTION or ROLE_ADMIN)"
            )
    # A missing marker is created by the bot, which then holds it WITH ADMIN OPTION.
    marked = target.credentials == "generated" and _role_exists(server, marker)
    if marked and not (grants_any or marker in admin):
        problems.append(
            f"{me} may not grant role {marker}, which marks the accounts it creates "
            "(needs WITH ADMIN OPTION or ROLE_ADMIN)"
        )
    if problems:
        raise ProviderError(f"{label}: " + "; ".join(problems))
    return warnings


def _role_exists(server: Server, name: str) -> bool:
    return bool(
        server.execute(
            "SELECT 1 FROM mysql.user WHERE User = %s AND Host = '' AND is_role = 'Y'"
            if server.mariadb
            else "SELECT 1 FROM mysql.user WHERE User = %s AND Host = '%%'"
            " AND account_locked = 'Y' AND authentication_string = ''",
            name,
        )
    )


# A role grant, as MariaDB (`r`) and MySQL 8 (`r`@`%`, several to a line) print it.
_ADMIN_GRANT = re.compile(r"GRANT (`.+`) TO `[^`]*`@`[^`]*` WITH ADMIN OPTION$")
_ROLE = re.compile(r"`((?:[^`]|``)+)`(?:@`([^`]*)`)?")


def admin_roles(lines: Iterable[str]) -> set[str]:
    """The roles (on host %, as the provider names them) SHOW GRANTS says the account
    holds WITH ADMIN OPTION, so may grant."""
    found: set[str] = set()
    for line in lines:
        granted = _ADMIN_GRANT.match(line)
        if granted:
            found |= {
                name.replace("``", "`")
                for name, host in _ROLE.findall(granted.group(1))
                if host in ("", "%")
            }
    return found


def _can_kill(privileges: set[str], mariadb: bool) -> bool:
    return bool(privileges & {"CONNECTION ADMIN" if mariadb else "CONNECTION_ADMIN", "SUPER"})
