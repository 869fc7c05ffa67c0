"""The postgresql provider under the contract, on the real PostgreSQL server: each
target a group role of the test's own (tests/kit/postgres_server.py), the bot a
least-privilege login. ``holds`` asks the server (pg_auth_members), not the provider."""

from __future__ import annotations

import psycopg

from providers.base import Principal, TargetSpec
from providers.postgresql import PostgresProvider, PostgresTarget
from providers.postgresql.calls import RETRY
from tests.contract.harnesses import ProviderHarness
from tests.kit.postgres_server import PgServer

DSN_ENV = "JIT_CONTRACT_PG_DSN"
#: Nothing listens here: a connection to it is refused, as by a server that is down.
DOWN = "postgresql://nobody@127.0.0.1:1/none"


class PostgresHarness(ProviderHarness):
    id = "postgresql"

    def __init__(self) -> None:
        self.server = PgServer()
        self.environ = {DSN_ENV: self.server.dsn()}
        self.provider = PostgresProvider(self.environ, sleep=lambda _: None)
        self._refusals = 0
        connect = psycopg.connect

        def connect_or_refuse(conninfo: str, **kwargs: object) -> psycopg.Connection:
            if self._refusals:
                self._refusals -= 1
                conninfo = DOWN  # a real refused connection, not a raised stand-in
            return connect(conninfo, **kwargs)  # type: ignore[arg-type]

        self.provider.calls.connect = connect_or_refuse  # type: ignore[method-assign]

    def make_target(self, name: str) -> TargetSpec:
        role = self.server.prefix + name
        if not self.server.exists(role):
            self.server.group(name)
        return PostgresTarget(
            provider="postgresql",
            name=f"contract-{name}",
            dsn_env=DSN_ENV,
            grant_roles=[role],
            login_template=self.server.template,
        )

    def make_invalid_target(self) -> tuple[TargetSpec, str]:
        """A group role the server does not have."""
        missing = self.server.prefix + "missing"
        target = PostgresTarget(
            provider="postgresql",
            name="contract-missing",
            dsn_env=DSN_ENV,
            grant_roles=[missing],
            login_template=self.server.template,
        )
        return target, f"role {missing} does not exist"

    def holds(self, principal: Principal, target: TargetSpec) -> bool:
        assert isinstance(target, PostgresTarget)
        login = self.server.login(principal.email)
        return all(self.server.member(group, login) for group in target.grant_roles)

    def break_next_grant(self, target: TargetSpec) -> None:
        """Every connection of the next grant, retries included, is refused."""
        self._refusals = RETRY.attempts

    def close(self) -> None:
        self.server.close()
