"""The ``azure`` provider: an Azure role (built-in or custom) on subscriptions, resource
groups or single resources, for as long as a request lasts.

Two ways to grant, chosen per target with ``mode``:

- ``pim`` (the default): a Privileged Identity Management *role assignment schedule
  request* (``AdminAssign``, expiring ``AfterDuration`` = the time granted, justification
  naming the request). Azure ends the assignment by itself, so access ends on time even
  when jit-bot is down: the cloud is the second line of defence. Ending early (or at
  expiry, again) sends ``AdminRemove``; an approved extension sends ``AdminExtend``, which
  keeps the assignment and moves its end. Needs Microsoft Entra ID P2 (or ID Governance)
  licences and a PIM role setting that allows active assignments of that length without
  MFA or approval for the bot's identity.
- ``rbac``: a plain role assignment named by a GUID derived from the request, scope and
  role, so a repeated grant is idempotent. Azure never ends it: the bot's revocation is the
  only line, as with AWS. For tenants without PIM licences.

Either way the requester's Slack email is resolved to a Microsoft Entra ID object id
through Microsoft Graph (``/users/{userPrincipalName}``, then a ``mail`` filter).
Credentials come from ``DefaultAzureCredential`` (workload identity, managed identity, or a
service principal in ``AZURE_*``): nothing runs inside the subscriptions.

Azure answers that mean "already done" are success: 409 ``RoleAssignmentExists`` on a
grant, 204/404 on a delete, ``RoleAssignmentDoesNotExist`` on ``AdminRemove``, and
``RoleAssignmentRequestExists`` on resending a PIM grant whose first answer was lost. 408,
429 and 500/502/503/504 (and no answer) are retried, honouring ``Retry-After``; every other
error fails with Azure's code and message, which the requester sees.

The package is split by concern: ``api`` (clients, errors, retries), ``graph`` (users),
``rbac`` (role definitions and assignments), ``pim`` (schedule requests); this module
composes them.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from providers import azure_rights
from providers.azure.api import RETRY, AzureApi, AzureClients
from providers.azure.graph import EntraUsers, UnknownUser
from providers.azure.pim import PimSchedules
from providers.azure.rbac import RoleAssignments, same_scope
from providers.azure.target import ROLE_ID, AzureTarget, as_azure
from providers.base import GrantOutcome, Holding, Provider, ProviderError
from providers.resilience import TtlCache

if TYPE_CHECKING:  # annotations only
    from providers.base import GrantContext, Principal, TargetSpec

log = logging.getLogger(__name__)

# What to give the bot's identity when the live check finds it may not write (docs/azure.md).
_RIGHTS_ADVICE: dict[str, str] = {
    # Role Based Access Control Administrator lacks roleAssignmentScheduleRequests/write.
    "pim": "give its identity User Access Administrator, or the custom role in docs/azure.md, "
    "at this scope",
    "rbac": "give its identity Role Based Access Control Administrator (or User Access "
    "Administrator) at this scope",
}


class AzureProvider(Provider):
    """Grants an Azure role through PIM (`PimSchedules`) or RBAC (`RoleAssignments`) to
    the requester's Entra ID user (`EntraUsers`); every call goes through `AzureApi`."""

    target_model = AzureTarget
    name = "azure"

    def __init__(
        self,
        clients: AzureClients,
        *,
        attempts: int = RETRY.attempts,
        deadline: float = 120.0,  # for a PIM request to be provisioned
        cache_ttl: float = 900.0,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = AzureApi(clients, dataclasses.replace(RETRY, attempts=attempts), sleep=sleep)
        self._rbac = RoleAssignments(self._api, TtlCache(cache_ttl, monotonic))
        self._users = EntraUsers(self._api, TtlCache(cache_ttl, monotonic))
        self._pim = PimSchedules(
            self._api,
            self._rbac,
            sleep=sleep,
            now=now or (lambda: datetime.now(UTC)),
            monotonic=monotonic,
            deadline=deadline,
        )

    # -------------------------------------------------------------- interface

    def validate(self, target: TargetSpec, *, live: bool = False) -> list[str]:
        """With ``live``: every scope exists, the role resolves at each of them, and the
        bot may write there what granting and revoking write (where Azure can say)."""
        azure = as_azure(target)
        if live:
            for scope in azure.scopes:
                try:
                    self._rbac.role(azure.role, scope)
                    self._check_rights(scope, azure.mode)
                except ProviderError as exc:
                    raise ProviderError(f"{scope}: {exc}", retryable=exc.retryable) from None
        return []

    def _check_rights(self, scope: str, mode: Literal["pim", "rbac"]) -> None:
        client = self._api.authorization(scope)
        held = self._api.arm(
            f"reading the bot's permissions at {scope}",
            lambda: azure_rights.permissions_at(client, scope),
        )
        if held is None:
            return  # a subscription: Azure's permissions API does not answer there
        lacking = azure_rights.missing(held, azure_rights.NEEDED[mode])
        if lacking:
            raise ProviderError(
                f"the bot may not {', '.join(lacking)} here; {_RIGHTS_ADVICE[mode]}"
            )

    def expand(self, target: TargetSpec) -> list[TargetSpec]:
        azure = as_azure(target)
        return [azure.model_copy(update={"scopes": [scope]}) for scope in azure.scopes]

    def describe(self, target: TargetSpec) -> str:
        azure = as_azure(target)
        name = azure.role
        if ROLE_ID.match(azure.role):
            try:
                name = self._rbac.role(azure.role, azure.scopes[0]).name
            except ProviderError as exc:
                # Only the display suffers; granting resolves the role again and fails loudly.
                log.warning("cannot name Azure role %s: %s", azure.role, exc)
        how = "PIM, ends by itself" if azure.mode == "pim" else "RBAC, removed by jit-bot"
        return f"Azure {', '.join(azure.scopes)}: role `{name}` ({how})"

    def grant(
        self, principal: Principal, target: TargetSpec, context: GrantContext
    ) -> GrantOutcome:
        azure = as_azure(target)
        object_id = self._users.object_id(principal.email)
        outcomes = []
        for scope in azure.scopes:
            role = self._rbac.role(azure.role, scope)
            if azure.mode == "pim":
                outcomes.append(self._pim.grant(scope, role, object_id, context))
            else:
                outcomes.append(self._rbac.grant(scope, role, object_id, context))
        who = f"Entra ID object {object_id}"
        if all(o.preexisting for o in outcomes):
            return GrantOutcome(
                preexisting=True, detail="; ".join(o.detail for o in outcomes), principal=who
            )
        return GrantOutcome(detail="; ".join(o.detail for o in outcomes if o.detail), principal=who)

    def revoke(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        azure = as_azure(target)
        object_id: str | None
        try:
            object_id = self._users.object_id(principal.email)
        except UnknownUser:
            if azure.mode == "pim":  # AdminRemove must name the principal
                raise
            # Their mail may have changed since the grant: our assignment's name does not.
            object_id = None
        for scope in azure.scopes:
            role = self._rbac.role(azure.role, scope)
            if object_id is None:
                self._rbac.revoke(scope, role, None, context)
            elif azure.mode == "pim":
                self._pim.revoke(scope, role, object_id, context)
            else:
                self._rbac.revoke(scope, role, object_id, context)

    def extend(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        """PIM: the request's assignment at every scope keeps its name and ends later
        (`PimSchedules.extend`). RBAC: nothing to do, Azure never ends those assignments;
        the bot's own revocation, rescheduled, is what ends them."""
        azure = as_azure(target)
        if azure.mode != "pim":
            return
        object_id = self._users.object_id(principal.email)
        for scope in azure.scopes:
            self._pim.extend(scope, self._rbac.role(azure.role, scope), object_id, context)

    def is_granted(self, principal: Principal, target: TargetSpec) -> bool | None:
        azure = as_azure(target)
        object_id = self._users.object_id(principal.email)
        return all(
            self._rbac.held(scope, self._rbac.role(azure.role, scope), object_id)
            for scope in azure.scopes
        )

    def inventory(self, target: TargetSpec) -> list[Holding] | None:
        """Every user holding the target's role at exactly each of its scopes."""
        found = []
        for unit in self.expand(target):
            azure = as_azure(unit)
            scope = azure.scopes[0]
            role = self._rbac.role(azure.role, scope)
            for item in self._rbac.at_scope(scope):
                if (
                    same_scope(item.scope, scope)
                    and item.role_guid == role.guid
                    and item.principal_type == "User"
                ):
                    found.append(Holding(email=self._users.email_of(item.principal_id), unit=unit))
        return found

    def refresh(self) -> None:
        self._rbac.refresh()
        self._users.refresh()

    # -------------------------------------------------------------- names

    @staticmethod
    def assignment_name(request_id: str, scope: str, role_guid: str) -> str:
        """The rbac role assignment's name: the same for every attempt of one request."""
        return RoleAssignments.assignment_name(request_id, scope, role_guid)

    @staticmethod
    def schedule_request_name(
        request_id: str, scope: str, role_guid: str, principal_id: str
    ) -> str:
        """The PIM AdminAssign request's name: the same for every attempt of one request."""
        return PimSchedules.request_name(request_id, scope, role_guid, principal_id)
