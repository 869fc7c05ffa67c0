"""Azure PIM for the ``azure`` provider (``mode: pim``, the default): a *role assignment
schedule request* (``AdminAssign``, expiring ``AfterDuration`` = the time granted) that
Azure ends by itself, so access ends on time even when jit-bot is down. Ending early sends
``AdminRemove``; a later request of the same person relying on a jit-bot assignment
extends it (``AdminUpdate``); an approved extension of the request itself sends
``AdminExtend``, which keeps the assignment and moves its end.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from providers.azure.api import AzureApi, AzureFailure, path
from providers.azure.rbac import (
    _NAMESPACE,
    MARKER,
    RoleAssignments,
    RoleDefinition,
    guid_of,
    note,
    same_scope,
    standing,
)
from providers.azure.target import PIM_SHORTEST
from providers.base import GrantContext, GrantOutcome, ProviderError

if TYPE_CHECKING:  # annotations only: the SDK is imported where it is used
    from azure.mgmt.authorization import AuthorizationManagementClient

# PIM request statuses: effective, still moving, or waiting for a human.
_PIM_EFFECTIVE = frozenset({"Provisioned"})
_PIM_MOVING = frozenset(
    {
        "Accepted",
        "PendingEvaluation",
        "Granted",
        "PendingProvisioning",
        "ProvisioningStarted",
        "PendingScheduleCreation",
        "ScheduleCreated",
        "PendingExternalProvisioning",
        "AdminApproved",
    }
)
_PIM_WAITING = frozenset({"PendingApproval", "PendingApprovalProvisioning", "PendingAdminDecision"})


@dataclass(eq=False)
class PimSchedules:
    """PIM schedule requests at a scope; polls a request until it is provisioned, for at
    most ``deadline`` seconds."""

    api: AzureApi
    rbac: RoleAssignments
    _: KW_ONLY
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    monotonic: Callable[[], float] = time.monotonic
    deadline: float = 120.0

    @staticmethod
    def request_name(request_id: str, scope: str, role_guid: str, principal_id: str) -> str:
        """The PIM AdminAssign request's name: the same for every attempt of one request."""
        return str(
            uuid.uuid5(
                _NAMESPACE, f"pim|{request_id}|{scope.lower()}|{role_guid}|{principal_id.lower()}"
            )
        )

    @staticmethod
    def extension_name(
        request_id: str, scope: str, role_guid: str, principal_id: str, end: datetime
    ) -> str:
        """An AdminExtend request's name: the same for every attempt of one extension (to
        one end), so a resend whose first answer was lost finds the request it made."""
        return str(
            uuid.uuid5(
                _NAMESPACE,
                f"pim-extend|{request_id}|{scope.lower()}|{role_guid}|{principal_id.lower()}"
                f"|{end.astimezone(UTC):%Y-%m-%dT%H:%MZ}",
            )
        )

    def grant(
        self, scope: str, role: RoleDefinition, object_id: str, context: GrantContext
    ) -> GrantOutcome:
        from azure.mgmt.authorization.v2020_10_01 import models

        client = self.api.authorization(scope)
        name = self.request_name(context.request_id, scope, role.guid, object_id)
        what = f"PIM assignment of `{role.name}` at {scope}"
        read = partial(client.role_assignment_schedule_requests.get, path(scope), name)
        # A retried grant finds its own request (request names cannot be reused).
        try:
            earlier = self.api.arm(f"reading the {what}", read)
        except AzureFailure as failure:
            if failure.status != 404:
                raise
        else:
            self._settle(client, scope, name, str(earlier.status), what)
            return GrantOutcome()
        start = self.now()
        remaining = _whole_minutes(context.expires_at - start)
        request = models.RoleAssignmentScheduleRequest(
            principal_id=object_id,
            role_definition_id=role.id,
            request_type="AdminAssign",
            justification=note(context),
            ticket_info=models.RoleAssignmentScheduleRequestPropertiesTicketInfo(
                ticket_number=context.request_id, ticket_system=MARKER
            ),
            schedule_info=models.RoleAssignmentScheduleRequestPropertiesScheduleInfo(
                start_date_time=start,
                expiration=models.RoleAssignmentScheduleRequestPropertiesScheduleInfoExpiration(
                    type="AfterDuration", duration=_iso_duration(remaining)
                ),
            ),
        )
        try:
            created = self.api.arm(
                f"creating the {what}",
                lambda: client.role_assignment_schedule_requests.create(path(scope), name, request),
            )
        except AzureFailure as failure:
            if failure.code == "RoleAssignmentRequestExists":
                # A resent PUT whose first answer was lost (a timeout, a 5xx after PIM took
                # it): the request of this name is ours.
                created = self.api.arm(f"reading the {what}", read)
            elif failure.code == "RoleAssignmentExists":
                return self._existing(scope, role, object_id, context.expires_at)
            else:
                raise
        self._settle(client, scope, name, str(created.status), what)
        return GrantOutcome(detail=f"PIM ends it after {_iso_duration(remaining)}")

    def _settle(
        self, client: AuthorizationManagementClient, scope: str, name: str, status: str, what: str
    ) -> None:
        """Wait until PIM reports the request provisioned; fail on any other end."""
        started = self.monotonic()
        delay = 1.0
        while status in _PIM_MOVING:
            if self.monotonic() - started > self.deadline:
                raise ProviderError(
                    f"Azure {what}: still {status} after {self.deadline:.0f}s", retryable=True
                )
            self.sleep(delay)
            delay = min(delay * 2, 10.0)
            status = str(
                self.api.arm(
                    f"reading the {what}",
                    lambda: client.role_assignment_schedule_requests.get(path(scope), name),
                ).status
            )
        if status in _PIM_EFFECTIVE:
            return
        if status in _PIM_WAITING:
            # jit-bot's approvers have decided; a second approval in PIM would leave the
            # request hanging. Withdraw it and say what to change.
            self.api.arm(
                f"cancelling the {what}",
                lambda: client.role_assignment_schedule_requests.cancel(path(scope), name),
            )
            raise ProviderError(
                f"Azure {what}: PIM asks for approval ({status}); turn off approval on active "
                "assignment in this role's PIM settings, or use mode: rbac"
            )
        raise ProviderError(f"Azure {what}: PIM answered {status}")

    def revoke(
        self, scope: str, role: RoleDefinition, object_id: str, context: GrantContext
    ) -> None:
        from azure.mgmt.authorization.v2020_10_01 import models

        client = self.api.authorization(scope)
        request = models.RoleAssignmentScheduleRequest(
            principal_id=object_id,
            role_definition_id=role.id,
            request_type="AdminRemove",
            justification=note(context, verb="ends"),
            ticket_info=models.RoleAssignmentScheduleRequestPropertiesTicketInfo(
                ticket_number=context.request_id, ticket_system=MARKER
            ),
        )
        # A fresh name for every attempt: a removal is idempotent by its answer, not by its
        # name (a resend whose first answer was lost is told RoleAssignmentDoesNotExist).
        try:
            self.api.arm(
                f"removing the PIM assignment of `{role.name}` at {scope}",
                lambda: client.role_assignment_schedule_requests.create(
                    path(scope), str(uuid.uuid4()), request
                ),
            )
        except AzureFailure as failure:
            if failure.status == 404 or failure.code == "RoleAssignmentDoesNotExist":
                return  # ended already: by Azure at its expiry, or never granted
            if failure.code == "ActiveDurationTooShort":
                # PIM refuses removals within minutes of the assignment; the sweeper retries.
                raise ProviderError(str(failure), retryable=True) from None
            raise

    def extend(
        self, scope: str, role: RoleDefinition, object_id: str, context: GrantContext
    ) -> None:
        """Make the assignment this request holds end at ``context.expires_at`` (rounded up
        to the minute) with ``AdminExtend``: Azure keeps the same assignment and moves its
        schedule's end, so access never lapses and no second assignment appears. Nothing
        is sent when the schedule already ends at or after that time (never shortened);
        an assignment that is gone cannot be extended, and the access ends as planned."""
        from azure.mgmt.authorization.v2020_10_01 import models

        schedule = self._schedule(scope, role, object_id)
        if schedule is not None and (
            schedule["end"] is None or schedule["end"] >= context.expires_at
        ):
            return
        # Not listed (Azure's lists lag its writes): Azure itself says whether it exists.
        client = self.api.authorization(scope)
        start = self.now()
        end = _up_to_the_minute(max(context.expires_at, start + PIM_SHORTEST))
        name = self.extension_name(context.request_id, scope, role.guid, object_id, end)
        what = f"extension of the PIM assignment of `{role.name}` at {scope}"
        read = partial(client.role_assignment_schedule_requests.get, path(scope), name)
        request = models.RoleAssignmentScheduleRequest(
            principal_id=object_id,
            role_definition_id=role.id,
            request_type="AdminExtend",
            justification=note(context, verb="extends"),
            ticket_info=models.RoleAssignmentScheduleRequestPropertiesTicketInfo(
                ticket_number=context.request_id, ticket_system=MARKER
            ),
            schedule_info=models.RoleAssignmentScheduleRequestPropertiesScheduleInfo(
                start_date_time=start,
                expiration=models.RoleAssignmentScheduleRequestPropertiesScheduleInfoExpiration(
                    type="AfterDateTime", end_date_time=end
                ),
            ),
        )
        try:
            created = self.api.arm(
                f"sending the {what}",
                lambda: client.role_assignment_schedule_requests.create(path(scope), name, request),
            )
        except AzureFailure as failure:
            if failure.code == "RoleAssignmentRequestExists":
                created = self.api.arm(f"reading the {what}", read)  # ours, answer lost
            elif failure.code == "RoleAssignmentDoesNotExist":
                raise ProviderError(
                    f"Azure {what}: the assignment is gone (removed, or ended by PIM), so "
                    "it cannot be extended; the access has ended"
                ) from None
            else:
                raise
        self._settle(client, scope, name, str(created.status), what)

    def _extend(
        self,
        scope: str,
        role: RoleDefinition,
        object_id: str,
        until: datetime,
    ) -> None:
        """Make a jit-bot PIM assignment last until ``until``: another request of the same
        person relies on it for longer than the request that created it."""
        from azure.mgmt.authorization.v2020_10_01 import models

        client = self.api.authorization(scope)
        start = self.now()
        request = models.RoleAssignmentScheduleRequest(
            principal_id=object_id,
            role_definition_id=role.id,
            request_type="AdminUpdate",
            justification=f"{MARKER}: extended for a later request until {until:%Y-%m-%d %H:%M}Z",
            schedule_info=models.RoleAssignmentScheduleRequestPropertiesScheduleInfo(
                start_date_time=start,
                expiration=models.RoleAssignmentScheduleRequestPropertiesScheduleInfoExpiration(
                    type="AfterDuration", duration=_iso_duration(_whole_minutes(until - start))
                ),
            ),
        )
        self.api.arm(
            f"extending the PIM assignment of `{role.name}` at {scope}",
            lambda: client.role_assignment_schedule_requests.create(
                path(scope), str(uuid.uuid4()), request
            ),
        )

    def _existing(
        self, scope: str, role: RoleDefinition, object_id: str, until: datetime
    ) -> GrantOutcome:
        """Azure says the principal holds the role here already: find out whether jit-bot
        made that assignment (then it is ours to end, extended if it ends too soon) or not
        (standing access)."""
        found = self.rbac.jit_held(scope, role, object_id, ours=set())
        if found is not None:
            return found
        schedule = self._schedule(scope, role, object_id)
        if schedule is not None and schedule["end"] is not None and schedule["jit"]:
            if schedule["end"] < until:
                self._extend(scope, role, object_id, until)
                return GrantOutcome(detail="extended jit-bot's PIM assignment")
            return GrantOutcome(detail="jit-bot's PIM assignment was already in place")
        return standing(scope, role)

    def _schedule(self, scope: str, role: RoleDefinition, object_id: str) -> dict[str, Any] | None:
        client = self.api.authorization(scope)
        schedules = self.api.list_for_scope(
            "PIM schedules",
            scope,
            lambda client: client.role_assignment_schedules,
            f"principalId eq '{object_id}'",
        )
        for schedule in schedules:
            if not same_scope(str(schedule.scope), scope):
                continue
            if guid_of(str(schedule.role_definition_id)) != role.guid:
                continue
            jit = False
            request_id = schedule.role_assignment_schedule_request_id
            if request_id:
                request_name = str(request_id).rstrip("/").rsplit("/", 1)[-1]
                try:
                    request = self.api.arm(
                        f"reading PIM request {request_name}",
                        partial(
                            client.role_assignment_schedule_requests.get,
                            path(scope),
                            request_name,
                        ),
                    )
                except AzureFailure as failure:
                    if failure.status != 404:
                        raise
                else:
                    jit = str(request.justification or "").startswith(MARKER)
            return {"end": schedule.end_date_time, "jit": jit}
        return None


def _whole_minutes(value: timedelta) -> timedelta:
    """Rounded up to the minute, at least five (PIM's shortest assignment): the bot itself
    revokes on the second, Azure's own end is the backstop."""
    minutes = max(PIM_SHORTEST // timedelta(minutes=1), -(-int(value.total_seconds()) // 60))
    return timedelta(minutes=minutes)


def _up_to_the_minute(moment: datetime) -> datetime:
    """PIM schedules end on whole minutes; rounding up never ends access before the bot's
    own revocation, which is on the second."""
    floored = moment.replace(second=0, microsecond=0)
    return floored if floored == moment else floored + timedelta(minutes=1)


def _iso_duration(value: timedelta) -> str:
    """ISO-8601 duration, e.g. PT2H, PT1H30M, P1DT4H."""
    days, rest = divmod(int(value.total_seconds()), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    date = f"{days}D" if days else ""
    time_ = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    if not date and not time_:
        return "PT0S"
    return f"P{date}" + (f"T{time_}" if time_ else "")
