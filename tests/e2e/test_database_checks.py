"""The database providers' checks and faults on the real servers: `validate(live=True)`
(what `jit-bot check --live` runs), a server that is down, and drift's clean-up."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from providers.base import GrantContext, Principal, ProviderError
from providers.mysql import MysqlProvider, MysqlTarget
from providers.postgresql import PostgresProvider, PostgresTarget
from tests.kit.docs import example_targets
from tests.kit.mysql_server import SERVER_URL as MYSQL_ROOT
from tests.kit.mysql_server import MyServer
from tests.kit.postgres_server import PgServer

ALICE = Principal(slack_user_id="UALICE", email="alice@example.com")
CONTEXT = GrantContext("R-1", "db-admin", "prod", "INC-1", datetime.now(UTC) + timedelta(hours=1))


@pytest.fixture
def pg() -> Iterator[PgServer]:
    server = PgServer()
    yield server
    server.close()


def _target(pg: PgServer, *roles: str) -> PostgresTarget:
    return PostgresTarget(
        provider="postgresql",
        name="orders",
        dsn_env="DSN",
        grant_roles=list(roles),
        login_template=pg.template,
    )


def test_the_docs_examples_are_valid_targets() -> None:
    postgres, mysql = (
        example_targets("databases.md", "postgresql"),
        example_targets("databases.md", "mysql"),
    )
    assert postgres and mysql
    for fields in postgres:
        PostgresTarget.model_validate(fields)
    for fields in mysql:
        MysqlTarget.model_validate(fields)


def test_a_live_check_passes_the_least_privilege_login_and_warns_about_a_superuser(
    pg: PgServer,
) -> None:
    target = _target(pg, pg.group("readers"))

    assert PostgresProvider({"DSN": pg.dsn()}).validate(target, live=True) == []
    [warning] = PostgresProvider({"DSN": pg.dsn("postgres")}).validate(target, live=True)
    assert "connects as the superuser postgres" in warning


def test_a_live_check_names_each_privilege_the_bot_lacks(pg: PgServer) -> None:
    target = _target(pg, pg.group("readers"))
    pg.sql(f"REVOKE pg_signal_backend FROM {pg.bot}")
    pg.sql(f"ALTER ROLE {pg.bot} NOCREATEROLE")

    with pytest.raises(ProviderError) as raised:
        PostgresProvider({"DSN": pg.dsn()}).validate(target, live=True)

    assert "lacks CREATEROLE" in str(raised.value)
    assert "cannot end sessions at revoke" in str(raised.value)
    assert f"may not grant role {pg.prefix}readers" in str(raised.value)


@pytest.fixture
def my() -> Iterator[MyServer]:
    server = MyServer()
    yield server
    server.close()


def _mysql_target(my: MyServer, *roles: str, credentials: str = "external") -> MysqlTarget:
    return MysqlTarget.model_validate(
        {
            "provider": "mysql",
            "name": "orders",
            "dsn_env": "DSN",
            "grant_roles": list(roles),
            "login_template": my.template,
            "credentials": credentials,
        }
    )


def test_a_mysql_live_check_passes_the_least_privilege_account_and_warns_about_root(
    my: MyServer,
) -> None:
    target = _mysql_target(my, my.group("readers"), credentials="generated")
    provider = MysqlProvider({"DSN": my.dsn()}, marker_role=my.marker)

    assert provider.validate(target, live=True) == []
    [warning] = MysqlProvider({"DSN": MYSQL_ROOT}).validate(target, live=True)
    assert "connects with ALL PRIVILEGES" in warning


def test_a_mysql_live_check_names_a_missing_role_and_one_the_bot_may_not_grant(
    my: MyServer,
) -> None:
    ungrantable = my.prefix + "auditors"
    my.sql(f"CREATE ROLE `{ungrantable}`")  # exists, but not WITH ADMIN OPTION to the bot
    target = _mysql_target(my, my.group("readers"), my.prefix + "missing", ungrantable)

    with pytest.raises(ProviderError) as raised:
        MysqlProvider({"DSN": my.dsn()}).validate(target, live=True)

    said = str(raised.value)
    assert f"role {my.prefix}missing does not exist" in said
    assert f"may not grant role {ungrantable} (needs WITH ADMIN OPTION or ROLE_ADMIN)" in said
    assert f"role {my.prefix}readers" not in said


def test_a_mariadb_live_check_wants_admin_option_on_each_role_even_with_all_privileges(
    my: MyServer,
) -> None:
    ungrantable = my.prefix + "auditors"
    my.sql(f"CREATE ROLE `{ungrantable}`")
    my.sql(f"GRANT ALL PRIVILEGES ON *.* TO '{my.bot}'@'%'")
    my.sql(f"REVOKE `{my.marker}` FROM '{my.bot}'@'%'")
    target = _mysql_target(my, my.group("readers"), ungrantable, credentials="generated")
    provider = MysqlProvider({"DSN": my.dsn()}, marker_role=my.marker)

    with pytest.raises(ProviderError) as raised:
        provider.validate(target, live=True)

    said = str(raised.value)
    assert f"may not grant role {ungrantable} (needs WITH ADMIN OPTION" in said
    assert f"may not grant role {my.marker}, which marks the accounts it creates" in said
    assert f"role {my.prefix}readers" not in said
    # What the check says is what the server does.
    my.account(my.login(ALICE.email), "alices-own-password")
    with pytest.raises(ProviderError, match="the server said"):
        provider.grant(ALICE, _mysql_target(my, ungrantable), CONTEXT)


def test_a_mysql_live_check_names_each_privilege_the_bot_lacks(my: MyServer) -> None:
    target = _mysql_target(my, my.group("readers"), credentials="generated")
    my.sql(f"REVOKE CREATE USER, PROCESS, CONNECTION ADMIN ON *.* FROM '{my.bot}'@'%'")

    with pytest.raises(ProviderError) as raised:
        MysqlProvider({"DSN": my.dsn()}).validate(target, live=True)

    assert "lacks CREATE USER" in str(raised.value)
    assert "lacks PROCESS, so it cannot see other accounts' connections" in str(raised.value)
    assert "cannot kill other accounts' connections" in str(raised.value)
    assert my.bot_password not in str(raised.value)


def test_a_server_that_is_down_is_a_retryable_error_without_the_password() -> None:
    waits: list[float] = []
    provider = PostgresProvider(
        {"DSN": "postgresql://jit_bot:hunter2-secret@127.0.0.1:1/orders"}, sleep=waits.append
    )
    target = PostgresTarget(provider="postgresql", name="orders", dsn_env="DSN", grant_roles=["r"])

    with pytest.raises(ProviderError) as raised:
        provider.revoke(ALICE, target, CONTEXT)

    assert raised.value.retryable
    assert "cannot reach the server" in str(raised.value)
    assert "hunter2" not in str(raised.value)
    assert len(waits) == 3  # four attempts under RETRY


def test_inventory_lists_what_the_bot_granted_and_never_standing_membership(
    pg: PgServer,
) -> None:
    readers = pg.group("readers")
    provider = PostgresProvider({"DSN": pg.dsn()})
    target = _target(pg, readers)
    provider.grant(ALICE, target, CONTEXT)
    bob = pg.login("bob@example.com")
    pg.sql(f'CREATE ROLE "{bob}" LOGIN')
    pg.sql(f'GRANT "{readers}" TO "{bob}"')  # the DBA's: standing

    [holding] = provider.inventory(target) or []

    assert holding.email == "alice@example.com"
    provider.revoke(Principal(slack_user_id="", email=holding.email), holding.unit, CONTEXT)
    assert not pg.member(readers, pg.login("alice@example.com"))
    assert pg.member(readers, bob)


def test_two_grants_creating_one_mysql_account_at_once_both_succeed(my: MyServer) -> None:
    """Two requests of one person granted at the same moment race to CREATE USER; the
    loser's 1396 ("Operation CREATE USER failed") is the account having just been made.
    Raced thirty times: a pair races about one time in four or five here."""
    readers = my.group("readers")
    target = _mysql_target(my, readers, credentials="generated")
    provider = MysqlProvider({"DSN": my.dsn()}, marker_role=my.marker)
    failures: list[str] = []

    def grant(who: Principal, start: threading.Barrier) -> None:
        start.wait()
        try:
            provider.grant(who, target, CONTEXT)
        except ProviderError as exc:
            failures.append(str(exc))

    for attempt in range(30):
        who = Principal(slack_user_id="U1", email=f"p{attempt}@example.com")
        start = threading.Barrier(2)
        pair = [threading.Thread(target=grant, args=(who, start)) for _ in range(2)]
        for thread in pair:
            thread.start()
        for thread in pair:
            thread.join()

    assert failures == []
    assert all(my.holds(my.login(f"p{n}@example.com"), readers) for n in range(30))
    assert all(my.holds(my.login(f"p{n}@example.com"), my.marker) for n in range(30))
