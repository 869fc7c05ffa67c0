"""The principals of role assignments, from Microsoft Graph: each user's mail (or user
principal name, which is what names people in jit-bot, as in the azure provider's
lookups) and each group's display name and users, nested groups included
(``transitiveMembers``), every page followed (``@odata.nextLink``).

Service principals and principals of other tenants are not read: they are not people,
and convert.py says how many assignments it skipped for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from bot.importer.azure.estate import Assignment, Directory
from providers.azure.api import AzureApi

_USER_FIELDS = "id,mail,userPrincipalName"


def read_directory(api: AzureApi, assignments: Iterable[Assignment]) -> Directory:
    listed = list(assignments)
    people: dict[str, str] = {}
    for user in sorted({a.principal_id for a in listed if a.principal_type == "User"}):
        found = api.graph(
            f"reading user {user}",
            "GET",
            f"/v1.0/users/{user}",
            {"$select": _USER_FIELDS},
            missing_ok=True,  # deleted: its assignments reach nobody
        )
        if found is not None:
            people[user] = email_of(found)
    groups: dict[str, str] = {}
    members: dict[str, tuple[str, ...]] = {}
    for group in sorted({a.principal_id for a in listed if a.principal_type == "Group"}):
        found = api.graph(
            f"reading group {group}",
            "GET",
            f"/v1.0/groups/{group}",
            {"$select": "id,displayName"},
            missing_ok=True,
        )
        if found is None:
            continue
        groups[group] = str(found.get("displayName") or group)
        ids = []
        for user in _pages(
            api,
            f"listing the members of group {group}",
            f"/v1.0/groups/{group}/transitiveMembers/microsoft.graph.user",
            {"$select": _USER_FIELDS, "$top": "999"},
        ):
            user_id = str(user["id"]).lower()
            people.setdefault(user_id, email_of(user))
            ids.append(user_id)
        members[group] = tuple(ids)
    return Directory(people, groups, members)


def email_of(user: dict[str, Any]) -> str:
    return str(user.get("mail") or user.get("userPrincipalName") or user["id"]).lower()


def _pages(api: AzureApi, what: str, path: str, params: dict[str, str]) -> Iterator[Any]:
    while True:
        body = api.graph(what, "GET", path, params) or {}
        yield from body.get("value") or []
        link = body.get("@odata.nextLink")
        if not link:
            return
        parts = urlsplit(str(link))  # on the Graph endpoint, with its own query
        path, params = parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))
