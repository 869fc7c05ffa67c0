"""Which environment each account belongs to: its OU's name (the default), one of its
tags (``tag:KEY``) or a mapping file of ``account-id environment`` lines.

Environment names become keys of roles.yaml, so they are made into valid names there
(lower case, letters, digits, ``-`` and ``_``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from bot.importer.aws.estate import Account
from bot.importer.naming import valid_name

UNTAGGED = "untagged"
_LINE = re.compile(r"^\s*(\d{12})\s*[,\s]\s*([^\s,#]+)\s*(#.*)?$")


class EnvironmentsError(Exception):
    """The --environments choice cannot be used; the message names the file and line."""


def environment_name(text: str) -> str:
    """A roles.yaml environment name made from an OU name, tag value or file entry."""
    return valid_name(text)


def environments(choice: str, accounts: Mapping[str, Account]) -> dict[str, str]:
    """Account id → environment, as ``choice`` (``ou``, ``tag:KEY`` or a file) says."""
    if choice == "ou":
        return {i: environment_name(a.parent_name) for i, a in accounts.items()}
    if choice.startswith("tag:"):
        key = choice[4:]
        if not key:
            raise EnvironmentsError("--environments tag:KEY needs a tag key, e.g. tag:env")
        return {i: environment_name(a.tags.get(key) or UNTAGGED) for i, a in accounts.items()}
    mapping = read_mapping(Path(choice))
    missing = sorted(set(accounts) - set(mapping))
    if missing:
        shown = ", ".join(f"{i} ({accounts[i].name})" for i in missing[:10])
        raise EnvironmentsError(
            f"{choice}: no environment for account(s) {shown}; expected a line "
            "'<account id> <environment>' for each account"
        )
    return {i: mapping[i] for i in accounts}


def read_mapping(path: Path) -> dict[str, str]:
    """``account-id environment`` per line (whitespace or a comma between); ``#``
    comments and blank lines are skipped. Every bad line is named."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EnvironmentsError(
            f"--environments: cannot read {path}: {exc.strerror or exc}; expected ou, "
            "tag:KEY or a file of '<account id> <environment>' lines"
        ) from None
    except UnicodeDecodeError:
        raise EnvironmentsError(f"{path}: is not UTF-8 text") from None
    mapping: dict[str, str] = {}
    bad: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            bad.append(f"{path}:{number}: '{line.strip()[:80]}'")
            continue
        mapping[match.group(1)] = environment_name(match.group(2))
    if bad:
        raise EnvironmentsError(
            "\n".join(bad) + "\nexpected '<12-digit account id> <environment>' on each line"
        )
    return mapping
