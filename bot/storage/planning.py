"""What SQLite's query planner cannot know. SQLite keeps no statistics on a bot's own
file, so it guesses how many rows an index lookup finds, and a status looks as selective
as an id: ``id IN (200 ids) AND status IN ('active', 'revoke_failed')`` was looked up by
status, walking every live grant for each batch (on 60,000 live grants, a backlog's
recovery grew with its square). ``unindexed`` marks a term SQLite is not to look rows up
by; it checks it on the rows the other terms found. PostgreSQL, which keeps statistics,
is left to choose.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, QueryableAttribute
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

T = TypeVar("T")


class _Unindexed(ColumnElement[T]):
    """A column SQLite is not to look rows up by, in a term that names it."""

    inherit_cache = True
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: ColumnElement[T]) -> None:
        self.column = column
        self.type = column.type


def unindexed(column: ColumnElement[T] | Mapped[T]) -> ColumnElement[T]:
    """``column`` in a term SQLite checks on the rows found otherwise (SQLite's unary
    ``+``, which disqualifies a term from index use); the column itself elsewhere."""
    if isinstance(column, QueryableAttribute):  # a mapped attribute: its column
        return _Unindexed(column.__clause_element__())
    return _Unindexed(cast(ColumnElement[T], column))


@compiles(_Unindexed)
def _as_is(element: _Unindexed[Any], compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.column, **kw)


@compiles(_Unindexed, "sqlite")
def _on_sqlite(element: _Unindexed[Any], compiler: SQLCompiler, **kw: Any) -> str:
    return "+" + compiler.process(element.column, **kw)
