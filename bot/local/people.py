"""Who the local workspace's people are.

Slack would know its members; local mode has to make them up. With the bundled example
they come from ``examples/local/people.yaml``. With a config of one's own, they are read
from it: every user id and email that approvers.yaml or roles.yaml names becomes a
person, every user-group handle a group with a member of its own, and one more person
who is in every group that may request, so there is always someone to request with.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.config.models import EMAIL, HANDLE, USER_ID

DEFAULT_DOMAIN = "example.com"


@dataclass(frozen=True)
class Person:
    """One member of the local workspace."""

    id: str
    name: str
    email: str
    real_name: str
    title: str = ""
    groups: tuple[str, ...] = ()  # user-group handles, without the @


@dataclass
class People:
    """Everyone in the workspace, in the order the page lists them."""

    members: list[Person] = field(default_factory=list)

    def __iter__(self) -> Iterator[Person]:
        return iter(self.members)

    def ids(self) -> set[str]:
        return {p.id for p in self.members}

    def groups(self) -> dict[str, list[str]]:
        """Each user-group handle and the ids of its members."""
        found: dict[str, list[str]] = {}
        for person in self.members:
            for handle in person.groups:
                found.setdefault(handle, []).append(person.id)
        return found


def from_people_file(path: Path) -> People:
    """The people a people.yaml lists (``examples/local/people.yaml``)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    members = [
        Person(
            id=str(entry["id"]),
            name=str(entry["name"]),
            email=str(entry["email"]).lower(),
            real_name=str(entry.get("real_name") or entry["name"]),
            title=str(entry.get("title") or ""),
            groups=tuple(str(g) for g in entry.get("groups") or ()),
        )
        for entry in data.get("people") or ()
    ]
    return People(members)


def from_config(roles_file: Path, approvers_file: Path) -> People:
    """People made up from whoever a config of one's own names (see the module docstring).

    The files are read leniently here: the bot validates them strictly when it starts,
    and says what is wrong far better than a guess at people could."""
    roles = _yaml(roles_file)
    approvers = _yaml(approvers_file)
    settings = _mapping(approvers.get("settings"))
    domains = _strings(settings.get("allowed_email_domains"))
    domain = domains[0].lstrip("@").lower() if domains else DEFAULT_DOMAIN
    titles: dict[str, list[str]] = {}
    for group, entries in _mapping(approvers.get("groups")).items():
        for entry in _strings(entries):
            titles.setdefault(entry, []).append(f"approver ({group})")
    requesters = [
        entry
        for role in _mapping(roles.get("roles")).values()
        for entry in _strings(_mapping(role).get("requesters"))
    ]
    for rule in approvers.get("rules") or ():
        requesters += _strings(_mapping(rule).get("requesters"))
    for entry in _strings(settings.get("admins")):
        titles.setdefault(entry, []).append("admin")
    members: dict[str, Person] = {}
    newcomer = Person(
        id="U0REQUESTER",
        name="requester",
        email=f"requester@{domain}",
        real_name="A requester",
        title="in every group that may request",
        groups=tuple(dict.fromkeys(e[1:].lower() for e in requesters if HANDLE.match(e.lower()))),
    )
    members[newcomer.id] = newcomer
    for entry in [*titles, *requesters]:
        person = _person_for(entry.strip(), domain, ", ".join(titles.get(entry, [])))
        if person is not None and person.email not in {m.email for m in members.values()}:
            members.setdefault(person.id, person)
    return People(list(members.values()))


def _person_for(entry: str, domain: str, title: str) -> Person | None:
    if USER_ID.match(entry):
        name = entry.lower()
        return Person(entry, name, f"{name}@{domain}", entry, title)
    if EMAIL.match(entry):
        email = entry.lower()
        name = email.split("@", 1)[0]
        return Person(_id_for(email), name, email, name, title)
    if HANDLE.match(entry.lower()):
        handle = entry[1:].lower()
        name = f"{handle}-member"
        return Person(
            _id_for(handle), name, f"{name}@{domain}", f"a member of @{handle}", title, (handle,)
        )
    return None  # google: groups and anything invalid, which the bot itself reports


def _id_for(text: str) -> str:
    """A stable Slack-shaped user id for someone the config names by email or group."""
    return "U" + hashlib.sha256(text.encode()).hexdigest()[:9].upper()


def _yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _strings(value: Any) -> list[str]:
    items: Iterable[Any] = value if isinstance(value, list) else ()
    return [item for item in items if isinstance(item, str)]
