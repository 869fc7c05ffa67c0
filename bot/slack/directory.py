"""The Directory backed by the Slack Web API, with a time-bounded cache.

The cache keeps approver checks at click time fast while still noticing, within
``ttl``, that someone left a group. A read Slack rate limits (429) or fails on its side
(5xx, no answer) is tried again a few times; one that still fails raises
DirectoryUnavailable, never taken for "no such user" or "not a member" and never answered
from an expired cache entry (a removed approver must not keep their say).
``google:<group email>`` entries are Google groups: their members come from an injected
GroupResolver and are matched to Slack users by email.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError

from bot.clock import Clock
from bot.config import GOOGLE_GROUP
from bot.directory import Person, Workspace
from bot.errors import Deactivated, DirectoryError, DirectoryUnavailable
from bot.slack import TRANSIENT_ERRORS, retry_after
from providers.resilience import RetryPolicy, TtlCache

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Reads run after Slack was acked, on a listener thread, so they may wait a little:
#: three tries, 0.5s then 1s apart, or what a 429's Retry-After asks up to 5s (a longer
#: one is reported instead of waited out): 10s at worst (tests/unit/test_resilience.py).
RETRY = RetryPolicy(attempts=3, base=0.5, cap=1.0, jitter=False, retry_after_cap=5.0)


class GroupResolver(Protocol):
    """Groups kept outside Slack (bot/google_groups.py): their members as Slack emails."""

    def emails(self, group: str) -> set[str]: ...

    def refresh(self) -> None: ...


class SlackDirectory:
    def __init__(
        self,
        client: WebClient,
        clock: Clock,
        ttl: timedelta = timedelta(seconds=60),
        groups: GroupResolver | None = None,
        sleep: Callable[[float], None] = time.sleep,
        workspace: Workspace | None = None,
    ) -> None:
        self._client = client
        self._workspace = workspace
        self._groups = groups
        self._sleep = sleep
        self._cache: TtlCache[str, Any] = TtlCache(
            ttl.total_seconds(), lambda: clock.now().timestamp()
        )

    def refresh(self) -> None:
        self._cache.clear()
        if self._groups is not None:
            self._groups.refresh()

    def person(self, user_id: str) -> Person:
        return self._cached(f"user:{user_id}", lambda: self._load_person(user_id))

    def _load_person(self, user_id: str) -> Person:
        try:
            user = self._read(f"who {user_id} is", lambda: self._client.users_info(user=user_id))[
                "user"
            ]
        except SlackApiError as exc:
            raise DirectoryError(
                f"Slack does not know the user {user_id} ({exc.response.get('error')})."
            ) from None
        if user.get("deleted"):
            raise Deactivated(f"The Slack account {user_id} is deactivated.")
        profile = user.get("profile") or {}
        email = (profile.get("email") or "").lower()
        if not email:
            raise DirectoryError(
                f"Slack shows no email for {user_id}; the bot needs the users:read.email "
                "scope and the user needs an email to be granted access."
            )
        name = profile.get("real_name") or user.get("real_name") or user.get("name", "")
        return Person(
            user_id=user_id,
            email=email,
            name=name,
            email_confirmed=user.get("is_email_confirmed") is True,
            **_account(user),
        )

    def workspace(self) -> Workspace:
        """Asked of ``auth.test`` once; the installation does not change while we run."""
        if self._workspace is None:
            answer = self._read("which workspace it is installed in", self._client.auth_test)
            self._workspace = Workspace(
                team_id=str(answer.get("team_id") or ""),
                enterprise_id=answer.get("enterprise_id") or None,
                enterprise_install=bool(answer.get("is_enterprise_install")),
            )
        return self._workspace

    def resolve(self, entries: Sequence[str]) -> set[str]:
        ids: set[str] = set()
        for entry in entries:
            ids |= self._resolve_entry(entry)
        return ids

    def is_member(self, entries: Sequence[str], user_id: str) -> bool:
        for entry in entries:
            if entry == user_id:
                return True
            if entry.startswith(GOOGLE_GROUP):
                # One group listing and the user's own email, not a Slack lookup per member.
                try:
                    person = self._home_person(user_id)
                except DirectoryUnavailable:
                    raise  # not an answer: refusing would tell them they are not listed
                except DirectoryError:
                    return False
                if person is not None and person.email in self._google_emails(entry):
                    return True
                continue
            if "@" in entry and not entry.startswith("@"):
                # An email: compare with the user's own email instead of looking it up.
                try:
                    person = self._home_person(user_id)
                except DirectoryUnavailable:
                    raise
                except DirectoryError:
                    return False
                if person is not None and person.email == entry.lower():
                    return True
                continue
            if user_id in self._resolve_entry(entry):
                return True
        return False

    def _home_person(self, user_id: str) -> Person | None:
        """The person, if their account is of this workspace: an email names someone
        here, never the account of another organisation that uses the same address."""
        person = self.person(user_id)
        return person if self.workspace().includes(person) else None

    def _resolve_entry(self, entry: str) -> set[str]:
        if entry.startswith(GOOGLE_GROUP):
            # Checked before the email branch below: a group entry contains an "@" too.
            return {
                uid for email in self._google_emails(entry) for uid in self._resolve_entry(email)
            }
        if entry.startswith("@"):
            return self._cached(f"group:{entry}", lambda: self._group_members(entry[1:]))
        if "@" in entry:
            return self._cached(f"email:{entry}", lambda: self._lookup_email(entry))
        return {entry}

    def _google_emails(self, entry: str) -> set[str]:
        if self._groups is None:
            raise DirectoryError(
                f"`{entry}` names a Google group, but Google groups are not set up for this "
                "bot; ask its administrators to configure them (docs/gcp.md)."
            )
        return self._groups.emails(entry.removeprefix(GOOGLE_GROUP))

    def _lookup_email(self, email: str) -> set[str]:
        try:
            user = self._read(
                f"who has the email {email}",
                lambda: self._client.users_lookupByEmail(email=email),
            )["user"]
        except SlackApiError as exc:
            if exc.response.get("error") == "users_not_found":
                log.warning("No Slack user has the email %s; skipping it", email)
                return set()
            raise DirectoryError(f"Looking up {email} in Slack failed: {exc}") from None
        if user.get("deleted"):
            return set()
        found = Person(user_id=user["id"], email=email, name="", **_account(user))
        if not self.workspace().includes(found):
            # users.lookupByEmail also finds Slack Connect accounts of other organisations.
            log.warning(
                "The Slack account %s with the email %s is not of this workspace "
                "(team %s); skipping it",
                user.get("id"),
                email,
                user.get("team_id"),
            )
            return set()
        return {user["id"]}

    def _group_members(self, handle: str) -> set[str]:
        try:
            groups = self._cached(
                "usergroups",
                lambda: self._read("its user groups", self._client.usergroups_list)["usergroups"],
            )
            match = [g for g in groups if g.get("handle", "").lower() == handle.lower()]
            if not match:
                log.warning("No Slack user group has the handle @%s; skipping it", handle)
                return set()
            members = self._read(
                f"the members of @{handle}",
                lambda: self._client.usergroups_users_list(usergroup=match[0]["id"]),
            )["users"]
        except SlackApiError as exc:
            raise DirectoryError(f"Reading the Slack user group @{handle} failed: {exc}") from None
        return set(members)

    def _read(self, what: str, call: Callable[[], T]) -> T:
        """``call()``, tried again while Slack answers 429 (after its Retry-After), 5xx or
        nothing (after a short backoff); API errors such as ``users_not_found`` are raised
        at once."""
        tries = RETRY.start(self._sleep)
        while True:
            try:
                return call()
            except SlackApiError as exc:
                status = exc.response.status_code
                data = exc.response.data
                error = data.get("error") if isinstance(data, dict) else None
                if status != 429 and status < 500 and error not in TRANSIENT_ERRORS:
                    raise
                if status == 429:
                    problem, wait = "rate limited (429)", retry_after(exc)
                else:
                    problem, wait = f"HTTP {status} {error or ''}".strip(), None
            except (SlackRequestError, OSError) as exc:
                problem, wait = f"no answer ({type(exc).__name__})", None
            delay = tries.plan(wait)
            if delay is None:
                raise DirectoryUnavailable(
                    f"Slack did not tell the bot {what}: {problem}, {tries.attempt} tries. "
                    "Nothing was changed; try again in a minute."
                )
            log.warning("Slack lookup of %s: %s; trying again in %.1fs", what, problem, delay)
            tries.sleep(delay)

    def person_now(self, user_id: str) -> Person:
        # Asked of Slack, never read from the cache (a lookup already in flight could put
        # an older answer back); the fresh answer then serves the next lookups.
        person = self._load_person(user_id)
        self._cache.put(f"user:{user_id}", person)
        return person

    def _cached(self, key: str, load: Callable[[], T]) -> T:
        value: T = self._cache.get(key, load)
        return value


def _account(user: dict[str, Any]) -> dict[str, Any]:
    """Where a users.info / users.lookupByEmail ``user`` lives and what kind of account it
    is, as Person fields."""
    grid = user.get("enterprise_user") or {}
    return {
        "team_id": str(user.get("team_id") or ""),
        "enterprise_id": grid.get("enterprise_id") or user.get("enterprise_id") or None,
        "teams": tuple(grid.get("teams") or ()),
        "is_restricted": bool(user.get("is_restricted")),
        "is_ultra_restricted": bool(user.get("is_ultra_restricted")),
        "is_stranger": bool(user.get("is_stranger")),
        # Slackbot is no bot by its own flags.
        "is_bot": bool(user.get("is_bot")) or user.get("id") == "USLACKBOT",
    }
