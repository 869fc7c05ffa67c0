"""The Alembic migrations and the SQLModel models describe the same schema.

A model change without a migration (or the reverse) would work in tests that build tables
from the models and break on a real database; autogenerate's comparison catches it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bot.storage.db import make_engine, upgrade
from bot.storage.models import SQLModel, UTCDateTime


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
