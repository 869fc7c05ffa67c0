"""What ``jit-bot check --live`` verifies on a MySQL or MariaDB server: every role
exists and the bot's account may grant it, create accounts (for generated credentials),
see everyone's connections (PROCESS) and kill them; a warning when the bot has every
privilege (root)."""

from __future__ import annotations

from providers.base import ProviderError
from providers.mysql.accounts import SEE_EVERY_CONNECTION, Server
from providers.mysql.target import MysqlTarget


def check_server(server: Server, target: MysqlTarget) -> list[str]:
    """Raise ProviderError naming what the bot cannot do; return warnings."""
    label = f"mysql `{target.name}`"
    # Read for privilege and role names only: a line can carry a password hash.
    lines = [str(line).upper() for (line,) in server.execute("SHOW GRANTS")]
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
    for name in target.grant_roles:
        if not server.execute(
            "SELECT 1 FROM mysql.user WHERE User = %s AND Host = '' AND is_role = 'Y'"
            if server.mariadb
            else "SELECT 1 FROM mysql.user WHERE User = %s AND Host = '%%'"
            " AND account_locked = 'Y' AND authentication_string = ''",
            name,
        ):
            problems.append(f"role {name} does not exist")
        elif not (everything or "ROLE_ADMIN" in privileges or _admin_of(lines, name)):
            problems.append(
                f"{me} may not grant role {name} (needs WITH ADMIN OPTION or ROLE_ADMIN)"
            )
    if problems:
        raise ProviderError(f"{label}: " + "; ".join(problems))
    return warnings


def _admin_of(lines: list[str], name: str) -> bool:
    granted = f"GRANT `{name.upper()}` TO "
    return any(line.startswith(granted) and "WITH ADMIN OPTION" in line for line in lines)


def _can_kill(privileges: set[str], mariadb: bool) -> bool:
    return bool(privileges & {"CONNECTION ADMIN" if mariadb else "CONNECTION_ADMIN", "SUPER"})
