"""The azure provider under the contract suite, in both modes, against the local fake of
Azure Resource Manager, Microsoft Graph and the Entra ID token endpoints (over HTTPS,
through the official SDK and azure-identity's ClientSecretCredential)."""

from __future__ import annotations

import atexit
from datetime import datetime
from typing import ClassVar, Literal

from providers.azure import AzureProvider, AzureTarget
from providers.base import Principal, TargetSpec
from tests.contract.harnesses import ProviderHarness
from tests.fakes.azure import SUBSCRIPTION, FakeAzure


class AzureHarness(ProviderHarness):
    """PIM mode: the assignment exists while a schedule Azure would end is active."""

    id = "azure-pim"
    mode: ClassVar[Literal["pim", "rbac"]] = "pim"
    ends_access: ClassVar[bool] = True
    _fake: ClassVar[FakeAzure | None] = None

    def __init__(self) -> None:
        if AzureHarness._fake is None:  # one server for the run; reset per test
            AzureHarness._fake = FakeAzure().start()
            atexit.register(AzureHarness._fake.stop)
        self.fake = AzureHarness._fake
        self.fake.reset()
        self.fake.add_user("alice@example.com", mail="alice@example.com")
        self.fake.add_user("bob@example.com", mail="bob@example.com")
        self.delays: list[float] = []
        self.provider = AzureProvider(self.fake.clients(), sleep=self.delays.append)

    def make_target(self, name: str) -> TargetSpec:
        # Different names give different resource groups, so targets are independent.
        scope = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/contract-{name}"
        self.fake.add_scope(scope)
        return AzureTarget(role="Reader", scopes=[scope], mode=self.mode)

    def make_invalid_target(self) -> tuple[TargetSpec, str]:
        """A resource group the subscription does not have."""
        scope = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/contract-missing"
        return AzureTarget(role="Reader", scopes=[scope], mode=self.mode), ("ResourceGroupNotFound")

    def holds(self, principal: Principal, target: TargetSpec) -> bool:
        assert isinstance(target, AzureTarget)
        return (principal.email, target.scopes[0], "Reader") in self.fake.assignments()

    def ends_at(self, principal: Principal, target: TargetSpec) -> datetime | None:
        """The latest end of the principal's PIM schedules at the target's scope (an RBAC
        assignment has none)."""
        assert isinstance(target, AzureTarget)
        ends = [s["end"] for s in self.fake.schedules_at(target.scopes[0], principal.email)]
        return max((end for end in ends if end is not None), default=None)

    def break_next_grant(self, target: TargetSpec) -> None:
        """ARM refuses the next write at the target's scope, as it does without rights."""
        assert isinstance(target, AzureTarget)
        written = "roleAssignmentScheduleRequests" if self.mode == "pim" else "roleAssignments"
        self.fake.fail_next(
            403,
            "AuthorizationFailed",
            "The client does not have authorization to perform action "
            f"'Microsoft.Authorization/{written}/write'.",
            method="PUT",
            path_contains=target.scopes[0],
        )

    def close(self) -> None:
        """The fake is shared by the run; reset() clears it for the next test. A bug in
        the fake (answered 500) fails the test that met it."""
        assert not self.fake.internal_errors, self.fake.internal_errors


class AzureRbacHarness(AzureHarness):
    """RBAC mode: a plain role assignment that only the bot removes."""

    id = "azure-rbac"
    mode = "rbac"
    ends_access = False
