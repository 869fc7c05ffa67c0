"""``column IN (values)`` for the lists a batch asks about (200 request ids, say).

Written as ``IN``, each value is a parameter of its own: SQLAlchemy renders the list into
the statement on every execution, and the statement's text changes with the list's
length, so on PostgreSQL psycopg converts it afresh each time (a statement that long is
past its cache) — a tenth of the bot's CPU when recovering a backlog. On PostgreSQL the
list goes as one array parameter (``= ANY``), the statement's text stays the same, and
the primary key or index is used all the same. SQLite, which has no arrays, keeps ``IN``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, String, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, QueryableAttribute, Session


def among(
    session: Session, column: ColumnElement[Any] | Mapped[Any], values: Iterable[Any]
) -> ColumnElement[bool]:
    """``column IN (values)``, as one bound array on PostgreSQL."""
    if isinstance(column, QueryableAttribute):  # a mapped attribute: its column
        column = column.__clause_element__()
    if not isinstance(column, ColumnElement):
        raise TypeError(f"not a column: {column!r}")
    listed = list(values)
    if session.get_bind().dialect.name != "postgresql":
        return column.in_(listed)
    # Strings as text of any length: a cast to the column's VARCHAR(n) would cut a longer
    # value short, and the cut value could name another row.
    element = String() if _holds_text(column) else column.type
    return column == any_(bindparam(None, listed, type_=ARRAY(element)))


def _holds_text(column: ColumnElement[Any]) -> bool:
    """VARCHAR(n), and types built on it (SQLModel's strings are a TypeDecorator)."""
    return isinstance(getattr(column.type, "impl_instance", column.type), String)
