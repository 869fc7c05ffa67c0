"""How the postgresql provider talks to a server: one connection per operation, opened
with the DSN read from the environment at the call (a rotated password is picked up),
retried under one `RETRY` policy, with psycopg's errors translated once, here, into
ProviderErrors whose words never carry the DSN or a password."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from providers.base import ProviderError
from providers.dblogins import DatabaseTarget, redact
from providers.resilience import RetryPolicy

if TYPE_CHECKING:  # annotations only: the driver is imported where it is used
    import psycopg

log = logging.getLogger(__name__)

R = TypeVar("R")

#: 0.5 + 1 + 2: a server restarting is back within seconds; one that is down for longer
#: is a retryable failure the sweeper tries again.
RETRY = RetryPolicy(attempts=4, base=0.5, cap=4.0)
CONNECT_TIMEOUT_SECONDS = 5
#: No statement of the bot's may wait longer than this for a lock or a slow server.
STATEMENT_TIMEOUT_MS = 10_000


class PgCalls:
    """Opens connections to the servers targets name and runs work on them."""

    def __init__(
        self, environ: Mapping[str, str], *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._environ = environ
        self._sleep = sleep
        self.connect = _connect  # replaceable: tests make connections fail

    def dsn(self, target: DatabaseTarget) -> str:
        dsn = self._environ.get(target.dsn_env, "")
        if not dsn:
            raise ProviderError(
                f"postgresql `{target.name}`: the environment variable {target.dsn_env} is "
                "not set or empty; it must hold the bot's connection URL for this server"
            )
        # The URL form SQLAlchemy uses (and DATABASE_URL may be written in) works too.
        return dsn.replace("postgresql+psycopg://", "postgresql://", 1)

    def server(self, target: DatabaseTarget) -> str:
        """host:port of the target's server, for people and for the endpoint."""
        info = self._conninfo(target)
        return f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}"

    def address(self, target: DatabaseTarget) -> tuple[str, int, str | None]:
        """(host, port, database) where people connect: the server the bot reaches, and
        the target's database, else the DSN's."""
        info = self._conninfo(target)
        database = target.database or str(info.get("dbname") or "") or None
        return str(info.get("host") or "localhost"), int(str(info.get("port") or 5432)), database

    def run(self, target: DatabaseTarget, work: Callable[[psycopg.Connection], R]) -> R:
        """``work`` on a fresh autocommit connection to the target's server, tried again
        while the failure is temporary."""
        import psycopg

        self._conninfo(target)  # a malformed DSN is not worth trying again
        tries = RETRY.start(self._sleep)
        while True:
            try:
                with self._connect(target) as connection:
                    return work(connection)
            except psycopg.Error as exc:
                problem = self._translate(target, exc)
                if not problem.retryable or not tries.again(why=problem):
                    raise problem from None

    def _connect(self, target: DatabaseTarget) -> psycopg.Connection:
        from psycopg.conninfo import make_conninfo

        conninfo = make_conninfo(
            self.dsn(target),
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name="jit-bot",
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            **({"dbname": target.database} if target.database else {}),
        )
        return self.connect(conninfo, autocommit=True)

    def _conninfo(self, target: DatabaseTarget) -> dict[str, object]:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        try:
            return dict(conninfo_to_dict(self.dsn(target)))
        except psycopg.ProgrammingError:
            raise ProviderError(
                f"postgresql `{target.name}`: {target.dsn_env} does not hold a PostgreSQL "
                "connection URL (postgresql://user@host:port/database)"
            ) from None

    def _translate(self, target: DatabaseTarget, exc: psycopg.Error) -> ProviderError:
        from psycopg import errors

        # The server said "not now" rather than "no": a lock, a race, a restart.
        temporary = (
            errors.SerializationFailure,
            errors.DeadlockDetected,
            errors.LockNotAvailable,
            errors.QueryCanceled,
            errors.DuplicateObject,  # two grants created the same login at once: look again
            errors.AdminShutdown,
            errors.CannotConnectNow,
        )
        password = str(self._conninfo(target).get("password") or "")
        label = f"postgresql `{target.name}`"
        if exc.sqlstate is None:  # no answer from a server: refused, down, cut off
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            words = redact(first, password)
            log.warning("%s: cannot reach the server: %s", label, words)
            return ProviderError(f"{label}: cannot reach the server ({words})", retryable=True)
        said = redact(exc.diag.message_primary or type(exc).__name__, password)
        retryable = isinstance(exc, temporary)
        log.warning("%s: the server answered %s: %s", label, exc.sqlstate, said)
        return ProviderError(f"{label}: the server said: {said}", retryable=retryable)


def _connect(conninfo: str, **options: Any) -> psycopg.Connection:
    """``psycopg.connect``, the driver imported at the first connection."""
    import psycopg

    return psycopg.connect(conninfo, **options)
