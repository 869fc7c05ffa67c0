"""Records put aside in a temporary SQLite file, read back in order or by key: how the
grants export orders a million requests' stories without holding them in memory. The
file is private to the process and removed when the spool closes."""

from __future__ import annotations

import pickle
import sqlite3
from collections.abc import Iterator
from typing import Any

#: Records written to the file at a time.
_CHUNK = 1_000


class Spool:
    """``add`` records under a key and an order; ``ordered`` reads them back sorted by it
    (ties in the order added), ``get`` one by its key."""

    def __init__(self) -> None:
        # "": a temporary on-disk database of our own, deleted when it is closed.
        self._db = sqlite3.connect("")
        self._db.execute(
            "CREATE TABLE spool (key TEXT PRIMARY KEY, sort_key TEXT NOT NULL, record BLOB)"
        )
        self._waiting: list[tuple[str, str, bytes]] = []

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._db.close()

    def add(self, key: str, sort_key: str, record: Any) -> None:
        self._waiting.append((key, sort_key, pickle.dumps(record)))
        if len(self._waiting) >= _CHUNK:
            self._flush()

    def ordered(self) -> Iterator[Any]:
        self._flush()
        cursor = self._db.execute("SELECT record FROM spool ORDER BY sort_key, rowid")
        while rows := cursor.fetchmany(_CHUNK):
            for (record,) in rows:
                yield pickle.loads(record)  # our own file, written above

    def get(self, key: str) -> Any | None:
        self._flush()
        row = self._db.execute("SELECT record FROM spool WHERE key = ?", (key,)).fetchone()
        return pickle.loads(row[0]) if row else None

    def _flush(self) -> None:
        if self._waiting:
            self._db.executemany("INSERT INTO spool VALUES (?, ?, ?)", self._waiting)
            self._waiting.clear()
