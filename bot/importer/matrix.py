"""Reading a plain user–permission matrix file: one assignment per line, ``user
permission``, separated by whitespace or one comma.

The file is someone's export, so every way it can be wrong is reported as a
:class:`MatrixError` naming the file and the line, never as a traceback: blank lines and
``#`` comments are skipped, an optional first line ``user,permission`` is taken as a
header, and repeated assignments count once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# Whitespace, or one comma with optional whitespace around it. "a,,b" splits into three
# fields (one empty), so a doubled comma is an error rather than silently "a b".
_SEPARATOR = re.compile(r"\s*,\s*|\s+")
_HEADER = ("user", "permission")


class MatrixError(Exception):
    """The matrix file cannot be used; ``str(error)`` names the file, the line if there is
    one, what is wrong and what a good line looks like."""


@dataclass(frozen=True)
class Matrix:
    """The distinct (user, permission) assignments of a file, in the order first seen."""

    source: str
    pairs: tuple[tuple[str, str], ...]
    duplicates: int  # lines that repeated an assignment already read


def read_matrix(path: Path) -> Matrix:
    """Read ``path``; raise :class:`MatrixError` if it is unreadable, not text, empty or
    has a line that is not exactly two fields."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MatrixError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    text = _decode(path, raw)
    seen: dict[tuple[str, str], None] = {}
    duplicates = 0
    for number, line in enumerate(text.splitlines(), start=1):
        fields = _fields(path, number, line)
        if fields is None or (not seen and _is_header(fields)):
            continue
        pair = (fields[0], fields[1])
        if pair in seen:
            duplicates += 1
        seen[pair] = None
    if not seen:
        raise MatrixError(
            f"{path}: no assignments: expected lines of 'user permission' "
            "(whitespace- or comma-separated)"
        )
    return Matrix(str(path), tuple(seen), duplicates)


def _decode(path: Path, raw: bytes) -> str:
    """The file as text: UTF-8 (a byte-order mark is dropped), without NUL bytes, which
    only binary files hold."""
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        raise MatrixError(f"{path}:{line}: binary data (a NUL byte): expected a text file")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise MatrixError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}): expected a text file"
        ) from None


def _fields(path: Path, number: int, line: str) -> tuple[str, str] | None:
    """The two fields of one line, None for a blank or comment line."""
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    fields = _SEPARATOR.split(stripped)
    if len(fields) != 2 or not all(fields):
        found = "one field" if len(fields) == 1 else f"{len(fields)} fields"
        if len(fields) == 2 or "" in fields:
            found = "an empty field"
        shown = stripped if len(stripped) <= 60 else stripped[:57] + "..."
        raise MatrixError(
            f"{path}:{number}: {found} in {shown!r}: expected 'user permission' "
            "(two fields, whitespace- or comma-separated)"
        )
    return fields[0], fields[1]


def _is_header(fields: tuple[str, str]) -> bool:
    return tuple(f.lower() for f in fields) == _HEADER
