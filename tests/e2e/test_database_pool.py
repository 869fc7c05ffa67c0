"""The bot's PostgreSQL pool: a connection that sat unused is pinged before it is handed
out, so one the server closed meanwhile is replaced; one used a moment ago is not asked
again (that ping was a round trip before every transaction under load)."""

from __future__ import annotations

import os

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from bot.storage.db import make_engine

pytestmark = pytest.mark.skipif(
    not os.environ.get("JIT_TEST_DATABASE_URL"), reason="JIT_TEST_DATABASE_URL is not set"
)


def _backend(engine: Engine) -> int:
    with engine.begin() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(postgres_url: str, pid: int) -> None:
    admin = create_engine(postgres_url)
    with admin.begin() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
    admin.dispose()


def test_a_pooled_connection_the_server_closed_while_it_sat_idle_is_replaced(
    postgres_url: str,
) -> None:
    engine = make_engine(postgres_url, ping_idle_after=0.0)  # every connection is idle
    closed = _backend(engine)
    _terminate(postgres_url, closed)

    assert _backend(engine) != closed  # the transaction ran, on a new connection
    engine.dispose()


def test_a_connection_used_a_moment_ago_is_not_pinged_so_its_death_fails_one_transaction(
    postgres_url: str,
) -> None:
    engine = make_engine(postgres_url, ping_idle_after=3600.0)  # none is idle
    closed = _backend(engine)
    _terminate(postgres_url, closed)

    with pytest.raises(OperationalError) as failed:
        _backend(engine)
    assert isinstance(failed.value.orig, psycopg.OperationalError)
    assert _backend(engine) != closed  # the pool replaced the dead connection
    engine.dispose()
