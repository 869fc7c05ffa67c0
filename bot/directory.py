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
    # Where the account lives and what kind it is (users.info). The defaults describe an
    # account of no known workspace, so a Person built without them is never taken for
    # a full member.
    team_id: str = ""
    enterprise_id: str | None = None
    teams: tuple[str, ...] = ()  # the org's workspaces the account is in (Enterprise Grid)
    is_restricted: bool = False  # multi-channel guest
    is_ultra_restricted: bool = False  # single-channel guest
    is_stranger: bool = False  # a Slack Connect user of another organisation
    is_bot: bool = False


@dataclass(frozen=True)
class Workspace:
    """The Slack installation the bot serves, as ``auth.test`` reports it."""

    team_id: str
    enterprise_id: str | None = None
    # Installed org-wide: every workspace of the enterprise is the bot's.
    enterprise_install: bool = False

    def includes(self, person: Person) -> bool:
        """Whether the account belongs here, not to another workspace or organisation
        that reaches this one through Slack Connect."""
        if person.is_stranger:
            return False
        if self.enterprise_install:
            return self.enterprise_id is not None and person.enterprise_id == self.enterprise_id
        return person.team_id == self.team_id or (
            self.enterprise_id is not None
            and person.enterprise_id == self.enterprise_id
            and self.team_id in person.teams
        )


class Directory(Protocol):
    def person(self, user_id: str) -> Person:
        """The Slack user with this id; raise DirectoryError if unknown, Deactivated if
        deactivated."""
        ...

    def resolve(self, entries: Sequence[str]) -> set[str]:
        """The Slack user ids named by the entries. Entries that name nobody are skipped
        (and logged), and so are emails of accounts outside the installing workspace; a
        lookup that fails for another reason raises DirectoryError."""
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

    def workspace(self) -> Workspace:
        """The workspace (and organisation) the bot is installed in."""
        ...
