"""The providers local mode runs a config of one's own with: nothing leaves this machine.

A config named for local mode may hold AWS, GCP, Azure and webhook targets meant for a
real deployment. Local mode must not grant any of them, whatever credentials the shell
holds, and anyone at the page may act as any approver. So each provider name is served by
a `StandIn`: it reads and checks targets with the real provider's own target model (the
config is read exactly as the bot would read it), and every grant and revoke goes, signed,
through the real webhook provider to the embedded receiver, named after what the cloud
would have been asked for. The receiver's panel then shows it.
"""

from __future__ import annotations

from collections.abc import Mapping

from providers.aws.target import AwsTarget
from providers.azure.target import AzureTarget
from providers.base import GrantContext, GrantOutcome, Principal, Provider, TargetSpec
from providers.gcp.target import GcpTarget
from providers.kubernetes.target import KubernetesTarget
from providers.mysql.target import MysqlTarget
from providers.postgresql.target import PostgresTarget
from providers.webhook import WebhookProvider, WebhookTarget

#: The target models of the providers a deployment has; a stand-in serves each.
TARGET_MODELS: dict[str, type[TargetSpec]] = {
    "webhook": WebhookTarget,
    "aws": AwsTarget,
    "gcp": GcpTarget,
    "azure": AzureTarget,
    "kubernetes": KubernetesTarget,
    "postgresql": PostgresTarget,
    "mysql": MysqlTarget,
}
_NAME_MAX = 100  # a webhook target's name


class StandIn(Provider):
    """Provider ``name`` in local mode: its targets as the bot reads them, its grants and
    revocations sent to ``receiver_url`` (the embedded receiver) and nowhere else."""

    def __init__(self, webhook: WebhookProvider, receiver_url: str, secret_env: str) -> None:
        self._webhook = webhook
        self._receiver_url = receiver_url
        self._secret_env = secret_env

    def describe(self, target: TargetSpec) -> str:
        fields = target.model_dump(mode="json", exclude={"provider"}, exclude_defaults=True)
        shown = ", ".join(f"{key}={value}" for key, value in fields.items())
        return f"{self.name} ({shown})" if shown else self.name

    def grant(
        self, principal: Principal, target: TargetSpec, context: GrantContext
    ) -> GrantOutcome:
        return self._webhook.grant(principal, self._to_receiver(target), context)

    def revoke(self, principal: Principal, target: TargetSpec, context: GrantContext) -> None:
        self._webhook.revoke(principal, self._to_receiver(target), context)

    def endpoint(self, target: TargetSpec) -> str:
        return self._webhook.endpoint(self._to_receiver(target))

    def _to_receiver(self, target: TargetSpec) -> WebhookTarget:
        """The call the receiver gets in the cloud's place, named after the target."""
        name = " ".join(self.describe(target).split())  # one clean line
        if len(name) > _NAME_MAX:
            name = name[: _NAME_MAX - 1] + "…"
        return WebhookTarget(
            provider="webhook",
            name=name,
            url=self._receiver_url,
            secret_env=self._secret_env,
            allow_insecure=True,  # the receiver is plain http on 127.0.0.1
        )


def stand_ins(
    environ: Mapping[str, str], receiver_url: str, secret_env: str
) -> dict[str, Provider]:
    """A stand-in for every provider a deployment has, all sending to the receiver."""
    webhook = WebhookProvider(environ)
    return {
        name: _serving(name, model)(webhook, receiver_url, secret_env)
        for name, model in TARGET_MODELS.items()
    }


def _serving(name: str, model: type[TargetSpec]) -> type[StandIn]:
    """The stand-in class for provider ``name`` (providers name themselves per class)."""
    return type(f"{name.capitalize()}StandIn", (StandIn,), {"name": name, "target_model": model})
