"""Reading role assignments of Azure subscriptions through the azure provider's clients,
read-only.

Per subscription: its display name and tags, its resource groups, the role definitions
assignable there (built-in and custom) and every role assignment at it, above it and
below it (resource groups and resources). Each call goes through the provider's
`AzureApi` under its `RETRY` policy, with its credential and endpoints; every list is
followed to its last page (``nextLink``). The principals are read from Microsoft Graph
by directory.py. Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from azure.core.rest import HttpRequest

from bot.importer.access import CannotImport
from bot.importer.azure.directory import read_directory
from bot.importer.azure.estate import (
    Assignment,
    Estate,
    Permission,
    ResourceGroup,
    RoleDefinition,
    Subscription,
)
from bot.importer.azure.scopes import canonical, group_key
from providers.azure.api import AzureApi, AzureFailure
from providers.base import ProviderError

SUBSCRIPTIONS_API = "2022-12-01"
RESOURCE_GROUPS_API = "2021-04-01"


class EstateError(CannotImport):
    """The estate cannot be read (refused, no such subscription); the message says why."""


def read_estate(api: AzureApi, subscriptions: Sequence[str]) -> Estate:
    """Everything the import needs, in one pass; EstateError when Azure refuses."""
    try:
        return _Reader(api).read(subscriptions)
    except ProviderError as exc:
        raise EstateError(f"cannot read the Azure estate: {one_line(str(exc))}") from None


def one_line(text: str) -> str:
    """Azure's and azure-identity's messages span lines; the command says one."""
    return " ".join(text.split())


class _Reader:
    def __init__(self, api: AzureApi) -> None:
        self._api = api

    def read(self, subscriptions: Sequence[str]) -> Estate:
        subs: dict[str, Subscription] = {}
        groups: dict[str, ResourceGroup] = {}
        roles: dict[str, RoleDefinition] = {}
        assignments: dict[str, Assignment] = {}
        for wanted in dict.fromkeys(s.lower() for s in subscriptions):
            subscription = self._subscription(wanted)
            subs[subscription.id] = subscription
            for group in self._resource_groups(subscription.id):
                groups[group_key(group.subscription, group.name)] = group
            for role in self._role_definitions(subscription.id):
                roles.setdefault(role.guid, role)
            for found in self._assignments(subscription.id):
                # Assignments above the subscriptions are listed in each: keep one.
                assignments.setdefault(found.id.lower(), found)
        for found in assignments.values():
            if found.role_guid not in roles and found.scope:
                fetched = self._role_definition(found.scope, found.role_guid)
                if fetched is not None:  # deleted: convert.py counts what is left of it
                    roles[fetched.guid] = fetched
        listed = tuple(assignments.values())
        return Estate(subs, groups, roles, listed, read_directory(self._api, listed))

    def _get(self, what: str, url: str, params: dict[str, str]) -> dict[str, Any]:
        client = self._api.clients.resource_manager()

        def call() -> dict[str, Any]:
            response = client.send_request(HttpRequest("GET", url, params=params))
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            return body

        return self._api.arm(what, call)

    def _subscription(self, subscription: str) -> Subscription:
        url = f"{self._api.clients.arm_endpoint}/subscriptions/{subscription}"
        body = self._get(
            f"reading subscription {subscription}", url, {"api-version": SUBSCRIPTIONS_API}
        )
        return Subscription(subscription, str(body.get("displayName") or subscription), _tags(body))

    def _resource_groups(self, subscription: str) -> Iterator[ResourceGroup]:
        url: str | None = (
            f"{self._api.clients.arm_endpoint}/subscriptions/{subscription}/resourcegroups"
        )
        params = {"api-version": RESOURCE_GROUPS_API}
        while url:
            body = self._get(f"listing the resource groups of {subscription}", url, params)
            for group in body.get("value") or []:
                yield ResourceGroup(subscription, str(group["name"]), _tags(group))
            url, params = body.get("nextLink"), {}  # the link carries its own query

    def _role_definitions(self, subscription: str) -> list[RoleDefinition]:
        client = self._api.clients.authorization(subscription)
        listed = self._api.arm(
            f"listing the role definitions of {subscription}",
            lambda: list(client.role_definitions.list(f"subscriptions/{subscription}")),
        )
        return [role_definition(item) for item in listed]

    def _role_definition(self, scope: str, guid: str) -> RoleDefinition | None:
        client = self._api.authorization(scope)
        try:
            found = self._api.arm(
                f"reading role definition {guid} at {scope}",
                lambda: client.role_definitions.get(scope.lstrip("/"), guid),
            )
        except AzureFailure as failure:
            if failure.status == 404:
                return None
            raise
        return role_definition(found)

    def _assignments(self, subscription: str) -> list[Assignment]:
        client = self._api.clients.authorization(subscription)
        listed = self._api.arm(
            f"listing the role assignments of {subscription}",
            lambda: list(client.role_assignments.list_for_subscription()),
        )
        return [
            Assignment(
                id=str(item.id),
                scope=canonical(str(item.scope or "")) or "",
                role_guid=str(item.role_definition_id or "").rstrip("/").rsplit("/", 1)[-1].lower(),
                principal_id=str(item.principal_id or "").lower(),
                principal_type=str(item.principal_type or ""),
                condition=bool(getattr(item, "condition", None)),
            )
            for item in listed
        ]


def role_definition(item: Any) -> RoleDefinition:
    """The SDK's role definition as plain values."""
    return RoleDefinition(
        guid=str(item.name).lower(),
        name=str(item.role_name),
        custom=str(item.role_type or "") == "CustomRole",
        permissions=tuple(
            Permission(
                tuple(p.actions or ()),
                tuple(p.not_actions or ()),
                tuple(p.data_actions or ()),
                tuple(p.not_data_actions or ()),
            )
            for p in item.permissions or ()
        ),
        assignable_scopes=tuple(item.assignable_scopes or ()),
    )


def _tags(body: dict[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (body.get("tags") or {}).items()}
