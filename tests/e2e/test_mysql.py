"""MySQL/MariaDB end to end, on the real MariaDB server: signed Slack requests →
approval → the person's account holds the role (SHOW GRANTS) and a connection opened
as them can use it → expiry → that very connection is killed and a new one cannot use
the role. The bot connects as a least-privilege account (tests/kit/mysql_server.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pymysql
import pytest

from providers.mysql import MysqlProvider
from tests.conftest import ALICE, BOB, Bot
from tests.e2e.helpers import click, submit
from tests.e2e.test_postgresql import AUTO_APPROVE
from tests.fakes.processes import free_port
from tests.fakes.slack_api import FakeSlack
from tests.kit.configs import APPROVERS_YAML, roles_yaml, target
from tests.kit.mysql_server import MyServer

DSN_ENV = "JIT_MYSQL_DSN"
PASSWORD = "alices-own-password"  # set by the test's DBA: credentials are external


@pytest.fixture
def my() -> Iterator[MyServer]:
    server = MyServer()
    yield server
    server.close()


def mysql_target(my: MyServer, *roles: str, name: str = "orders", **fields: str) -> str:
    return target(
        "mysql",
        name=name,
        dsn_env=DSN_ENV,
        grant_roles="[" + ", ".join(roles) + "]",
        **{"login_template": f'"{my.template}"', **fields},
    )


@pytest.fixture
def mysql_bot(make_bot: Callable[..., Bot], my: MyServer) -> Callable[..., Bot]:
    """prod-support grants readers; db-admin readers and writers."""
    readers, writers = my.group("readers"), my.group("writers")

    def start(approvers: str = APPROVERS_YAML) -> Bot:
        read, write = mysql_target(my, readers), mysql_target(my, readers, writers)
        provider = MysqlProvider({DSN_ENV: my.dsn()}, marker_role=my.marker)
        return make_bot(
            roles=roles_yaml(prod=read, staging=read, db_prod=write, db_dev=write),
            approvers=approvers,
            providers={"mysql": provider},
        )

    return start


def _reads_orders(session: Any, role: str, database: str) -> int:
    """SET ROLE, then read: on MariaDB the bot sets no default role (README)."""
    with session.cursor() as cursor:
        cursor.execute(f"SET ROLE `{role}`")
        cursor.execute(f"SELECT count(*) FROM `{database}`.orders")
        return int(cursor.fetchone()[0])


def test_an_approved_grant_works_in_a_connection_and_expiry_kills_that_very_connection(
    mysql_bot: Callable[..., Bot], my: MyServer
) -> None:
    alice, readers = my.login("alice@example.com"), my.prefix + "readers"
    my.account(alice, PASSWORD)
    bot = mysql_bot()
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-42")
    assert f"MySQL `orders`: role `{readers}`" in str(bot.dms_to(BOB)[-1]["blocks"])

    click(bot, BOB, "approve", request_id)

    assert my.holds(alice, readers)
    session = my.connect(alice, PASSWORD)
    assert _reads_orders(session, readers, my.database) == 2

    bot.clock.advance(timedelta(hours=1))
    bot.service.sweep()
    bot.settle()

    assert bot.service.get(request_id).status == "revoked"
    assert not my.holds(alice, readers)
    with pytest.raises(pymysql.err.OperationalError):
        _reads_orders(session, readers, my.database)  # killed by the server
    assert my.sessions_of(alice) == 0
    # The DBA's account stays, and may log in, but no longer take the role.
    again = my.connect(alice, PASSWORD)
    with pytest.raises(
        pymysql.err.OperationalError, match=r"Invalid role|Access denied|not granted"
    ):
        _reads_orders(again, readers, my.database)
    again.close()


def test_a_revoke_that_cannot_see_the_persons_connections_fails_loudly_rather_than_kill_none(
    mysql_bot: Callable[..., Bot], my: MyServer
) -> None:
    alice, readers = my.login("alice@example.com"), my.prefix + "readers"
    my.account(alice, PASSWORD)
    bot = mysql_bot(AUTO_APPROVE)
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-7")
    session = my.connect(alice, PASSWORD)
    assert _reads_orders(session, readers, my.database) == 2
    # Without PROCESS the bot's account sees no one else's rows in the process list.
    my.sql(f"REVOKE PROCESS ON *.* FROM '{my.bot}'@'%'")

    click(bot, ALICE, "end_access", request_id)

    request = bot.service.get(request_id)
    assert request.status == "revoke_failed"
    assert "PROCESS" in str(request.error)
    assert not my.holds(alice, readers), "the role itself is taken away all the same"
    assert my.sessions_of(alice) == 1
    session.close()


def test_overlapping_grants_keep_the_shared_role_until_the_last_one_ends(
    mysql_bot: Callable[..., Bot], my: MyServer
) -> None:
    alice = my.login("alice@example.com")
    readers, writers = my.prefix + "readers", my.prefix + "writers"
    my.account(alice, PASSWORD)
    bot = mysql_bot(AUTO_APPROVE)
    support = submit(bot, ALICE, "prod-support staging 1h INC-1")
    admin = submit(bot, ALICE, "db-admin dev 1h INC-2")

    click(bot, ALICE, "end_access", admin)

    assert my.holds(alice, readers) and not my.holds(alice, writers)
    click(bot, ALICE, "end_access", support)
    assert not my.holds(alice, readers)


def test_differently_named_targets_that_grant_one_role_share_it_until_the_last_grant_ends(
    make_bot: Callable[..., Bot], my: MyServer
) -> None:
    alice = my.login("alice@example.com")
    readers, writers = my.group("readers"), my.group("writers")
    my.account(alice, PASSWORD)
    read = mysql_target(my, readers, name="orders-read")
    admin = mysql_target(my, readers, writers, name="orders-admin")
    bot = make_bot(
        roles=roles_yaml(prod=read, staging=read, db_prod=admin, db_dev=admin),
        approvers=AUTO_APPROVE,
        providers={"mysql": MysqlProvider({DSN_ENV: my.dsn()}, marker_role=my.marker)},
    )
    support = submit(bot, ALICE, "prod-support staging 1h INC-1")
    fix = submit(bot, ALICE, "db-admin dev 1h INC-2")
    actions = [e.action for e in bot.service.audit_events(fix)]
    assert "standing_access_found" not in actions, "readers is the other grant's, not standing"

    click(bot, ALICE, "end_access", support)

    assert my.holds(alice, readers), "readers is still needed by orders-admin"
    click(bot, ALICE, "end_access", fix)
    assert not my.holds(alice, readers) and not my.holds(alice, writers)


def test_a_role_held_before_is_left_alone(mysql_bot: Callable[..., Bot], my: MyServer) -> None:
    alice, readers = my.login("alice@example.com"), my.prefix + "readers"
    my.account(alice, PASSWORD)
    my.sql(f"GRANT `{readers}` TO '{alice}'@'%'")
    bot = mysql_bot(AUTO_APPROVE)
    request_id = submit(bot, ALICE, "db-admin dev 1h INC-3")

    click(bot, ALICE, "end_access", request_id)

    assert my.holds(alice, readers)
    assert not my.holds(alice, my.prefix + "writers")


@pytest.mark.parametrize(
    ("local", "setup", "why"),
    [
        ("team", "CREATE ROLE `{login}`; GRANT `{login}` TO '{other}'@'%'", "it is a role"),
        ("bot", "", "it is jit-bot's own account"),
    ],
    ids=["a role with members", "the bot's own account"],
)
def test_a_login_template_that_names_a_role_or_the_bot_fails_the_grant(
    make_bot: Callable[..., Bot], my: MyServer, slack: FakeSlack, local: str, setup: str, why: str
) -> None:
    readers, other, login = my.group("readers"), my.login("carol"), my.login(local)
    my.account(other, PASSWORD)
    for statement in filter(None, setup.format(login=login, other=other).split("; ")):
        my.sql(statement)
    slack.add_user("UTEAM", f"{local}@example.com", local)
    unit = mysql_target(
        my, readers, login_template=f'"{my.prefix}{{local}}"', credentials="generated"
    )
    bot = make_bot(
        roles=roles_yaml(prod=unit, staging=unit, db_prod=unit, db_dev=unit),
        approvers=AUTO_APPROVE,
        providers={"mysql": MysqlProvider({DSN_ENV: my.dsn()}, marker_role=my.marker)},
    )

    request_id = submit(bot, "UTEAM", "db-admin dev 1h INC-14")

    assert bot.service.get(request_id).status == "failed"
    told = str(bot.dms_to("UTEAM"))
    assert f"'{login}'@'%' is not {local}@example.com's own account ({why}" in told
    # No account was made beside the role, and the bot's own is as it was.
    assert my.sql("SELECT Host FROM mysql.user WHERE User = %s", login) == [
        ("%" if local == "bot" else "",)
    ]


@pytest.mark.parametrize(
    "email",
    ["x';drop-user-root;--@example.com", "x`y@example.com", "x\\'@example.com", "x y@example.com"],
)
def test_an_email_that_is_not_a_plain_account_name_fails_the_grant_and_creates_nothing(
    make_bot: Callable[..., Bot], my: MyServer, slack: FakeSlack, email: str
) -> None:
    readers = my.group("readers")
    slack.add_user("UQUOTE", email, "quote")
    unit = mysql_target(my, readers, credentials="generated")
    bot = make_bot(
        roles=roles_yaml(prod=unit, staging=unit, db_prod=unit, db_dev=unit),
        approvers=AUTO_APPROVE,
        providers={"mysql": MysqlProvider({DSN_ENV: my.dsn()}, marker_role=my.marker)},
    )

    request_id = submit(bot, "UQUOTE", "db-admin dev 1h INC-9")

    assert bot.service.get(request_id).status == "failed"
    told = str(bot.dms_to("UQUOTE"))
    assert "cannot name a database login after the email" in told
    assert "Traceback" not in told
    made = my.sql("SELECT User, Host FROM mysql.user WHERE User LIKE %s", my.prefix + "%")
    assert sorted(made) == sorted([(my.bot, "%"), (my.marker, ""), (readers, "")])
    assert my.sql("SELECT 1 FROM mysql.user WHERE User = 'root'")


def test_without_an_account_external_credentials_fail_the_grant_clearly(
    mysql_bot: Callable[..., Bot], my: MyServer
) -> None:
    bot = mysql_bot(AUTO_APPROVE)

    request_id = submit(bot, ALICE, "db-admin dev 1h INC-4")

    assert bot.service.get(request_id).status == "failed"
    assert "jit-bot does not create one" in str(bot.dms_to(ALICE))
    assert not my.exists(my.login("alice@example.com"))


def test_a_revoke_that_cannot_reach_the_server_is_revoke_failed_announced_and_swept_until_done(
    make_bot: Callable[..., Bot], my: MyServer
) -> None:
    readers, alice = my.group("readers"), my.login("alice@example.com")
    my.account(alice, PASSWORD)
    unit = target(
        "mysql",
        name="orders",
        dsn_env=DSN_ENV,
        grant_roles=f"[{readers}]",
        login_template=f'"{my.template}"',
    )
    environ = {DSN_ENV: my.dsn()}  # read at every call: a closed port is the server gone
    bot = make_bot(
        roles=roles_yaml(prod=unit, staging=unit, db_prod=unit, db_dev=unit),
        approvers=AUTO_APPROVE,
        providers={"mysql": MysqlProvider(environ, marker_role=my.marker, sleep=lambda _: None)},
    )
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-20")
    environ[DSN_ENV] = my.dsn().replace(f":{my.port}/", f":{free_port()}/")

    bot.clock.advance(timedelta(hours=1))
    bot.service.sweep()
    bot.settle()

    assert bot.service.get(request_id).status == "revoke_failed"
    assert any(f"`{request_id}` *revoke_failed*" in post for post in bot.audit_posts())
    assert my.holds(alice, readers)

    environ[DSN_ENV] = my.dsn()
    bot.clock.advance(timedelta(seconds=30))
    bot.service.sweep()
    bot.settle()

    assert bot.service.get(request_id).status == "revoked"
    assert not my.holds(alice, readers)
