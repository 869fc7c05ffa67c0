"""MySQL names in statements. PyMySQL quotes values but has no identifier quoting, so
this module is the one place names become SQL: each is first checked against a strict
pattern (no quotes, backslashes or control characters can pass), then quoted, a role
as an identifier in backticks, an account as ``'user'@'host'``."""

from __future__ import annotations

import re

from providers.base import ProviderError

_ROLE = re.compile(r"[A-Za-z_][A-Za-z0-9_$-]{0,127}")
_USER = re.compile(r"[a-z0-9_][a-z0-9_.@+-]{0,79}")
_HOST = re.compile(r"%|[A-Za-z0-9_.:%-]{1,255}")


def role(name: str) -> str:
    """A role name as a quoted identifier."""
    if not _ROLE.fullmatch(name):
        raise ProviderError(f"{name!r} is not a role name jit-bot will put in a statement")
    return "`" + name.replace("`", "``") + "`"


def account(user: str, host: str = "%") -> str:
    """``'user'@'host'``: an account, each part a checked string literal."""
    if not _USER.fullmatch(user) or not _HOST.fullmatch(host):
        raise ProviderError(f"{user!r}@{host!r} is not an account jit-bot will put in a statement")
    return f"'{user}'@'{host}'"
