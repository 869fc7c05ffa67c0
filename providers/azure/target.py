"""What an ``azure`` entry of roles.yaml may say: scopes, the role, the mode."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from providers.base import TargetSpec

# PIM's shortest assignment, and the soonest it lets one be removed.
PIM_SHORTEST = timedelta(minutes=5)

_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
SUBSCRIPTION = re.compile(rf"^/subscriptions/({_GUID})", re.IGNORECASE)
# A resource group name: up to 90 letters, digits, underscores, hyphens, periods and
# parentheses, not ending in a period.
_RESOURCE_GROUP = r"[-\w.()]{0,89}[-\w()]"
# /providers/<Namespace>/<type>/<name>[/<type>/<name>…]
_RESOURCE = r"/providers/[A-Za-z][A-Za-z0-9]*(?:\.[A-Za-z0-9]+)+(?:/[A-Za-z][\w-]*/[^/\s?#`]+)+"
_SCOPE = re.compile(
    rf"^/subscriptions/({_GUID})(?:/resourceGroups/({_RESOURCE_GROUP})({_RESOURCE})?)?$",
    re.IGNORECASE,
)
ROLE_ID = re.compile(
    rf"^(?:(?:/subscriptions/{_GUID})?/providers/Microsoft\.Authorization/roleDefinitions/)?"
    rf"({_GUID})$",
    re.IGNORECASE,
)


def _scope(value: str) -> str:
    match = _SCOPE.match(value)
    if not match:
        raise ValueError(
            f"'{value}' is not an Azure scope; expected /subscriptions/<subscription id>, "
            "/subscriptions/<id>/resourceGroups/<name> or a resource id "
            "/subscriptions/<id>/resourceGroups/<name>/providers/<Namespace>/<type>/<name>"
        )
    subscription, group, resource = match.groups()
    # The fixed words are written as Azure writes them, so one scope has one spelling.
    canonical = f"/subscriptions/{subscription.lower()}"
    if group:
        canonical += f"/resourceGroups/{group}"
    if resource:
        canonical += "/providers/" + resource[len("/providers/") :]
    return canonical


def _role(value: str) -> str:
    if value != value.strip() or not value or not value.isprintable() or "`" in value:
        raise ValueError(
            "expected a role name such as Reader or a role definition id, on one line "
            "without backticks"
        )
    return value


Scope = Annotated[str, AfterValidator(_scope)]


class AzureTarget(TargetSpec):
    """One azure entry of a role's environment in roles.yaml.

    ``role`` is a built-in or custom role name (``Reader``) or a role definition id (the
    GUID, or ``/providers/Microsoft.Authorization/roleDefinitions/<GUID>``); names are
    resolved at each scope. ``mode`` chooses PIM schedules (Azure ends them itself) or
    plain RBAC assignments (only the bot ends them).
    """

    provider: Literal["azure"] = "azure"
    role: Annotated[str, Field(max_length=512), AfterValidator(_role)]
    scopes: Annotated[list[Scope], Field(min_length=1)]
    mode: Literal["pim", "rbac"] = "pim"

    def shortest_grant(self) -> tuple[timedelta, str] | None:
        if self.mode != "pim":
            return None
        # PIM refuses to end an assignment sooner (ActiveDurationTooShort): the bot's
        # revocation would fail and the access would last until PIM's own end.
        return PIM_SHORTEST, "Azure PIM cannot end access sooner than 5m"

    @model_validator(mode="after")
    def _distinct(self) -> AzureTarget:
        seen = [s.lower() for s in self.scopes]
        if len(set(seen)) != len(seen):
            raise ValueError("a scope is listed twice")
        return self


def as_azure(target: TargetSpec) -> AzureTarget:
    if not isinstance(target, AzureTarget):
        raise TypeError(f"the azure provider cannot handle {target.provider} targets")
    return target
