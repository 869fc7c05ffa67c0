"""The gcp provider under the contract: the official Google clients against FakeGoogle,
a local server that follows the Cloud Resource Manager v3 contract (etags, 409 ABORTED,
version 3 policies). ``holds`` reads the policy the fake stores, not the provider."""

from __future__ import annotations

from datetime import UTC, datetime

from providers.base import Principal, TargetSpec
from providers.gcp import GcpClients, GcpProvider, GcpTarget
from tests.contract.harnesses import ProviderHarness
from tests.fakes.gcp import FakeGoogle


class GcpHarness(ProviderHarness):
    id = "gcp"
    ends_access = True
    ROLE = "roles/logging.viewer"
    _google: FakeGoogle | None = None

    def __init__(self) -> None:
        if GcpHarness._google is None:  # one server for the run; reset per test
            GcpHarness._google = FakeGoogle().start()
        self.google = GcpHarness._google
        self.google.reset()
        clients = GcpClients(
            self.google.credentials(),
            api_endpoint=self.google.url,
            iam_endpoint=self.google.iam_endpoint,
        )
        self.provider = GcpProvider(clients, sleep=lambda _: None)

    def make_target(self, name: str) -> TargetSpec:
        # Different names give different projects, so targets are independent.
        project = f"contract-{name}"
        if f"projects/{project}" not in self.google.resources():
            self.google.add_project(project)
        return GcpTarget(role=self.ROLE, projects=[project])

    def make_invalid_target(self) -> tuple[TargetSpec, str]:
        """A project Google does not show the bot."""
        return GcpTarget(role=self.ROLE, projects=["contract-missing"]), (
            "project contract-missing"
        )

    def holds(self, principal: Principal, target: TargetSpec) -> bool:
        """Unconditionally, or through a binding whose expiry condition is still ahead."""
        assert isinstance(target, GcpTarget)
        member = f"user:{principal.email}"
        now = datetime.now(UTC)
        for binding in self.google.policy(f"projects/{target.projects[0]}").get("bindings", []):
            if binding["role"] != self.ROLE or member not in binding["members"]:
                continue
            condition = binding.get("condition")
            if condition is None:
                return True
            expiry = FakeGoogle.expiry(condition)
            if expiry is not None and expiry > now:
                return True
        return False

    def ends_at(self, principal: Principal, target: TargetSpec) -> datetime | None:
        """The latest end of the principal's live jit-bot bindings of the role."""
        assert isinstance(target, GcpTarget)
        live = self.google.live_bindings(
            f"projects/{target.projects[0]}", f"user:{principal.email}"
        )
        ends = [FakeGoogle.expiry(b["condition"]) for b in live if b["role"] == self.ROLE]
        return max((end for end in ends if end is not None), default=None)

    def break_next_grant(self, target: TargetSpec) -> None:
        """Google refuses the next setIamPolicy (403), which no retry can fix."""
        self.google.fail_next("setIamPolicy", status=403, message="injected refusal")

    def close(self) -> None:
        """The server is shared by the run; reset() clears it for the next test. A bug in
        the fake (answered 500) fails the test that met it."""
        assert not self.google.internal_errors, self.google.internal_errors
