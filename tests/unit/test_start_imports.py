"""A bot pays for a cloud SDK only when it uses that cloud (issue 23): starting one — import
the app, build the default providers, load and check the example configuration (which
names every provider), build the runtime — imports none of the Google, Azure or
Kubernetes SDKs; the first call of a provider that needs its client imports its own SDK
and no other. Each case runs in a fresh interpreter, since this process has imported
every SDK long ago."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.kit.fresh import ROOT, last_value

# The SDKs' top-level packages, by the provider that needs them.
SDKS = {
    "gcp": ("google.cloud", "google.api_core", "grpc"),
    "azure": ("azure",),
    "kubernetes": ("kubernetes",),
}

# Appended to each snippet: prints which of the SDK packages it imported.
_REPORT = """
import sys
print(sorted(sdk for sdk in {every!r} if sdk in sys.modules))
"""


def _sdks_loaded_by(snippet: str, tmp_path: Path) -> set[str]:
    every = [sdk for sdks in SDKS.values() for sdk in sdks]
    return set(last_value(textwrap.dedent(snippet) + _REPORT.format(every=every), tmp_path))


def _start_up(roles: Path, approvers: Path, environ: dict[str, str]) -> str:
    """A snippet that builds the runtime as ``serve`` does (against a local Slack), from
    these files, and stops it; ``providers`` and ``runtime`` are left to look at."""
    return f"""
    from pathlib import Path
    from bot.app import build_runtime, default_providers
    from bot.local.slack import LocalSlack
    from bot.settings import Settings

    environ = {environ!r}
    slack = LocalSlack(token="xoxb-test").start()
    settings = Settings(
        bot_token="xoxb-test",
        signing_secret="a-signing-secret",
        api_url=slack.api_url,
        database_url="sqlite:///" + str(Path("bot.db").resolve()),
        roles_file={str(roles)!r},
        approvers_file={str(approvers)!r},
        audit_key="a-test-audit-key-0123456789abcdef",
    )
    providers = default_providers(environ)
    runtime = build_runtime(settings, providers=providers, environ=environ)
    runtime.stop()
    slack.stop()
    """


def test_starting_the_bot_with_every_provider_configured_imports_no_cloud_sdk(
    tmp_path: Path,
) -> None:
    environ = {
        "JIT_WEBHOOK_SECRET": "a-webhook-secret",
        "JIT_ORDERS_PG_DSN": "postgresql://jit@127.0.0.1:1/orders",
        "JIT_ORDERS_MYSQL_DSN": "mysql://jit@127.0.0.1:1/orders",
    }
    snippet = (
        _start_up(ROOT / "roles.yaml", ROOT / "approvers.yaml", environ)
        + """
    kinds = {t.provider for ts in runtime.service.config.targets.values() for t in ts}
    assert kinds == set(providers), kinds  # the example names every provider
    """
    )
    assert _sdks_loaded_by(snippet, tmp_path) == set()


def test_a_bot_without_aws_targets_never_imports_boto3(tmp_path: Path) -> None:
    """boto3 (with botocore, a tenth of a second of every start) is imported when an AWS
    target is first checked or called, as the other SDKs are."""
    roles, approvers = tmp_path / "roles.yaml", tmp_path / "approvers.yaml"
    roles.write_text(
        textwrap.dedent(
            """\
            roles:
              tooling:
                description: Admin of the internal tools
                max_duration: 4h
                environments:
                  dev:
                    - provider: webhook
                      name: tools
                      url: https://hooks.example.com/jit
                      secret_env: JIT_WEBHOOK_SECRET
            """
        )
    )
    approvers.write_text(
        "rules:\n  - environments: [dev]\n    roles: ['*']\n    auto_approve: true\n"
        "settings:\n  allowed_email_domains: [example.com]\n"
    )
    snippet = (
        _start_up(roles, approvers, {"JIT_WEBHOOK_SECRET": "a-webhook-secret"})
        + """
    import sys
    print(sorted(m for m in ("boto3", "botocore.client") if m in sys.modules))
    """
    )
    assert last_value(snippet, tmp_path) == []


_FIRST_CALL = {
    # Credentials are asked for once the client is built: a key file that is not there.
    "gcp": """
    from providers.base import Principal, ProviderError
    from providers.gcp import GcpProvider, GcpTarget

    provider = GcpProvider.from_environ(
        {"GOOGLE_APPLICATION_CREDENTIALS": "missing-key.json"}
    )
    target = GcpTarget(role="roles/logging.viewer", projects=["acme-prod"])
    try:
        provider.is_granted(Principal("U1", "alice@example.com"), target)
    except ProviderError as exc:
        assert "no Google credentials" in str(exc), exc
    else:
        raise AssertionError("granted without credentials")
    """,
    # An endpoint that answers nothing: the Graph client is built and called once.
    "azure": """
    from providers.azure import AzureClients, AzureProvider, AzureTarget
    from providers.base import Principal, ProviderError

    class NoToken:
        def get_token(self, *scopes, **kwargs):
            raise ProviderError("no token in this test")

    clients = AzureClients(NoToken(), graph_endpoint="https://127.0.0.1:9")
    provider = AzureProvider(clients, attempts=1, sleep=lambda _: None)
    scope = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/prod"
    target = AzureTarget(role="Reader", scopes=[scope], mode="rbac")
    try:
        provider.is_granted(Principal("U1", "alice@example.com"), target)
    except ProviderError:
        pass
    else:
        raise AssertionError("granted without a token")
    """,
    # A kubeconfig that is not there: the official client is built to read it.
    "kubernetes": """
    from providers.base import Principal, ProviderError
    from providers.kubernetes import KubeClusters, KubeconfigCluster, KubernetesProvider
    from providers.kubernetes import KubernetesTarget

    provider = KubernetesProvider(KubeClusters(), sleep=lambda _: None)
    cluster = KubeconfigCluster(kubeconfig="missing-kubeconfig", context="prod")
    target = KubernetesTarget(cluster=cluster, cluster_role="view", namespaces=["web"])
    try:
        provider.is_granted(Principal("U1", "alice@example.com"), target)
    except ProviderError as exc:
        assert "cannot use the kubeconfig" in str(exc), exc
    else:
        raise AssertionError("granted without a cluster")
    """,
}


@pytest.mark.parametrize("provider", sorted(_FIRST_CALL))
def test_a_providers_first_call_imports_its_own_sdk_and_no_other(
    provider: str, tmp_path: Path
) -> None:
    loaded = _sdks_loaded_by(_FIRST_CALL[provider], tmp_path)
    assert loaded, f"the {provider} call path never reached its SDK"
    assert loaded <= set(SDKS[provider])
