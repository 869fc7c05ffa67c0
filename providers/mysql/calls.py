"""How the mysql provider talks to a server: one connection per operation, opened with
the DSN (``mysql://user:password@host:port/database``) read from the environment at the
call, retried under one `RETRY` policy, PyMySQL's errors translated once, here, into
ProviderErrors whose words never carry the DSN or a password."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

from providers.base import ProviderError
from providers.dblogins import DatabaseTarget, redact
from providers.resilience import RetryPolicy

if TYPE_CHECKING:  # annotations only: the driver is imported where it is used
    import pymysql

log = logging.getLogger(__name__)

R = TypeVar("R")

#: 0.5 + 1 + 2, as for PostgreSQL.
RETRY = RetryPolicy(attempts=4, base=0.5, cap=4.0)
CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 15

# Server error codes that mean "not now": lock wait timeout, deadlock, too many
# connections, server shutting down, lost connection.
_TEMPORARY_CODES = frozenset({1205, 1213, 1040, 1053, 2006, 2013})


@dataclass(frozen=True)
class Dsn:
    host: str
    port: int
    user: str
    password: str
    #: Where people connect (shown with generated credentials); accounts and roles are
    #: the server's, so the bot's own connection selects no database.
    database: str | None


class MysqlCalls:
    """Opens connections to the servers targets name and runs work on them."""

    def __init__(
        self, environ: Mapping[str, str], *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._environ = environ
        self._sleep = sleep
        self.connect: Callable[..., Any] = _connect  # replaceable: tests make it fail

    def dsn(self, target: DatabaseTarget) -> Dsn:
        raw = self._environ.get(target.dsn_env, "")
        label = f"mysql `{target.name}`"
        if not raw:
            raise ProviderError(
                f"{label}: the environment variable {target.dsn_env} is not set or empty; it "
                "must hold the bot's connection URL for this server"
            )
        parts = urlsplit(raw)
        try:
            port = parts.port or 3306
        except ValueError:
            port = -1
        if (
            parts.scheme not in ("mysql", "mysql+pymysql", "mariadb")
            or not parts.hostname
            or port < 0
        ):
            raise ProviderError(
                f"{label}: {target.dsn_env} does not hold a MySQL connection URL "
                "(mysql://user:password@host:port/database)"
            )
        return Dsn(
            host=parts.hostname,
            port=port,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            database=target.database or (parts.path.lstrip("/") or None),
        )

    def server(self, target: DatabaseTarget) -> str:
        dsn = self.dsn(target)
        return f"{dsn.host}:{dsn.port}"

    def run(self, target: DatabaseTarget, work: Callable[[Any], R]) -> R:
        """``work`` on a fresh autocommit connection, tried again while the failure is
        temporary."""
        import pymysql

        dsn = self.dsn(target)
        tries = RETRY.start(self._sleep)
        while True:
            try:
                connection = self.connect(
                    host=dsn.host,
                    port=dsn.port,
                    user=dsn.user,
                    password=dsn.password,
                    connect_timeout=CONNECT_TIMEOUT_SECONDS,
                    read_timeout=READ_TIMEOUT_SECONDS,
                    write_timeout=READ_TIMEOUT_SECONDS,
                    autocommit=True,
                    program_name="jit-bot",
                )
                with connection:
                    return work(connection)
            except pymysql.err.MySQLError as exc:
                problem = _translate(target, exc, dsn.password)
                if not problem.retryable or not tries.again(why=problem):
                    raise problem from None


def _translate(target: DatabaseTarget, exc: pymysql.err.MySQLError, password: str) -> ProviderError:
    import pymysql

    label = f"mysql `{target.name}`"
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    said = redact(str(exc.args[1]) if len(exc.args) > 1 else type(exc).__name__, password)
    said = " ".join(said.split())
    if code is None or code >= 2000 or isinstance(exc, pymysql.err.InterfaceError):
        log.warning("%s: cannot reach the server: %s", label, said)
        return ProviderError(f"{label}: cannot reach the server ({said})", retryable=True)
    log.warning("%s: the server answered %s: %s", label, code, said)
    return ProviderError(f"{label}: the server said: {said}", retryable=code in _TEMPORARY_CODES)


def _connect(**options: Any) -> Any:
    """``pymysql.connect``, the driver imported at the first connection."""
    import pymysql

    return pymysql.connect(**options)
