"""Engine construction and schema migrations."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlmodel import create_engine

from bot.audit.stored import canonical_json

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
#: The newest migration's revision: a database already there is not handed to Alembic
#: (importing it and reading every migration is a tenth of a second of each start).
#: tests/unit/test_migrations.py checks that it is the head of ``MIGRATIONS``.
HEAD = "0016"
_MIGRATE_LOCK = 0x6A17_0001
# A pooled PostgreSQL connection unused for this long is pinged before it is handed out.
PING_IDLE_AFTER = 1.0


def make_engine(url: str, *, ping_idle_after: float = PING_IDLE_AFTER) -> Engine:
    """An engine whose transactions serialise writers correctly on both databases. JSON
    is stored in canonical form (sorted keys, no spaces): an audit event's details are
    then stored as its hash covers them, and ``audit verify`` checks them as stored."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30, "factory": _SqliteConnection},
            pool_pre_ping=False,
            json_serializer=canonical_json,
        )
        _sqlite_take_write_lock_at_begin(engine, threading.RLock())
        return engine
    engine = create_engine(url, pool_size=10, max_overflow=20, json_serializer=canonical_json)
    _ping_when_idle(engine, ping_idle_after)
    return engine


def _ping_when_idle(engine: Engine, idle_after: float) -> None:
    """``pool_pre_ping`` for connections that sat in the pool ``idle_after`` seconds or
    more: those the server, a proxy or a firewall may have closed meanwhile are replaced
    before anyone uses them. A connection used a moment ago is not asked again: under
    load, the ping was a round trip before every transaction. One that died in that
    moment fails its transaction, as one that dies in use does, and SQLAlchemy then
    replaces every connection of the pool."""

    @event.listens_for(engine, "checkin")
    def _checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in = record.info.get("checked_in")
        if checked_in is None or time.monotonic() - checked_in < idle_after:
            return  # just connected, or used a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)  # what pool_pre_ping asks
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"a pooled connection was closed: {exc}") from exc


def make_reader(url: str) -> Engine:
    """An engine that only reads (``audit verify`` and ``audit export``): on SQLite its
    reads take no write lock, so walking a long trail neither waits for a running bot's
    writes nor holds them up (WAL gives each statement its snapshot)."""
    if url.startswith("sqlite"):
        return create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    return create_engine(url, pool_pre_ping=True)


class _SqliteConnection(sqlite3.Connection):
    """A connection that lets go of its engine's writer lock when its transaction ends."""

    writer_lock: threading.RLock | None = None
    _holding = False

    def take_writer_lock(self) -> None:
        if self.writer_lock is None:  # set on every connection our engine makes
            raise RuntimeError("a SQLite connection without its engine's writer lock")
        self.writer_lock.acquire()
        self._holding = True

    def release_writer_lock(self) -> None:
        if self._holding and self.writer_lock is not None:
            self._holding = False
            self.writer_lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.release_writer_lock()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.release_writer_lock()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.release_writer_lock()


def _sqlite_take_write_lock_at_begin(engine: Engine, writer_lock: threading.RLock) -> None:
    # pysqlite opens transactions lazily, so two threads that read, then write, deadlock
    # instead of waiting. BEGIN IMMEDIATE takes the write lock up front: every
    # transaction waits its turn, which is what compare-and-set needs.
    # Threads of this process queue on a lock of their own first: SQLite's busy handler
    # waits by sleeping (up to 100 ms a turn), which under contention costs far more
    # than the transactions themselves. Other processes still meet busy_timeout.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.writer_lock = writer_lock
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        dbapi_connection = conn.connection.dbapi_connection
        dbapi_connection.take_writer_lock()
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            dbapi_connection.release_writer_lock()
            raise


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply Alembic migrations up to ``revision`` on the engine's database."""
    if revision == "head" and _revision(engine) == HEAD:
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Replicas starting together would otherwise race to create the same tables.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATE_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _revision(engine: Engine) -> str | None:
    """The revision the database is at; None if it has none (or no migration table)."""
    try:
        with engine.connect() as connection:
            found = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    except DBAPIError:  # a new database: no alembic_version table yet
        return None
    return found[0][0] if len(found) == 1 else None
