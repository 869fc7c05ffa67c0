"""The Alembic migrations and the SQLModel models describe the same schema.

A model change without a migration (or the reverse) would work in tests that build tables
from the models and break on a real database; autogenerate's comparison catches it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from bot.storage.db import HEAD, MIGRATIONS, make_engine, upgrade
from bot.storage.models import SQLModel, UTCDateTime
from tests.kit.fresh import last_value


def _is_utc_datetime_alias(diff: Any) -> bool:
    """True for a type "change" between ``DateTime(timezone=True)`` in the migration and
    ``UTCDateTime`` (a TypeDecorator over it) in the model: the same column type."""
    if not (isinstance(diff, tuple) and diff and diff[0] == "modify_type"):
        return False
    _, _schema, _table, _column, _existing, database_type, model_type = diff
    return isinstance(model_type, UTCDateTime) and isinstance(database_type, sa.DateTime)


def _differences(database_url: str) -> list[Any]:
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            found = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    # Column-level changes come as a list of tuples per column; flatten them.
    flat: list[Any] = []
    for diff in found:
        flat.extend(diff if isinstance(diff, list) else [diff])
    return [diff for diff in flat if not _is_utc_datetime_alias(diff)]


def test_migrations_create_exactly_the_models_schema(database_url: str) -> None:
    assert _differences(database_url) == []


def test_upgrade_twice_is_harmless(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        upgrade(engine)
        with engine.connect() as connection:
            versions = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            assert len(list(versions)) == 1
    finally:
        engine.dispose()


def test_head_names_the_newest_migration() -> None:
    """A database at ``HEAD`` is taken as migrated without asking Alembic: a migration
    added without moving ``HEAD`` would never be applied."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD]


def test_a_database_behind_is_migrated_and_one_at_head_starts_without_alembic(
    database_url: str, tmp_path: Path
) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0014")
        upgrade(engine)  # behind: migrated
        with engine.connect() as connection:
            at = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        assert [row[0] for row in at] == [HEAD]
    finally:
        engine.dispose()
    # In a fresh interpreter: this one imported Alembic long ago.
    snippet = f"""
    import sys
    from bot.storage.db import make_engine, upgrade

    upgrade(make_engine({database_url!r}))
    print("alembic" in sys.modules)
    """
    assert last_value(snippet, tmp_path) is False


def test_requests_stored_before_break_glass_existed_read_as_routine(database_url: str) -> None:
    """0009 adds the break-glass flag with a default, so a database with requests in it
    upgrades (SQLite rebuilds the table) and those requests stay routine."""
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0008")
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO access_request (id, requester_id, requester_email, role, "
                    "environment, reason, duration_seconds, status, rule_index, "
                    "required_approvals, auto_approve, allow_self_approval, approvers, "
                    "created_at, updated_at, version) VALUES ('R-OLD', 'U1', 'a@example.com', "
                    "'r', 'e', 'why', 60, 'revoked', 0, 1, false, false, '[]', "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0)"
                )
            )
        upgrade(engine)
        with engine.connect() as connection:
            row = connection.execute(
                sa.text("SELECT break_glass, incident FROM access_request WHERE id = 'R-OLD'")
            ).one()
        assert (bool(row.break_glass), row.incident) == (False, None)
    finally:
        engine.dispose()


def test_break_glass_uses_stored_before_reviews_existed_are_opened_for_review(
    database_url: str,
) -> None:
    """0010 opens a review for each break-glass use already stored (opened when it was
    made, reminded from the upgrade: not all at once), and none for a routine request."""
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0009")
        with engine.begin() as connection:
            for request_id, glass in (("R-GLASS", "true"), ("R-ROUTINE", "false")):
                connection.execute(
                    sa.text(
                        "INSERT INTO access_request (id, requester_id, requester_email, role, "
                        "environment, reason, duration_seconds, status, rule_index, "
                        "required_approvals, auto_approve, allow_self_approval, approvers, "
                        "created_at, updated_at, version, break_glass) VALUES (:id, 'U1', "
                        "'a@example.com', 'r', 'e', 'why', 60, 'revoked', 0, 0, false, false, "
                        f"'[]', '2026-01-02 03:04:05', CURRENT_TIMESTAMP, 0, {glass})"
                    ),
                    {"id": request_id},
                )
        upgrade(engine)
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT request_id, verdict, opened_at, reminded_at FROM break_glass_review"
                )
            ).all()
        assert [(r.request_id, r.verdict, str(r.opened_at)[:19]) for r in rows] == [
            ("R-GLASS", None, "2026-01-02 03:04:05")
        ]
        assert str(rows[0].reminded_at)[:4] >= "2026" and str(rows[0].reminded_at)[:10] != (
            "2026-01-02"
        )
    finally:
        engine.dispose()
