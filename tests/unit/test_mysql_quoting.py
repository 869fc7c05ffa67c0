"""The one place MySQL names become SQL: a hostile name is refused before any quoting,
a plain one quoted."""

from __future__ import annotations

import pytest

from providers.base import ProviderError
from providers.mysql.quoting import account, role

HOSTILE = ["x`; DROP USER root; --", "x'", "x\\", "x y", "x\n", "", "x;y", 'x"']


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_role_or_account_name_never_reaches_a_statement(name: str) -> None:
    with pytest.raises(ProviderError, match="will put in a statement"):
        role(name)
    with pytest.raises(ProviderError, match="will put in a statement"):
        account(name)
    with pytest.raises(ProviderError, match="will put in a statement"):
        account("alice", host=name)


def test_plain_names_are_quoted_as_an_identifier_and_an_account() -> None:
    assert role("orders-read$") == "`orders-read$`"
    assert account("alice+ops@example.com") == "'alice+ops@example.com'@'%'"
