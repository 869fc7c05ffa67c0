"""How the provider contract suite reaches each provider and the backend behind it.

A harness builds one provider against a real-shaped backend (in-memory for the fake, a
local HTTP receiver for the webhook, moto or a local REST fake for the clouds), makes
valid targets for it and reads the backend's own state, so the contract is checked
against what the backend holds rather than what the provider says.

To put a new provider under the contract, subclass ProviderHarness and add the class to
HARNESSES.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from types import SimpleNamespace
from typing import ClassVar

from providers.aws import AwsClients, AwsProvider, AwsTarget
from providers.base import Principal, Provider, TargetSpec
from providers.fake import FakeProvider, FakeTarget
from providers.webhook import WebhookProvider, WebhookTarget
from tests.fakes.aws import REGION, MotoAws
from tests.fakes.webhook_receiver import WebhookReceiver


class ProviderHarness(ABC):
    """One provider wired to its backend. Constructed fresh for every test."""

    id: ClassVar[str]
    provider: Provider
    #: Whether the provider can read who holds access back from its backend. If it can,
    #: is_granted must answer True or False exactly; if not, None ("cannot tell"), never
    #: a guess.
    reports_grants: ClassVar[bool] = True
    #: Whether the backend ends access by itself at a time it holds (a GCP condition, an
    #: Azure PIM schedule) and `ends_at` reads that time; if not, `ends_at` is None and the
    #: bot's own revocation is what ends access.
    ends_access: ClassVar[bool] = False

    @abstractmethod
    def make_target(self, name: str) -> TargetSpec:
        """A valid target of this provider; different names give independent targets."""

    @abstractmethod
    def make_invalid_target(self) -> tuple[TargetSpec, str]:
        """A target that is well-formed but that the backend cannot serve (a resource it
        does not have, an address it must not use), and the words the provider's
        ``validate(target, live=True)`` error must contain to say what is wrong."""

    @abstractmethod
    def holds(self, principal: Principal, target: TargetSpec) -> bool:
        """Whether the backend itself says the principal has this access now."""

    def ends_at(self, principal: Principal, target: TargetSpec) -> datetime | None:
        """When the backend itself will take this access away (the latest end it holds for
        the principal), where it ends access by itself (``ends_access``); None otherwise."""
        return None

    def break_next_grant(self, target: TargetSpec) -> None:
        """Make the next grant of ``target`` fail however many times the provider retries.
        Harnesses that cannot inject failures leave this as is and the test is skipped."""
        raise NotImplementedError

    @abstractmethod
    def close(self) -> None:
        """Release whatever the harness started (servers, temporary accounts)."""


class FakeHarness(ProviderHarness):
    id = "fake"

    def __init__(self) -> None:
        self.backend = FakeProvider()
        self.provider = self.backend

    def make_target(self, name: str) -> TargetSpec:
        return FakeTarget(provider="fake", resource=name)

    def make_invalid_target(self) -> tuple[TargetSpec, str]:
        self.backend.missing.add("gone")
        return FakeTarget(provider="fake", resource="gone"), "`gone` does not exist"

    def holds(self, principal: Principal, target: TargetSpec) -> bool:
        assert isinstance(target, FakeTarget)
        return (principal.email, target.resource) in self.backend.holdings

    def break_next_grant(self, target: TargetSpec) -> None:
        assert isinstance(target, FakeTarget)
        # The fake retries a temporary failure itself: fail every attempt of one call.
        attempts = self.backend.retry.attempts
        self.backend.fail(
            "grant", target.resource, "injected failure", times=attempts, retryable=True
        )

    def close(self) -> None:
        """The in-memory backend goes away with the harness; nothing to release."""


class WebhookHarness(ProviderHarness):
    id = "webhook"
    reports_grants = False  # a receiver's holdings are its own; nothing reads them back
    SECRET_ENV = "JIT_CONTRACT_WEBHOOK_SECRET"
    SECRET = "contract-test-secret-0f1e2d3c"  # a test key, not a credential

    def __init__(self) -> None:
        self.receiver = WebhookReceiver(self.SECRET).start()
        self.delays: list[float] = []
        self.provider = WebhookProvider({self.SECRET_ENV: self.SECRET}, sleep=self.delays.append)

    def make_target(self, name: str) -> TargetSpec:
        return WebhookTarget(
            provider="webhook",
            name=name,
            url=self.receiver.url,
            secret_env=self.SECRET_ENV,
            allow_insecure=True,  # the receiver is plain http on 127.0.0.1
            timeout_seconds=5,
            max_attempts=3,
        )

    def make_invalid_target(self) -> tuple[TargetSpec, str]:
        """Grant events in clear text to another host: refused unless asked for."""
        target = WebhookTarget(
            provider="webhook",
            name="plain",
            url="http://receiver.example.com/jit",
            secret_env=self.SECRET_ENV,
        )
        return target, "expected an https:// URL"

    def holds(self, principal: Principal, target: TargetSpec) -> bool:
        assert isinstance(target, WebhookTarget)
        return (principal.email, target.name) in self.receiver.holdings

    def break_next_grant(self, target: TargetSpec) -> None:
        assert isinstance(target, WebhookTarget)
        self.receiver.fail_next(times=target.max_attempts, status=503, body="unavailable")

    def close(self) -> None:
        self.receiver.stop()


HARNESSES: list[type[ProviderHarness]] = [FakeHarness, WebhookHarness]


class AwsHarness(ProviderHarness):
    """IAM Identity Center in moto's server mode, reached over HTTP."""

    id = "aws"
    _moto: MotoAws | None = None

    def __init__(self) -> None:
        if AwsHarness._moto is None:  # one server for the run; reset per test
            AwsHarness._moto = MotoAws().start()
        self.moto = AwsHarness._moto
        self.moto.reset()
        self.seeded = self.moto.seed()
        self.clients = AwsClients(
            self.moto.session(), region=REGION, endpoint_url=self.moto.endpoint
        )
        self.provider = AwsProvider(self.clients, sleep=lambda _: None)
        self._accounts = iter(self.seeded.accounts.values())
        self._by_name: dict[str, str] = {}

    def make_target(self, name: str) -> TargetSpec:
        # Different names give different accounts, so targets are independent.
        if name not in self._by_name:
            self._by_name[name] = next(self._accounts)
        return AwsTarget(permission_set="ProdSupport", accounts=[self._by_name[name]])

    def make_invalid_target(self) -> tuple[TargetSpec, str]:
        """An account that is not in the organization."""
        return AwsTarget(permission_set="ProdSupport", accounts=["999999999999"]), (
            "account 999999999999"
        )

    def holds(self, principal: Principal, target: TargetSpec) -> bool:
        assert isinstance(target, AwsTarget)
        sso = self.moto.client("sso-admin")
        user_id = self.seeded.users[principal.email]
        listed = sso.list_account_assignments(
            InstanceArn=self.seeded.instance_arn,
            AccountId=target.accounts[0],
            PermissionSetArn=self.seeded.permission_sets["ProdSupport"],
        )["AccountAssignments"]
        return any(a["PrincipalId"] == user_id for a in listed)

    def break_next_grant(self, target: TargetSpec) -> None:
        """AWS refuses the next CreateAccountAssignment (answered before it is sent)."""
        events = self.clients.client("sso-admin").meta.events
        error: dict[str, object] = {
            "Error": {"Code": "AccessDeniedException", "Message": "injected"}
        }
        pending = [error]

        def refuse(**_: object) -> tuple[object, dict[str, object]] | None:
            if not pending:
                return None
            return (SimpleNamespace(status_code=400, headers={}), pending.pop())

        events.register("before-call.sso-admin.CreateAccountAssignment", refuse)

    def close(self) -> None:
        """The moto server is shared by the run; reset() clears it for the next test."""


HARNESSES.append(AwsHarness)

from tests.contract.harness_azure import AzureHarness, AzureRbacHarness  # noqa: E402

HARNESSES += [AzureHarness, AzureRbacHarness]

from tests.contract.harness_gcp import GcpHarness  # noqa: E402 (it subclasses ProviderHarness)

HARNESSES.append(GcpHarness)

from tests.contract.harness_postgresql import PostgresHarness  # noqa: E402

HARNESSES.append(PostgresHarness)

from tests.contract.harness_mysql import MysqlHarness  # noqa: E402

HARNESSES.append(MysqlHarness)

from tests.contract.harness_kubernetes import KubernetesHarness  # noqa: E402

HARNESSES.append(KubernetesHarness)
