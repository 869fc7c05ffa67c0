"""Who people are: the interface the domain uses to resolve users and groups.

Entries in the config are Slack user ids, emails or user-group handles (``@sre-leads``);
an implementation turns them into Slack user ids. The Slack-backed one lives in
bot/slack/directory.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Person:
    user_id: str
    email: str
    name: str
    # Slack's ``is_email_confirmed``: whether the owner of the account proved they read
    # this mailbox. An unconfirmed email may be anyone's, so it names no principal.
    email_confirmed: bool = True


class Directory(Protocol):
    def person(self, user_id: str) -> Person:
        """The Slack user with this id; raise DirectoryError if unknown or deactivated."""
        ...

    def resolve(self, entries: Sequence[str]) -> set[str]:
        """The Slack user ids named by the entries. Entries that name nobody are skipped
        (and logged); a lookup that fails for another reason raises DirectoryError."""
        ...

    def is_member(self, entries: Sequence[str], user_id: str) -> bool:
        """Whether ``user_id`` is named by any entry."""
        ...

    def refresh(self) -> None:
        """Forget cached answers so the next lookups ask Slack again."""
        ...

    def person_now(self, user_id: str) -> Person:
        """Like ``person``, but asked of Slack now, never answered from a cache: for the
        moment access is granted, when an email changed a minute ago matters."""
        ...
