"""Drift on the real database servers, end to end (``bot.runtime.drift.run()``): a grant
made from a signed Slack request is explained by its login, whatever the login template
keeps of the email; a membership the bot granted that no request explains is found and,
with ``revoke_unknown``, taken from exactly that login; a grant the server lost is
missing. The logins here are named ``{local}``: the email cannot be rebuilt from them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest

from providers.base import Provider
from providers.mysql import MysqlProvider
from providers.postgresql import PostgresProvider
from tests.conftest import ALICE, Bot
from tests.e2e.helpers import submit
from tests.e2e.test_postgresql import AUTO_APPROVE
from tests.kit.configs import roles_yaml, target
from tests.kit.mysql_server import MyServer
from tests.kit.postgres_server import PgServer

DSN_ENV = "JIT_DB_DSN"
REVOKE_UNKNOWN = AUTO_APPROVE + "  revoke_unknown: true\n"


@pytest.fixture
def pg() -> Iterator[PgServer]:
    server = PgServer()
    yield server
    server.close()


@pytest.fixture
def my() -> Iterator[MyServer]:
    server = MyServer()
    yield server
    server.close()


def _local_bot(
    make_bot: Callable[..., Bot], provider: Provider, prefix: str, role: str, **fields: str
) -> Bot:
    """A bot granting ``role`` to logins named ``<prefix>{local}``, with revoke_unknown."""
    unit = target(
        provider.name,
        name="orders",
        dsn_env=DSN_ENV,
        grant_roles=f'["{role}"]',
        login_template=f'"{prefix}{{local}}"',
        **fields,
    )
    return make_bot(
        roles=roles_yaml(prod=unit, staging=unit, db_prod=unit, db_dev=unit),
        approvers=REVOKE_UNKNOWN,
        providers={provider.name: provider},
    )


def _drift_actions(bot: Bot) -> list[str]:
    return [e.action for e in bot.service.audit_events() if e.action.startswith("drift_")]


def test_postgresql_drift_matches_logins_removes_the_unexplained_and_finds_the_missing(
    make_bot: Callable[..., Bot], pg: PgServer
) -> None:
    readers = pg.group("readers")
    alice, carol = pg.prefix + "alice", pg.prefix + "carol"
    pg.sql(f'CREATE ROLE "{alice}" LOGIN')  # the DBA's: no comment names her email
    pg.sql(f'CREATE ROLE "{carol}" LOGIN')
    bot = _local_bot(make_bot, PostgresProvider({DSN_ENV: pg.dsn()}), pg.prefix, readers)
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-1")
    assert bot.service.get(request_id).status == "active"

    assert bot.runtime.drift.run() == []
    assert _drift_actions(bot) == []
    assert pg.member(readers, alice)

    # Carol's membership was granted by the bot, for a request its database lost.
    with psycopg.connect(pg.dsn(), autocommit=True) as as_bot:
        as_bot.execute(f'GRANT "{readers}" TO "{carol}"'.encode())
    findings = bot.runtime.drift.run()

    assert [(f.kind, f.email) for f in findings] == [("unexplained", carol)]
    assert not pg.member(readers, carol), "revoke_unknown took it from carol's login"
    assert pg.member(readers, alice)
    assert _drift_actions(bot) == ["drift_detected", "drift_revoked"]

    pg.sql(f'REVOKE "{readers}" FROM "{alice}"')  # by hand
    findings = bot.runtime.drift.run()

    assert [(f.kind, f.email, f.request_id) for f in findings] == [
        ("missing", "alice@example.com", request_id)
    ]


def test_mysql_drift_matches_accounts_removes_the_unexplained_and_finds_the_missing(
    make_bot: Callable[..., Bot], my: MyServer
) -> None:
    readers = my.group("readers")
    alice, carol = my.prefix + "alice", my.prefix + "carol"
    provider = MysqlProvider({DSN_ENV: my.dsn()}, marker_role=my.marker)
    bot = _local_bot(make_bot, provider, my.prefix, readers, credentials="generated")
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-1")
    assert bot.service.get(request_id).status == "active"
    assert my.holds(alice, readers)

    assert bot.runtime.drift.run() == []
    assert _drift_actions(bot) == []

    # An account the bot made for carol, for a request its database lost.
    my.sql(f"CREATE USER '{carol}'@'%'")
    my.sql(f"GRANT `{my.marker}` TO '{carol}'@'%'")
    my.sql(f"GRANT `{readers}` TO '{carol}'@'%'")
    findings = bot.runtime.drift.run()

    assert [(f.kind, f.email) for f in findings] == [("unexplained", carol)]
    assert not my.holds(carol, readers), "revoke_unknown took it from carol's account"
    assert my.holds(alice, readers)
    assert _drift_actions(bot) == ["drift_detected", "drift_revoked"]

    my.sql(f"REVOKE `{readers}` FROM '{alice}'@'%'")  # by hand
    findings = bot.runtime.drift.run()

    assert [(f.kind, f.email, f.request_id) for f in findings] == [
        ("missing", "alice@example.com", request_id)
    ]
