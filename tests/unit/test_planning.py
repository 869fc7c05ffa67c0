"""``unindexed``: a term SQLite may not look rows up by, the plain column elsewhere."""

from __future__ import annotations

import sqlite3

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col

from bot.storage.db import make_engine, upgrade
from bot.storage.models import AccessRequest
from bot.storage.planning import unindexed


def _compare_and_set() -> object:
    """A batch's compare-and-set, as its WHERE reads."""
    return select(col(AccessRequest.id)).where(
        col(AccessRequest.id).in_(["R-1", "R-2"]),
        unindexed(col(AccessRequest.status)).in_(["active", "revoke_failed"]),
    )


def test_sqlite_is_told_not_to_look_rows_up_by_the_term_and_postgresql_is_not() -> None:
    statement = _compare_and_set()
    assert "+access_request.status IN" in str(statement.compile(dialect=sqlite.dialect()))  # type: ignore[attr-defined]
    on_postgresql = str(statement.compile(dialect=postgresql.dialect()))  # type: ignore[attr-defined]
    assert "access_request.status IN" in on_postgresql
    assert "+access_request" not in on_postgresql


def test_sqlite_finds_the_rows_by_id_and_checks_the_status_on_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{tmp_path / 'jit.db'}")
    upgrade(engine)
    compiled = _compare_and_set().compile(  # type: ignore[attr-defined]
        dialect=engine.dialect, compile_kwargs={"render_postcompile": True}
    )
    connection = sqlite3.connect(tmp_path / "jit.db")
    plan = [
        row[3]
        for row in connection.execute(
            f"EXPLAIN QUERY PLAN {compiled}", list(compiled.params.values())
        )
    ]
    engine.dispose()
    assert plan and all("status" not in step for step in plan), plan
    assert any("(id=?)" in step for step in plan), plan
