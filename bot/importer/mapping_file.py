"""The ``--environments FILE`` every estate import takes: one ``<scope> <environment>``
per line, whitespace or a comma between, ``#`` comments and blank lines skipped.

Each cloud says what a scope looks like (an account id, projects/ID, an Azure scope) and
how to write it down; every bad line is named with its file and line number, and the
error says what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from bot.importer.access import CannotImport
from bot.importer.naming import valid_name

_LINE = re.compile(r"^\s*([^\s,#]+)\s*[,\s]\s*([^\s,#]+)\s*(#.*)?$")


class EnvironmentsError(CannotImport):
    """The --environments choice cannot be used; the message names the file and line."""


def read_mapping(
    path: Path, scope: Callable[[str], str | None], expected: str, choices: str
) -> dict[str, str]:
    """Scope (as ``scope`` writes it; None: not a scope) → environment name.

    ``expected`` says what each line holds ("'<account id> <environment>' on each line"),
    ``choices`` what --environments takes, for the error when the file cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EnvironmentsError(
            f"--environments: cannot read {path}: {exc.strerror or exc}; expected {choices}"
        ) from None
    except UnicodeDecodeError:
        raise EnvironmentsError(f"{path}: is not UTF-8 text") from None
    mapping: dict[str, str] = {}
    bad: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        key = scope(match.group(1)) if match else None
        if match is None or key is None:
            bad.append(f"{path}:{number}: '{line.strip()[:80]}'")
            continue
        mapping[key] = valid_name(match.group(2))
    if bad:
        raise EnvironmentsError("\n".join(bad) + f"\nexpected {expected}")
    return mapping
