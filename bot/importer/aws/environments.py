"""Which environment each account belongs to: its OU's name (the default), one of its
tags (``tag:KEY``) or a mapping file of ``account-id environment`` lines.

Environment names become keys of roles.yaml, so they are made into valid names there
(lower case, letters, digits, ``-`` and ``_``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from bot.importer import mapping_file
from bot.importer.aws.estate import Account
from bot.importer.mapping_file import EnvironmentsError
from bot.importer.naming import valid_name

UNTAGGED = "untagged"
_ACCOUNT = re.compile(r"\d{12}")


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
    """Account id → environment, a ``<account id> <environment>`` line each."""
    return mapping_file.read_mapping(
        path,
        lambda text: text if _ACCOUNT.fullmatch(text) else None,
        "'<12-digit account id> <environment>' on each line",
        "ou, tag:KEY or a file of '<account id> <environment>' lines",
    )
