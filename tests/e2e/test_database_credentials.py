"""Generated database credentials end to end: signed Slack requests → the "Access
granted" DM's "Show credentials" button → an ephemeral answer with a fresh password that
works (a session opened with it uses the role) → a second click gives a new one and the
old stops working → once the access ends, the password is refused.

PostgreSQL runs in a private instance that checks passwords (tests/kit/private_postgres.py:
the machine's server trusts 127.0.0.1, so it would accept any password); MariaDB is the
machine's own. Refusals: someone else's request id (a forged button value) and a grant
that has ended get no password, and no password is set."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pymysql
import pytest

from providers.mysql import MysqlProvider
from providers.postgresql import PostgresProvider
from tests.conftest import ALICE, BOB, Bot
from tests.e2e.helpers import buttons, click, latest, submit
from tests.e2e.test_postgresql import AUTO_APPROVE
from tests.kit.configs import roles_yaml, target
from tests.kit.mysql_server import MyServer
from tests.kit.postgres_server import PgServer
from tests.kit.private_postgres import PrivatePostgres

DSN_ENV = "JIT_DB_DSN"
BOT_PASSWORD = "bot-password-3f2e1d0c9b8a"


@pytest.fixture(scope="module")
def instance() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    yield server
    server.stop()


@pytest.fixture
def pg(instance: PrivatePostgres) -> Iterator[PgServer]:
    server = PgServer(instance.url)
    server.sql(f"ALTER ROLE {server.bot} PASSWORD '{BOT_PASSWORD}'")
    yield server
    server.close()


def _bot_dsn(pg: PgServer, instance: PrivatePostgres) -> str:
    """The bot's own URL: over TCP, with its password, as in production."""
    return f"postgresql://{pg.bot}:{BOT_PASSWORD}@127.0.0.1:{instance.port}/{pg.database}"


def _generated(provider: str, template: str, *groups: str, **more: str) -> str:
    return target(
        provider,
        name="orders",
        dsn_env=DSN_ENV,
        grant_roles="[" + ", ".join(f'"{g}"' for g in groups) + "]",
        login_template=f'"{template}"',
        credentials="generated",
        **more,
    )


@pytest.fixture
def pg_bot(
    make_bot: Callable[..., Bot], pg: PgServer, instance: PrivatePostgres
) -> Callable[..., Bot]:
    """prod-support (staging) grants readers with generated credentials; db-admin (dev)
    grants readers and writers, external credentials."""
    readers, writers = pg.group("readers"), pg.group("writers")

    def start(**fields: str) -> Bot:
        generated = _generated("postgresql", pg.template, readers, **fields)
        external = target(
            "postgresql",
            name="orders",
            dsn_env=DSN_ENV,
            grant_roles=f'["{readers}", "{writers}"]',
            login_template=f'"{pg.template}"',
        )
        return make_bot(
            roles=roles_yaml(prod=generated, staging=generated, db_prod=external, db_dev=external),
            approvers=AUTO_APPROVE,
            providers={"postgresql": PostgresProvider({DSN_ENV: _bot_dsn(pg, instance)})},
        )

    return start


def show_credentials(bot: Bot, user: str, request_id: str) -> dict[str, Any]:
    """Click "Show credentials" as ``user``; the answer the bot sent back."""
    reply = bot.sim.block_action(user, "show_credentials", request_id)
    assert reply.status == 200, reply
    answer = bot.slack.wait_for_response(name=reply.response_url_name)
    bot.settle()
    return answer


def _shown(answer: dict[str, Any]) -> dict[str, str]:
    """host, port, database, user and password, as the ephemeral answer shows them."""
    assert answer["response_type"] == "ephemeral", answer
    text = "\n".join(b["text"]["text"] for b in answer["blocks"] if b["type"] == "section")
    return {k: v for k, v in re.findall(r"(host|port|database|user|password) `([^`]*)`", text)}


def _pg_session(shown: dict[str, str]) -> psycopg.Connection:
    return psycopg.connect(
        host=shown["host"],
        port=shown["port"],
        dbname=shown["database"],
        user=shown["user"],
        password=shown["password"],
        autocommit=True,
        connect_timeout=3,
    )


def _reads_orders(session: psycopg.Connection) -> int:
    row = session.execute("SELECT count(*) FROM orders").fetchone()
    assert row is not None
    return int(row[0])


def _stored(pg: PgServer, login: str) -> tuple[str | None, Any]:
    """What the server keeps for the login: its password verifier and VALID UNTIL."""
    [(verifier, until)] = pg.sql(
        "SELECT rolpassword, rolvaliduntil FROM pg_authid WHERE rolname = %s", login
    )
    return verifier, until


def test_show_credentials_gives_a_working_password_a_new_one_each_click_refused_after_expiry(
    pg_bot: Callable[..., Bot], pg: PgServer
) -> None:
    bot = pg_bot()
    alice = pg.login("alice@example.com")
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-7")
    granted = next(m for m in bot.dms_to(ALICE) if "Access granted" in m["text"])
    assert "show_credentials" in [b["action_id"] for b in buttons(granted)]

    first = _shown(show_credentials(bot, ALICE, request_id))

    assert first["user"] == alice and first["database"] == pg.database
    with _pg_session(first) as session:
        assert _reads_orders(session) == 2
    # The server holds a SCRAM verifier, made by the client: never the password itself.
    verifier, until = _stored(pg, alice)
    assert verifier is not None and verifier.startswith("SCRAM-SHA-256$")
    assert first["password"] not in verifier
    assert until == bot.service.get(request_id).expires_at

    second = _shown(show_credentials(bot, ALICE, request_id))

    assert second["password"] != first["password"]
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        _pg_session(first)
    with _pg_session(second) as session:
        assert _reads_orders(session) == 2
    events = bot.service.audit_events(request_id)
    shown = [e for e in events if e.action == "credentials_shown"]
    assert [(e.actor, e.details["logins"]) for e in shown] == [(ALICE, [alice])] * 2

    bot.clock.advance(timedelta(hours=1))
    bot.service.sweep()
    bot.settle()

    assert bot.service.get(request_id).status == "revoked"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        _pg_session(second)
    # The Access granted DM lost its buttons with the access.
    assert not buttons(latest(bot.slack.message(granted["channel"], granted["ts"])))


def test_the_server_itself_refuses_the_password_after_valid_until_when_the_bot_never_revokes(
    pg_bot: Callable[..., Bot], pg: PgServer
) -> None:
    # The bot's clock runs two hours behind the server's: to the bot the hour-long grant is
    # still on when the server's clock has passed its end, as if the bot had been down.
    bot = pg_bot()
    bot.clock.advance(timedelta(hours=-2))
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-8")

    shown = _shown(show_credentials(bot, ALICE, request_id))

    assert bot.service.get(request_id).status == "active"
    assert pg.member(pg.prefix + "readers", shown["user"])
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        _pg_session(shown)


def test_an_extension_moves_the_passwords_valid_until_and_it_keeps_working(
    pg_bot: Callable[..., Bot], pg: PgServer
) -> None:
    bot = pg_bot()
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-12")
    shown = _shown(show_credentials(bot, ALICE, request_id))
    first_end = bot.service.get(request_id).expires_at
    assert first_end is not None

    answer = bot.command(ALICE, f"extend {request_id} 2h the migration runs long")["text"]
    bot.settle()

    assert "extending" in answer, answer
    assert bot.service.get(request_id).expires_at == first_end + timedelta(hours=2)
    assert _stored(pg, shown["user"])[1] == first_end + timedelta(hours=2)
    with _pg_session(shown) as session:
        assert _reads_orders(session) == 2


def test_someone_elses_request_id_and_an_ended_grant_get_no_password(
    pg_bot: Callable[..., Bot], pg: PgServer
) -> None:
    bot = pg_bot()
    alice = pg.login("alice@example.com")
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-9")

    forged = show_credentials(bot, BOB, request_id)

    assert "Only the person who holds" in forged["text"]
    assert "password" not in str(forged.get("blocks", "")).lower()
    assert _stored(pg, alice) == (None, None)

    click(bot, ALICE, "end_access", request_id)
    ended = show_credentials(bot, ALICE, request_id)

    assert "not active" in ended["text"]
    assert not pg.exists(alice)
    actions = [e.action for e in bot.service.audit_events(request_id)]
    assert "credentials_shown" not in actions


def test_a_login_the_bot_did_not_create_keeps_its_password_and_valid_until_throughout(
    pg_bot: Callable[..., Bot], pg: PgServer
) -> None:
    alice = pg.login("alice@example.com")
    bot = pg_bot()
    dba_until = bot.clock.now() + timedelta(minutes=30)
    pg.sql(f"CREATE ROLE \"{alice}\" LOGIN PASSWORD 'the-dbas-own' VALID UNTIL '{dba_until}'")
    before = _stored(pg, alice)
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-13")
    assert bot.service.get(request_id).status == "active"

    answer = show_credentials(bot, ALICE, request_id)

    assert "was not created by jit-bot" in answer["text"]
    assert "password `" not in str(answer.get("blocks", ""))
    bot.command(ALICE, f"extend {request_id} 2h the migration runs long")
    bot.settle()
    assert bot.service.get(request_id).status == "active"
    assert _stored(pg, alice) == before

    click(bot, ALICE, "end_access", request_id)

    assert bot.service.get(request_id).status == "revoked"
    assert not pg.member(pg.prefix + "readers", alice)
    assert _stored(pg, alice) == before, "the DBA's password and its end are the DBA's"


def test_a_grant_with_external_credentials_has_no_button_and_refuses_the_click(
    pg_bot: Callable[..., Bot], pg: PgServer
) -> None:
    bot = pg_bot()
    request_id = submit(bot, ALICE, "db-admin dev 1h INC-10")
    granted = next(m for m in bot.dms_to(ALICE) if "Access granted" in m["text"])
    assert "show_credentials" not in [b["action_id"] for b in buttons(granted)]

    answer = show_credentials(bot, ALICE, request_id)

    assert "no database login whose password jit-bot makes" in answer["text"]
    assert _stored(pg, pg.login("alice@example.com")) == (None, None)


# ----------------------------------------------------------------------------- MariaDB


@pytest.fixture
def my() -> Iterator[MyServer]:
    server = MyServer()
    yield server
    server.close()


def _my_session(shown: dict[str, str]) -> Any:
    return pymysql.connect(
        host=shown["host"],
        port=int(shown["port"]),
        user=shown["user"],
        password=shown["password"],
        connect_timeout=3,
    )


def _my_reads(session: Any, role: str, database: str) -> int:
    with session.cursor() as cursor:
        cursor.execute(f"SET ROLE `{role}`")
        cursor.execute(f"SELECT count(*) FROM `{database}`.orders")
        return int(cursor.fetchone()[0])


def test_mariadb_generated_credentials_work_change_each_click_and_are_refused_after_expiry(
    make_bot: Callable[..., Bot], my: MyServer
) -> None:
    readers = my.group("readers")
    unit = _generated("mysql", my.template, readers)
    bot = make_bot(
        roles=roles_yaml(prod=unit, staging=unit, db_prod=unit, db_dev=unit),
        approvers=AUTO_APPROVE,
        providers={"mysql": MysqlProvider({DSN_ENV: my.dsn()}, marker_role=my.marker)},
    )
    alice = my.login("alice@example.com")
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-11")
    assert my.holds(alice, readers)

    first = _shown(show_credentials(bot, ALICE, request_id))

    assert first["user"] == alice and first["database"] == my.database
    with _my_session(first) as session:
        assert _my_reads(session, readers, my.database) == 2

    second = _shown(show_credentials(bot, ALICE, request_id))

    assert second["password"] != first["password"]
    with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
        _my_session(first)
    with _my_session(second) as session:
        assert _my_reads(session, readers, my.database) == 2

    bot.clock.advance(timedelta(hours=1))
    bot.service.sweep()
    bot.settle()

    assert bot.service.get(request_id).status == "revoked"
    with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
        _my_session(second)
