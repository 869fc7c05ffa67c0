"""Azure RBAC for the ``azure`` provider: role definitions by name or id, and plain role
assignments, named by a GUID derived from the request so a repeated grant is idempotent.
Azure never ends them: jit-bot's revocation is the only line (``mode: rbac``). PIM
(providers/azure/pim.py) reads assignments through this module too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC
from functools import partial
from typing import Any

from providers.azure.api import AzureFailure, CachedLookups, path
from providers.azure.target import ROLE_ID
from providers.base import GrantContext, GrantOutcome, ProviderError

# What every assignment description and PIM justification starts with: how the bot tells
# its own grants from standing access someone else set up.
MARKER = "jit-bot"

# Names of role assignments and PIM requests are uuid5 in this namespace; changing it
# would make retried grants of requests in flight create second assignments.
_NAMESPACE = uuid.UUID("5b0e3c52-4a1f-4c55-9a57-6a1f0d7b0f3e")
_MAX_TEXT = 450  # PIM justifications and assignment descriptions are short fields


@dataclass(frozen=True)
class RoleDefinition:
    id: str  # as ARM writes it at the scope, for request bodies
    guid: str  # lower case, for comparing
    name: str


@dataclass(frozen=True)
class Assigned:
    name: str
    scope: str
    role_guid: str
    principal_id: str
    principal_type: str
    description: str


class RoleAssignments(CachedLookups[RoleDefinition]):
    """Role definitions (kept in ``cache``) and role assignments."""

    @staticmethod
    def assignment_name(request_id: str, scope: str, role_guid: str) -> str:
        """The rbac role assignment's name: the same for every attempt of one request."""
        return str(uuid.uuid5(_NAMESPACE, f"rbac|{request_id}|{scope.lower()}|{role_guid}"))

    def role(self, role: str, scope: str) -> RoleDefinition:
        """A role name or id resolved at a scope (custom roles exist only where they are
        assignable; ids are written relative to the scope's subscription)."""

        def load() -> RoleDefinition:
            client = self._api.authorization(scope)
            by_id = ROLE_ID.match(role)
            if by_id:
                guid = by_id.group(1).lower()
                try:
                    found = self._api.arm(
                        f"reading role definition {guid} at {scope}",
                        lambda: client.role_definitions.get(path(scope), guid),
                    )
                except AzureFailure as failure:
                    if failure.status != 404:
                        raise
                    raise ProviderError(
                        f"no Azure role definition {guid} is assignable at {scope}"
                    ) from None
                return RoleDefinition(str(found.id), guid, str(found.role_name))
            escaped = role.replace("'", "''")
            listed = self._api.arm(
                f"looking up role `{role}` at {scope}",
                lambda: list(
                    client.role_definitions.list(path(scope), filter=f"roleName eq '{escaped}'")
                ),
            )
            matches = [d for d in listed if str(d.role_name).lower() == role.lower()]
            if not matches:
                raise ProviderError(
                    f"no Azure role named `{role}` is assignable at {scope}; check the name "
                    "(Access control (IAM) → Roles) or that the custom role's assignable "
                    "scopes include this scope"
                )
            if len(matches) > 1:
                raise ProviderError(
                    f"{len(matches)} Azure roles are named `{role}` at {scope}; use the role "
                    "definition id instead"
                )
            found = matches[0]
            return RoleDefinition(str(found.id), guid_of(str(found.id)), str(found.role_name))

        result: RoleDefinition = self._cache.get(("role", scope.lower(), role.lower()), load)
        return result

    def grant(
        self, scope: str, role: RoleDefinition, object_id: str, context: GrantContext
    ) -> GrantOutcome:
        from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters

        name = self.assignment_name(context.request_id, scope, role.guid)
        client = self._api.authorization(scope)
        parameters = RoleAssignmentCreateParameters(
            role_definition_id=role.id,
            principal_id=object_id,
            principal_type="User",
            description=note(context),
        )
        try:
            self._api.arm(
                f"assigning `{role.name}` at {scope}",
                lambda: client.role_assignments.create(path(scope), name, parameters),
            )
        except AzureFailure as failure:
            if failure.code != "RoleAssignmentExists":
                raise
            # The principal has the role here already: our earlier attempt, another
            # jit-bot grant, or standing access. Only the last is left alone at the end.
            return self.jit_held(scope, role, object_id, ours={name}) or standing(scope, role)
        return GrantOutcome()

    def revoke(
        self, scope: str, role: RoleDefinition, object_id: str | None, context: GrantContext
    ) -> None:
        client = self._api.authorization(scope)
        # By name first: a fresh assignment may not be listed yet. Then whatever else gives
        # this principal this role here (another request's assignment that this grant
        # relied on; the domain only revokes when no other active grant needs it).
        names = [self.assignment_name(context.request_id, scope, role.guid)]
        if object_id is not None:
            names += [a.name for a in self.held(scope, role, object_id)]
        for name in dict.fromkeys(names):
            try:
                self._api.arm(
                    f"removing the assignment of `{role.name}` at {scope}",
                    partial(client.role_assignments.delete, path(scope), name),
                )
            except AzureFailure as failure:
                if failure.status != 404:
                    raise

    def at_scope(self, scope: str) -> list[Assigned]:
        """Every role assignment at this scope or above it."""
        listed = self._api.list_for_scope(
            "role assignments", scope, lambda client: client.role_assignments, "atScope()"
        )
        return [assigned(item) for item in listed]

    def held(self, scope: str, role: RoleDefinition, object_id: str) -> list[Assigned]:
        """The principal's assignments of this role at exactly this scope."""
        listed = self._api.list_for_scope(
            "role assignments",
            scope,
            lambda client: client.role_assignments,
            f"principalId eq '{object_id}'",
        )
        return [
            a
            for a in map(assigned, listed)
            if same_scope(a.scope, scope)
            and a.role_guid == role.guid
            and a.principal_id.lower() == object_id.lower()
        ]

    def jit_held(
        self, scope: str, role: RoleDefinition, object_id: str, *, ours: set[str]
    ) -> GrantOutcome | None:
        """Azure says the principal holds the role here already: the outcome when that is
        jit-bot's own assignment (``ours``: names an earlier attempt gave it), None when it
        is someone else's (standing access, unless PIM says otherwise)."""
        held = self.held(scope, role, object_id)
        if not held:
            # Azure's lists lag its writes by seconds: the assignment is too new to be
            # standing access, so it is the one an earlier attempt of ours made.
            return GrantOutcome(detail="Azure reports the assignment exists (not listed yet)")
        for assignment in held:
            if assignment.name in ours or assignment.description.startswith(MARKER):
                return GrantOutcome(detail="jit-bot's assignment was already in place")
        return None


def standing(scope: str, role: RoleDefinition) -> GrantOutcome:
    """Access held outside jit-bot: left alone at the end."""
    return GrantOutcome(
        preexisting=True,
        detail=f"the user already held `{role.name}` at {scope} outside jit-bot",
    )


def assigned(item: Any) -> Assigned:
    return Assigned(
        name=str(item.name),
        scope=str(item.scope or ""),
        role_guid=guid_of(str(item.role_definition_id or "")),
        principal_id=str(item.principal_id or ""),
        principal_type=str(item.principal_type or ""),
        description=str(item.description or ""),
    )


def note(context: GrantContext, *, verb: str = "grants") -> str:
    """The PIM justification / assignment description: names the request, so Azure's own
    audit shows why access exists (``verb``: grants, extends, ends)."""
    text = (
        f"{MARKER} {context.request_id} {verb} {context.role} in {context.environment} "
        f"until {context.expires_at.astimezone(UTC):%Y-%m-%d %H:%M}Z: {context.reason}"
    )
    return " ".join(text.split())[:_MAX_TEXT]


def guid_of(role_definition_id: str) -> str:
    return role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower()


def same_scope(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()
