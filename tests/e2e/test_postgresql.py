"""PostgreSQL end to end, on the real server: signed Slack requests → approval → the
person's login is a member of the group role and a session opened as them can use it →
expiry → that very session is terminated and a new one cannot use the role.

The bot connects as a least-privilege login (CREATEROLE, pg_signal_backend: the README's
set-up), never as the superuser; every role the test makes is under its own prefix
(tests/kit/postgres_server.py) and dropped at the end."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import psycopg
import pytest

from providers.postgresql import PostgresProvider
from tests.conftest import ALICE, BOB, Bot
from tests.e2e.helpers import click, submit
from tests.fakes.processes import free_port
from tests.fakes.slack_api import FakeSlack
from tests.kit.configs import APPROVERS_YAML, AUTO_APPROVE_ALL, roles_yaml, target
from tests.kit.postgres_server import PgServer

DSN_ENV = "JIT_PG_DSN"
# Every request approved at once, for tests about what the grant does; the Slack email
# names the database login, so only the workspace's own domain is served.
AUTO_APPROVE = (
    AUTO_APPROVE_ALL
    + """
settings:
  allowed_email_domains: [example.com]
"""
)


@pytest.fixture
def pg() -> Iterator[PgServer]:
    server = PgServer()
    yield server
    server.close()


def pg_target(pg: PgServer, *groups: str, name: str = "orders-prod", **fields: str) -> str:
    return target(
        "postgresql",
        name=name,
        dsn_env=DSN_ENV,
        grant_roles="[" + ", ".join(f'"{g}"' for g in groups) + "]",
        **{"login_template": f'"{pg.template}"', **fields},
    )


@pytest.fixture
def pg_bot(make_bot: Callable[..., Bot], pg: PgServer) -> Callable[..., Bot]:
    """A bot whose roles grant this test's group roles: prod-support gets readers (in
    prod and staging), db-admin gets readers and writers (in prod and dev)."""
    readers, writers = pg.group("readers"), pg.group("writers")

    def start(approvers: str = APPROVERS_YAML, **fields: str) -> Bot:
        read = pg_target(pg, readers, **fields)
        write = pg_target(pg, readers, writers, **fields)
        roles = roles_yaml(prod=read, staging=read, db_prod=write, db_dev=write)
        providers = {"postgresql": PostgresProvider({DSN_ENV: pg.dsn()})}
        return make_bot(roles=roles, approvers=approvers, providers=providers)

    return start


def _reads_orders(session: psycopg.Connection) -> int:
    row = session.execute("SELECT count(*) FROM orders").fetchone()
    assert row is not None
    return int(row[0])


def test_an_approved_grant_works_in_a_session_and_expiry_ends_that_very_session(
    pg_bot: Callable[..., Bot], pg: PgServer
) -> None:
    bot = pg_bot()
    readers, alice = pg.prefix + "readers", pg.login("alice@example.com")
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-42")
    assert "PostgreSQL `orders-prod`: role `" + readers + "`" in str(bot.dms_to(BOB)[-1]["blocks"])
    assert not pg.exists(alice)

    click(bot, BOB, "approve", request_id)

    assert bot.service.get(request_id).status == "active"
    assert pg.member(readers, alice)
    assert pg.sql("SELECT pg_has_role(%s, %s, 'USAGE')", alice, readers) == [(True,)]
    session = pg.connect(alice)
    assert _reads_orders(session) == 2

    bot.clock.advance(timedelta(hours=1))
    bot.service.sweep()
    bot.settle()

    assert bot.service.get(request_id).status == "revoked"
    assert not pg.member(readers, alice)
    with pytest.raises(psycopg.OperationalError):
        _reads_orders(session)  # terminated by the server, not closed by the test
    assert pg.sessions_of(alice) == 0
    # The login was the bot's own, so it is gone: no new session as alice at all.
    assert not pg.exists(alice)
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        pg.connect(alice)


def test_a_login_that_existed_before_is_kept_and_a_new_session_cannot_use_the_role(
    pg_bot: Callable[..., Bot], pg: PgServer
) -> None:
    alice = pg.login("alice@example.com")
    pg.sql(f'CREATE ROLE "{alice}" LOGIN')
    bot = pg_bot(approvers=AUTO_APPROVE)
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-1")
    assert bot.service.get(request_id).status == "active"
    session = pg.connect(alice)
    assert _reads_orders(session) == 2

    click(bot, ALICE, "end_access", request_id)

    assert bot.service.get(request_id).status == "revoked"
    with pytest.raises(psycopg.OperationalError):
        _reads_orders(session)
    assert pg.exists(alice)
    with pg.connect(alice) as again, pytest.raises(psycopg.errors.InsufficientPrivilege):
        _reads_orders(again)


def test_sessions_stay_open_when_the_target_says_end_sessions_false(
    pg_bot: Callable[..., Bot], pg: PgServer
) -> None:
    alice = pg.login("alice@example.com")
    pg.sql(f'CREATE ROLE "{alice}" LOGIN')
    bot = pg_bot(approvers=AUTO_APPROVE, end_sessions="false")
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-1")
    session = pg.connect(alice)

    click(bot, ALICE, "end_access", request_id)

    assert not pg.member(pg.prefix + "readers", alice)
    # REVOKE took effect at the session's next statement; the session itself lives on.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _reads_orders(session)
    assert pg.sessions_of(alice) == 1
    session.close()


def test_overlapping_grants_keep_the_shared_role_until_the_last_one_ends(
    pg_bot: Callable[..., Bot], pg: PgServer
) -> None:
    bot = pg_bot(approvers=AUTO_APPROVE)
    readers, writers = pg.prefix + "readers", pg.prefix + "writers"
    alice = pg.login("alice@example.com")
    support = submit(bot, ALICE, "prod-support staging 1h INC-1")
    admin = submit(bot, ALICE, "db-admin dev 1h INC-2")
    assert pg.member(readers, alice) and pg.member(writers, alice)

    click(bot, ALICE, "end_access", admin)

    assert bot.service.get(admin).status == "revoked"
    assert pg.member(readers, alice), "readers is still needed by the other grant"
    assert not pg.member(writers, alice)

    click(bot, ALICE, "end_access", support)

    assert not pg.member(readers, alice)
    assert not pg.exists(alice)


def test_differently_named_targets_that_grant_one_role_share_it_until_the_last_grant_ends(
    make_bot: Callable[..., Bot], pg: PgServer
) -> None:
    readers, writers = pg.group("readers"), pg.group("writers")
    alice = pg.login("alice@example.com")
    read = pg_target(pg, readers, name="orders-read")
    admin = pg_target(pg, readers, writers, name="orders-admin")
    bot = make_bot(
        roles=roles_yaml(prod=read, staging=read, db_prod=admin, db_dev=admin),
        approvers=AUTO_APPROVE + "  revoke_unknown: true\n",
        providers={"postgresql": PostgresProvider({DSN_ENV: pg.dsn()})},
    )
    support = submit(bot, ALICE, "prod-support staging 1h INC-1")
    fix = submit(bot, ALICE, "db-admin dev 1h INC-2")
    assert bot.runtime.drift.run() == []

    click(bot, ALICE, "end_access", fix)

    assert pg.member(readers, alice), "readers is still needed by orders-read"
    assert not pg.member(writers, alice)
    assert bot.runtime.drift.run() == []
    assert pg.member(readers, alice), "drift explains it by orders-read's grant"

    click(bot, ALICE, "end_access", support)

    assert not pg.member(readers, alice)
    assert not pg.exists(alice)


def test_standing_membership_is_left_alone(pg_bot: Callable[..., Bot], pg: PgServer) -> None:
    readers, alice = pg.prefix + "readers", pg.login("alice@example.com")
    pg.sql(f'CREATE ROLE "{alice}" LOGIN')
    pg.sql(f'GRANT "{readers}" TO "{alice}"')  # granted by the DBA, not the bot
    bot = pg_bot(approvers=AUTO_APPROVE)
    request_id = submit(bot, ALICE, "db-admin dev 1h INC-3")
    actions = [e.action for e in bot.service.audit_events(request_id)]
    assert "standing_access_found" in actions

    click(bot, ALICE, "end_access", request_id)

    assert pg.member(readers, alice)
    assert not pg.member(pg.prefix + "writers", alice)
    assert pg.exists(alice)


def test_a_membership_a_dba_granted_again_during_the_grant_is_standing_and_kept(
    pg_bot: Callable[..., Bot], pg: PgServer
) -> None:
    readers, alice = pg.prefix + "readers", pg.login("alice@example.com")
    bot = pg_bot(approvers=AUTO_APPROVE)
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-15")
    assert pg.member(readers, alice)
    # The DBA makes it theirs: the membership's grantor is no longer the bot's login.
    pg.sql(f'REVOKE "{readers}" FROM "{alice}"')
    pg.sql(f'GRANT "{readers}" TO "{alice}"')

    click(bot, ALICE, "end_access", request_id)

    assert bot.service.get(request_id).status == "revoked"
    assert pg.member(readers, alice), "the bot takes away only what it granted"
    assert pg.exists(alice)


def test_an_email_that_is_not_a_plain_login_name_fails_the_grant_and_creates_nothing(
    pg_bot: Callable[..., Bot], pg: PgServer, slack: FakeSlack
) -> None:
    slack.add_user("UQUOTE", 'x";drop-role-postgres;--@example.com', "quote")
    bot = pg_bot(approvers=AUTO_APPROVE)

    request_id = submit(bot, "UQUOTE", "db-admin dev 1h INC-9")

    assert bot.service.get(request_id).status == "failed"
    told = str(bot.dms_to("UQUOTE"))
    assert "cannot name a database login after the email" in told
    assert "Traceback" not in told
    made = pg.sql("SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", pg.prefix)
    assert sorted(r for (r,) in made) == sorted(
        pg.prefix + n for n in ("bot", "readers", "writers")
    )
    assert pg.exists("postgres")


# What a {local} login may turn out to be on the server: (the email's local part, the
# DBA's SQL, how the refusal says why).
NOT_A_PERSONS_LOGIN = {
    "a group role with members": (
        "team",
        'CREATE ROLE "{login}" LOGIN; GRANT "{login}" TO "{other}"',
        "has members",
    ),
    "a role that cannot log in": ("team", 'CREATE ROLE "{login}" NOLOGIN', "cannot log in"),
    "a superuser": ("team", 'CREATE ROLE "{login}" LOGIN SUPERUSER', "is a superuser"),
    "a role that may create roles": (
        "team",
        'CREATE ROLE "{login}" LOGIN CREATEROLE',
        "CREATEROLE",
    ),
    "a role that bypasses row security": (
        "team",
        'CREATE ROLE "{login}" LOGIN BYPASSRLS',
        "BYPASSRLS",
    ),
    "the bot's own login": ("bot", "", "is jit-bot's own login"),
    "a login the bot made for another email": (
        "team",
        'CREATE ROLE "{login}" LOGIN;'
        " COMMENT ON ROLE \"{login}\" IS 'jit-bot: created for team@elsewhere.example'",
        "jit-bot created it for team@elsewhere.example",
    ),
}


@pytest.mark.parametrize("case", list(NOT_A_PERSONS_LOGIN))
def test_a_login_template_that_names_a_role_other_than_the_persons_login_fails_the_grant(
    make_bot: Callable[..., Bot], pg: PgServer, slack: FakeSlack, case: str
) -> None:
    local, setup, why = NOT_A_PERSONS_LOGIN[case]
    readers, other, login = pg.group("readers"), pg.login("carol"), pg.login(local)
    pg.sql(f'CREATE ROLE "{other}" LOGIN')
    for statement in filter(None, setup.format(login=login, other=other).split("; ")):
        pg.sql(statement)
    [(can_login,)] = pg.sql("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", login)
    session = pg.connect(login) if can_login else None
    slack.add_user("UTEAM", f"{local}@example.com", local)
    unit = pg_target(pg, readers, login_template=f'"{pg.prefix}{{local}}"')
    bot = make_bot(
        roles=roles_yaml(prod=unit, staging=unit, db_prod=unit, db_dev=unit),
        approvers=AUTO_APPROVE,
        providers={"postgresql": PostgresProvider({DSN_ENV: pg.dsn()})},
    )

    request_id = submit(bot, "UTEAM", "db-admin dev 1h INC-14")

    assert bot.service.get(request_id).status == "failed"
    told = str(bot.dms_to("UTEAM"))
    assert f"{login} is not {local}@example.com's own login" in told and why in told
    assert not pg.member(readers, login)
    assert pg.sql("SELECT pg_has_role(%s, %s, 'USAGE')", other, readers) == [(False,)]
    if session is not None:  # the failed grant's clean-up ended none of its sessions
        assert session.execute("SELECT 1").fetchone() == (1,)
        session.close()


def test_roles_and_emails_with_signs_are_quoted_and_granted(
    make_bot: Callable[..., Bot], pg: PgServer, slack: FakeSlack
) -> None:
    odd = pg.group("read-only$")
    slack.add_user("UPLUS", "alice+ops@example.com", "alice-ops")
    unit = pg_target(pg, odd)
    bot = make_bot(
        roles=roles_yaml(prod=unit, staging=unit, db_prod=unit, db_dev=unit),
        approvers=AUTO_APPROVE,
        providers={"postgresql": PostgresProvider({DSN_ENV: pg.dsn()})},
    )

    request_id = submit(bot, "UPLUS", "db-admin dev 1h INC-5")

    assert bot.service.get(request_id).status == "active"
    assert pg.member(odd, pg.login("alice+ops@example.com"))


def test_a_revoke_that_cannot_reach_the_server_is_revoke_failed_announced_and_swept_until_done(
    make_bot: Callable[..., Bot], pg: PgServer
) -> None:
    readers, alice = pg.group("readers"), pg.login("alice@example.com")
    unit = pg_target(pg, readers)
    # The provider reads the DSN from this mapping at every call: pointing it at a closed
    # port is the server going away, and back.
    environ = {DSN_ENV: pg.dsn()}
    bot = make_bot(
        roles=roles_yaml(prod=unit, staging=unit, db_prod=unit, db_dev=unit),
        approvers=AUTO_APPROVE,
        providers={"postgresql": PostgresProvider(environ, sleep=lambda _: None)},
    )
    request_id = submit(bot, ALICE, "prod-support staging 1h INC-20")
    session = pg.connect(alice)
    environ[DSN_ENV] = f"postgresql://{pg.bot}@127.0.0.1:{free_port()}/{pg.database}"

    bot.clock.advance(timedelta(hours=1))
    bot.service.sweep()
    bot.settle()

    request = bot.service.get(request_id)
    assert request.status == "revoke_failed"
    assert "cannot reach the server" in str(request.error)
    assert any(f"`{request_id}` *revoke_failed*" in post for post in bot.audit_posts())
    assert any("failed; the bot keeps retrying" in dm["text"] for dm in bot.dms_to(ALICE))
    assert pg.member(readers, alice) and _reads_orders(session) == 2

    bot.clock.advance(timedelta(seconds=30))
    bot.service.sweep()
    bot.settle()
    assert bot.service.get(request_id).status == "revoke_failed", "still unreachable"

    environ[DSN_ENV] = pg.dsn()
    bot.clock.advance(timedelta(seconds=30))
    bot.service.sweep()
    bot.settle()

    assert bot.service.get(request_id).status == "revoked"
    assert not pg.member(readers, alice)
    with pytest.raises(psycopg.OperationalError):
        _reads_orders(session)
