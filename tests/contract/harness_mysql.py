"""The mysql provider under the contract, on the real MariaDB server: each target a role
of the test's own (tests/kit/mysql_server.py), accounts created by the bot (generated
credentials), the bot a least-privilege account. ``holds`` reads SHOW GRANTS."""

from __future__ import annotations

from typing import Any

from providers.base import Principal, TargetSpec
from providers.mysql import RETRY, MysqlProvider, MysqlTarget
from tests.contract.harnesses import ProviderHarness
from tests.kit.mysql_server import MyServer

DSN_ENV = "JIT_CONTRACT_MYSQL_DSN"


class MysqlHarness(ProviderHarness):
    id = "mysql"

    def __init__(self) -> None:
        self.server = MyServer()
        self.provider = MysqlProvider(
            {DSN_ENV: self.server.dsn()}, sleep=lambda _: None, marker_role=self.server.marker
        )
        self._refusals = 0
        connect = self.provider.calls.connect

        def connect_or_refuse(**kwargs: Any) -> Any:
            if self._refusals:
                self._refusals -= 1
                kwargs["port"] = 1  # nothing listens there: a real refused connection
            return connect(**kwargs)

        self.provider.calls.connect = connect_or_refuse

    def _target(self, name: str, role: str) -> MysqlTarget:
        return MysqlTarget(
            provider="mysql",
            name=f"contract-{name}",
            dsn_env=DSN_ENV,
            grant_roles=[role],
            login_template=self.server.template,
            credentials="generated",
        )

    def make_target(self, name: str) -> TargetSpec:
        role = self.server.prefix + name
        if not self.server.exists(role):
            self.server.group(name)
        return self._target(name, role)

    def make_invalid_target(self) -> tuple[TargetSpec, str]:
        missing = self.server.prefix + "missing"
        return self._target("missing", missing), f"role {missing} does not exist"

    def holds(self, principal: Principal, target: TargetSpec) -> bool:
        assert isinstance(target, MysqlTarget)
        login = self.server.login(principal.email)
        return all(self.server.holds(login, role) for role in target.grant_roles)

    def break_next_grant(self, target: TargetSpec) -> None:
        self._refusals = RETRY.attempts

    def close(self) -> None:
        self.server.close()
