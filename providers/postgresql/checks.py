"""What ``jit-bot check --live`` verifies on a PostgreSQL server: every group role
exists, the bot's login may grant it (on 16+ only with ADMIN OPTION), create logins and
end sessions; a warning when the bot connects as a superuser (it needs far less: README,
"PostgreSQL")."""

from __future__ import annotations

import psycopg

from providers.base import ProviderError
from providers.postgresql.target import PostgresTarget


def check_server(connection: psycopg.Connection, target: PostgresTarget) -> list[str]:
    """Raise ProviderError naming what the bot cannot do; return warnings."""
    label = f"postgresql `{target.name}`"
    row = connection.execute(
        "SELECT current_user, rolsuper, rolcreaterole, pg_has_role('pg_signal_backend', 'USAGE'),"
        " current_setting('server_version_num')::int"
        " FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if row is None:  # the server always knows who is connected
        raise ProviderError(f"{label}: cannot read the bot's own role")
    me, superuser, createrole, signals, version = row
    warnings = []
    if superuser:
        warnings.append(
            f"{label}: the bot connects as the superuser {me}; give it a login with "
            "CREATEROLE and pg_signal_backend instead (README, PostgreSQL)"
        )
    problems = [] if createrole else [f"{me} lacks CREATEROLE, so it cannot create logins"]
    if target.end_sessions and not signals:
        problems.append(
            f"{me} is not a member of pg_signal_backend, so it cannot end sessions at revoke"
        )
    for group in target.grant_roles:
        found = connection.execute(
            "SELECT rolsuper,"
            " EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.roleid = r.oid"
            "   AND m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
            "   AND m.admin_option)"
            " FROM pg_roles r WHERE rolname = %s",
            (group,),
        ).fetchone()
        if found is None:
            problems.append(f"role {group} does not exist")
        elif found[0]:
            problems.append(f"role {group} is a superuser; only a superuser may grant it")
        elif not may_grant(version, superuser=superuser, createrole=createrole, admin=found[1]):
            needs = (
                "ADMIN OPTION" if version >= ADMIN_OPTION_NEEDED else "ADMIN OPTION or CREATEROLE"
            )
            problems.append(f"{me} may not grant role {group} (needs {needs})")
    if problems:
        raise ProviderError(f"{label}: " + "; ".join(problems))
    return warnings


#: From PostgreSQL 16 CREATEROLE no longer lets a role grant any role: it needs ADMIN
#: OPTION, and without it a grant is recorded as the bootstrap superuser's, which the
#: bot's REVOKE then cannot remove.
ADMIN_OPTION_NEEDED = 160000


def may_grant(version: int, *, superuser: bool, createrole: bool, admin: bool) -> bool:
    """Whether a login may grant (and revoke) a role on a server of ``version``
    (``server_version_num``)."""
    return superuser or admin or (createrole and version < ADMIN_OPTION_NEEDED)
