"""How the ``azure`` provider talks to Azure: the clients (ARM per subscription, a small
Microsoft Graph client, one credential), Azure's error answers as `AzureFailure`, and
every call retried under the provider's one `RETRY` policy (providers/resilience.py).

408, 429 and 500/502/503/504 (and no answer) are retried, honouring ``Retry-After``;
every other error fails at once with Azure's code and message.

The Azure SDK is imported in the functions that build clients and read its errors
(docs/development.md, "Cloud SDKs are imported where they are used").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import urlsplit

from providers.azure.target import SUBSCRIPTION
from providers.base import ProviderError
from providers.resilience import Retrying, RetryPolicy, TtlCache, parse_retry_after

if TYPE_CHECKING:  # annotations only: the SDK is imported where it is used
    from azure.core import PipelineClient
    from azure.core.credentials import AccessToken, AccessTokenInfo, TokenCredential
    from azure.core.exceptions import HttpResponseError
    from azure.core.rest import HttpRequest, HttpResponse
    from azure.mgmt.authorization import AuthorizationManagementClient
    from azure.profiles import ProfileDefinition

T = TypeVar("T")

ARM_ENDPOINT = "https://management.azure.com"
GRAPH_ENDPOINT = "https://graph.microsoft.com"
RETRY_AFTER_CAP_SECONDS = 120.0
#: Six tries, the backoff doubling from 1s to at most 30s, or what Azure's Retry-After
#: asks (at most RETRY_AFTER_CAP_SECONDS). No more than 90s of waiting per call: a wait
#: that would pass that is not started, and the call fails as retryable (the sweeper tries
#: again later), so no one call waits past the revocation deadline
#: (tests/unit/test_resilience.py).
RETRY = RetryPolicy(
    attempts=6, base=1.0, cap=30.0, retry_after_cap=RETRY_AFTER_CAP_SECONDS, budget=90.0
)
_RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class AzureClients:
    """Builds the Azure clients: one ``AuthorizationManagementClient`` per subscription
    and a small Microsoft Graph client, sharing one credential. The SDK's own retries are
    off; the provider retries, so that waiting can be observed and bounded."""

    def __init__(
        self,
        credential: TokenCredential,
        *,
        arm_endpoint: str = ARM_ENDPOINT,
        graph_endpoint: str = GRAPH_ENDPOINT,
        connection_verify: bool | str = True,
        timeout: float = 30.0,
    ) -> None:
        self.credential = credential
        self.arm_endpoint = arm_endpoint.rstrip("/")
        self.graph_endpoint = graph_endpoint.rstrip("/")
        self._transport: dict[str, Any] = {
            "connection_verify": connection_verify,
            "connection_timeout": 10,
            "read_timeout": timeout,
        }
        self._lock = threading.Lock()
        self._authorization: dict[str, AuthorizationManagementClient] = {}
        self._graph: PipelineClient[HttpRequest, HttpResponse] | None = None
        self._arm: PipelineClient[HttpRequest, HttpResponse] | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> AzureClients:
        """``DefaultAzureCredential`` reads its own ``AZURE_*`` variables (tenant, client
        id, secret or federated token file, ``AZURE_AUTHORITY_HOST``). The endpoints can be
        moved for sovereign clouds: ``JIT_AZURE_ARM_ENDPOINT``, ``JIT_AZURE_GRAPH_ENDPOINT``.
        ``JIT_AZURE_DISABLE_INSTANCE_DISCOVERY=true`` is for an authority Microsoft does not
        know (Azure Stack Hub, ADFS, a local test authority)."""
        options: dict[str, Any] = {}
        if environ.get("JIT_AZURE_DISABLE_INSTANCE_DISCOVERY", "").lower() in ("1", "true"):
            options["disable_instance_discovery"] = True
        return cls(
            _OnFirstUse(options),
            arm_endpoint=environ.get("JIT_AZURE_ARM_ENDPOINT") or ARM_ENDPOINT,
            graph_endpoint=environ.get("JIT_AZURE_GRAPH_ENDPOINT") or GRAPH_ENDPOINT,
        )

    def authorization(self, subscription_id: str) -> AuthorizationManagementClient:
        from azure.mgmt.authorization import AuthorizationManagementClient

        with self._lock:
            client = self._authorization.get(subscription_id)
            if client is None:
                client = AuthorizationManagementClient(
                    self.credential,
                    subscription_id,
                    base_url=self.arm_endpoint,
                    profile=_profile(),
                    credential_scopes=[f"{_origin(self.arm_endpoint)}/.default"],
                    retry_total=0,
                    user_agent="jit-bot",
                    # One INFO line per header of every call otherwise; the provider logs
                    # what matters itself.
                    http_logging_level=logging.DEBUG,
                    **self._transport,
                )
                self._authorization[subscription_id] = client
            return client

    def resource_manager(self) -> PipelineClient[HttpRequest, HttpResponse]:
        """A plain ARM client, for the reads the authorization SDK has no operation for
        (a subscription, its resource groups): same credential, endpoint and transport."""
        with self._lock:
            if self._arm is None:
                self._arm = self._pipeline(self.arm_endpoint)
            return self._arm

    def graph(self) -> PipelineClient[HttpRequest, HttpResponse]:
        with self._lock:
            if self._graph is None:
                self._graph = self._pipeline(self.graph_endpoint)
            return self._graph

    def _pipeline(self, endpoint: str) -> PipelineClient[HttpRequest, HttpResponse]:
        from azure.core import PipelineClient
        from azure.core.pipeline.policies import (
            BearerTokenCredentialPolicy,
            HeadersPolicy,
            HttpLoggingPolicy,
            UserAgentPolicy,
        )
        from azure.core.pipeline.transport import RequestsTransport

        return PipelineClient(
            base_url=endpoint,
            policies=[
                HeadersPolicy({"Accept": "application/json"}),
                UserAgentPolicy("jit-bot"),
                BearerTokenCredentialPolicy(self.credential, f"{_origin(endpoint)}/.default"),
                HttpLoggingPolicy(http_logging_level=logging.DEBUG),
            ],
            transport=RequestsTransport(**self._transport),
        )


def _profile() -> ProfileDefinition:
    """Pinned API versions: role assignments and definitions 2022-04-01, PIM 2020-10-01."""
    from azure.profiles import ProfileDefinition

    return ProfileDefinition(
        {
            "azure.mgmt.authorization.AuthorizationManagementClient": {
                None: "2022-04-01",
                "role_assignment_schedule_requests": "2020-10-01",
                "role_assignment_schedules": "2020-10-01",
            }
        },
        "jit-bot",
    )


class _OnFirstUse:
    """``DefaultAzureCredential``, built when a token is first needed. Building it logs
    which sources it found; ``jit-bot check`` without ``--live``, and bots without azure
    targets, should neither hear that nor pay for it."""

    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        self._lock = threading.Lock()
        self._credential: Any = None

    def _built(self) -> Any:
        with self._lock:
            if self._credential is None:
                from azure.identity import DefaultAzureCredential

                try:
                    self._credential = DefaultAzureCredential(
                        **self._options, http_logging_level=logging.DEBUG
                    )
                except ValueError as exc:  # e.g. AZURE_CLIENT_SECRET set but empty
                    raise ProviderError(f"Azure credentials are misconfigured: {exc}") from None
            return self._credential

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        token: AccessToken = self._built().get_token(*scopes, **kwargs)
        return token

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        token: AccessTokenInfo = self._built().get_token_info(*scopes, options=options)
        return token


class AzureFailure(ProviderError):
    """An error answer from Azure: its HTTP status, Azure's error code and message."""

    def __init__(
        self,
        what: str,
        status: int | None,
        code: str,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
    ) -> None:
        text = f"Azure {what}: {code}: {message}" if message else f"Azure {what}: {code}"
        super().__init__(text, retryable=retryable)
        self.status = status
        self.code = code
        self.azure_message = message
        self.retry_after = retry_after


class AzureApi:
    """Calls to ARM and Microsoft Graph, each retried while Azure says "later"."""

    def __init__(
        self,
        clients: AzureClients,
        retry: RetryPolicy,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.clients = clients
        self.retry = retry
        self._sleep = sleep

    def authorization(self, scope: str) -> AuthorizationManagementClient:
        """The ARM authorization client of the subscription ``scope`` lies in."""
        return self.clients.authorization(subscription_of(scope))

    def list_for_scope(
        self,
        listing: str,
        scope: str,
        operations: Callable[[AuthorizationManagementClient], Any],
        where: str,
    ) -> list[Any]:
        """All that ``operations`` (a group of the authorization client's, such as its role
        assignments) lists at ``scope`` under the filter ``where``, read whole."""
        client = self.authorization(scope)
        return self.arm(
            f"listing {listing} at {scope}",
            lambda: list(operations(client).list_for_scope(path(scope), filter=where)),
        )

    def arm(self, what: str, operation: Callable[[], T]) -> T:
        """One ARM operation (a listing is read whole), retried while Azure says "later"."""
        from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError

        tries = self.retry.start(self._sleep)
        while True:
            try:
                return operation()
            except ClientAuthenticationError as exc:
                if exc.response is None:  # the credential found no token, nothing was sent
                    # azure-identity has retried its own calls; what is left is set-up.
                    raise ProviderError(f"Azure sign-in for {what} failed: {exc.message}") from None
                failure = _failure(what, exc)
            except HttpResponseError as exc:
                failure = _failure(what, exc)
            except AzureError as exc:  # no answer: connection refused, reset, timed out
                failure = AzureFailure(what, None, type(exc).__name__, str(exc), retryable=True)
            _again_or_raise(tries, failure)

    def graph(
        self,
        what: str,
        method: str,
        path: str,
        params: dict[str, str],
        *,
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        """One Microsoft Graph call; None for a 404 when ``missing_ok``."""
        from azure.core.exceptions import AzureError, ClientAuthenticationError
        from azure.core.rest import HttpRequest

        client = self.clients.graph()
        tries = self.retry.start(self._sleep)
        while True:
            request = HttpRequest(method, f"{self.clients.graph_endpoint}{path}", params=params)
            try:
                response = client.send_request(request)
            except ClientAuthenticationError as exc:
                raise ProviderError(
                    f"Microsoft Graph sign-in for {what} failed: {exc.message}"
                ) from None
            except AzureError as exc:
                failure = AzureFailure(
                    f"Graph {what}", None, type(exc).__name__, str(exc), retryable=True
                )
            else:
                if 200 <= response.status_code < 300:
                    body: dict[str, Any] = response.json()
                    return body
                if response.status_code == 404 and missing_ok:
                    return None
                failure = _graph_failure(what, response)
            _again_or_raise(tries, failure)


def _again_or_raise(tries: Retrying, failure: AzureFailure) -> None:
    if not failure.retryable or not tries.again(failure.retry_after, why=failure):
        raise failure


def _graph_failure(what: str, response: Any) -> AzureFailure:
    code, message = _error_of(response)
    return AzureFailure(
        f"Graph {what}",
        response.status_code,
        code,
        message,
        retryable=response.status_code in _RETRYABLE_STATUSES,
        retry_after=_retry_after(response.headers.get("Retry-After")),
    )


def _failure(what: str, exc: HttpResponseError) -> AzureFailure:
    status = exc.status_code
    code, message = "", ""
    if exc.error is not None:
        code, message = str(exc.error.code or ""), str(exc.error.message or "")
    elif exc.response is not None:
        code, message = _error_of(exc.response)
    response: Any = exc.response
    headers = response.headers if response is not None else {}
    return AzureFailure(
        what,
        status,
        code or f"HTTP {status}",
        message or str(exc.reason or ""),
        retryable=status in _RETRYABLE_STATUSES,
        retry_after=_retry_after(headers.get("Retry-After")),
    )


def _error_of(response: Any) -> tuple[str, str]:
    """Azure's error body: ``{"error": {"code": …, "message": …}}``."""
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        return f"HTTP {response.status_code}", ""
    return str(error.get("code") or f"HTTP {response.status_code}"), str(error.get("message", ""))


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date), capped."""
    return parse_retry_after(value, cap=RETRY_AFTER_CAP_SECONDS)


def subscription_of(scope: str) -> str:
    match = SUBSCRIPTION.match(scope)
    if not match:
        raise ProviderError(f"'{scope}' is not under a subscription")
    return match.group(1).lower()


def path(scope: str) -> str:
    """The SDK puts scopes into "/{scope}/providers/…" itself."""
    return scope.lstrip("/")


def _origin(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


V = TypeVar("V")


class CachedLookups(Generic[V]):
    """Lookups made through ``api`` whose answers are kept in ``cache`` until they age
    out, or until `refresh` forgets them all (a sync, so new people are seen at once)."""

    def __init__(self, api: AzureApi, cache: TtlCache[tuple[str, ...], V]) -> None:
        self._api = api
        self._cache = cache

    def refresh(self) -> None:
        self._cache.clear()
