"""How the ``aws`` provider talks to AWS: boto3 clients (through an assumed role where
one is configured), each call retried under the provider's one `RETRY` policy, pages
followed, and asynchronous assignment operations polled until AWS reports them done.

Which AWS errors are worth another try lives here (`_RETRYABLE`); how long to wait
between tries lives in providers/resilience.py.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import KW_ONLY, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from providers.aws.target import AwsTarget
from providers.base import ProviderError
from providers.resilience import RetryPolicy

if TYPE_CHECKING:
    import boto3
    from botocore.client import BaseClient
    from botocore.config import Config

# Errors worth another try: AWS is busy, or another operation on the same assignment is
# still running (ConflictException).
_RETRYABLE = {
    "ThrottlingException",
    "Throttling",  # STS's name for it
    "TooManyRequestsException",
    "ConflictException",
    "InternalServerException",
    "ServiceUnavailableException",
    "ServerException",  # EKS's name for a 5xx
    "RequestLimitExceeded",
}
_NOT_FOUND = {"ResourceNotFoundException"}

#: Eight tries, the backoff doubling from 0.5s to at most 20s (AWS sends no Retry-After
#: through boto3): 51.5s of waiting at worst per call (tests/unit/test_resilience.py).
RETRY = RetryPolicy(attempts=8, base=0.5, cap=20.0)


@dataclass(frozen=True)
class AwsCredentials:
    assume_role_arn: str | None = None
    external_id: str | None = None


class AwsClients:
    """Builds boto3 clients, assuming a role through STS when one is configured, and
    rebuilds them before the temporary credentials run out.

    Without a ``session``, the default one (AWS_PROFILE, the environment's keys, …) is
    made when first needed: boto3 is imported only by a bot that uses AWS, and a profile
    that is not there is reported, as a ProviderError, by the first target that needs it
    (at start-up, when the configuration's AWS targets are checked)."""

    def __init__(
        self,
        session: boto3.Session | None = None,
        *,
        region: str,
        endpoint_url: str | None = None,
        default: AwsCredentials = AwsCredentials(),
        on_call: Callable[[str, str], None] | None = None,
        retry: RetryPolicy = RETRY,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._session = session
        # Assuming a role is retried like any other call: it stands before every call the
        # provider makes, and nothing above the provider retries.
        self._retry = retry
        self._sleep = sleep
        self._region = region
        self._endpoint_url = endpoint_url
        self._default = default
        self._on_call = on_call
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, AwsCredentials], tuple[datetime, BaseClient]] = {}
        self._config: Config | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> AwsClients:
        region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        return cls(
            None,
            region=region,
            endpoint_url=environ.get("AWS_ENDPOINT_URL") or None,
            default=AwsCredentials(
                environ.get("JIT_AWS_ASSUME_ROLE_ARN") or None,
                environ.get("JIT_AWS_EXTERNAL_ID") or None,
            ),
        )

    def client(self, service: str, target: AwsTarget | None = None) -> BaseClient:
        creds = self._default
        if target is not None and target.assume_role_arn:
            creds = AwsCredentials(target.assume_role_arn, target.external_id)
        key = (service, creds)
        now = datetime.now(UTC)
        with self._lock:
            cached = self._cache.get(key)
            if cached and cached[0] > now:
                return cached[1]
        client, valid_until = self._build(service, creds)
        with self._lock:
            self._cache[key] = (valid_until, client)
        return client

    def session(self) -> boto3.Session:
        """The boto3 session clients are made from (the default one, made now if needed)."""
        with self._lock:
            if self._session is None:
                import boto3

                try:
                    self._session = boto3.Session()
                except BotoCoreError as exc:  # AWS_PROFILE names no profile, say
                    raise ProviderError(f"AWS credentials: {exc}") from None
            return self._session

    def _client_config(self) -> Config:
        with self._lock:
            if self._config is None:
                from botocore.config import Config

                self._config = Config(
                    region_name=self._region,
                    retries={"max_attempts": 1, "mode": "standard"},  # we retry ourselves
                    connect_timeout=5,
                    read_timeout=30,
                    user_agent_extra="jit-bot",
                )
            return self._config

    def _build(self, service: str, creds: AwsCredentials) -> tuple[BaseClient, datetime]:
        session, config = self.session(), self._client_config()
        kwargs: dict[str, Any] = {"config": config, "endpoint_url": self._endpoint_url}
        valid_until = datetime.max.replace(tzinfo=UTC)
        if creds.assume_role_arn:
            sts = self._watch(session.client("sts", **kwargs))
            extra = {"ExternalId": creds.external_id} if creds.external_id else {}
            answer = self._assume(sts, creds.assume_role_arn, extra)
            secret = answer["Credentials"]
            kwargs.update(
                aws_access_key_id=secret["AccessKeyId"],
                aws_secret_access_key=secret["SecretAccessKey"],
                aws_session_token=secret["SessionToken"],
            )
            # Rebuild five minutes before AWS would start refusing the credentials.
            valid_until = _aware(secret["Expiration"]) - timedelta(minutes=5)
        return self._watch(session.client(service, **kwargs)), valid_until

    def _assume(self, sts: BaseClient, role_arn: str, extra: dict[str, str]) -> Any:
        tries = self._retry.start(self._sleep)
        while True:
            try:
                return sts.assume_role(RoleArn=role_arn, RoleSessionName="jit-bot", **extra)
            except (ClientError, BotoCoreError) as exc:
                if not _retryable(exc) or not tries.again():
                    raise ProviderError(
                        f"cannot assume {role_arn}: {_describe(exc)}",
                        retryable=_retryable(exc),
                    ) from None

    def _watch(self, client: BaseClient) -> BaseClient:
        if self._on_call is not None:
            on_call = self._on_call
            prefix = client.meta.service_model.signing_name

            def record(model: Any, **_: Any) -> None:
                on_call(prefix, model.name)

            client.meta.events.register("before-call", record)
        return client


@dataclass(eq=False)
class AwsCalls:
    """One AWS call at a time, retried while AWS says "try again", and the polling of
    AWS's asynchronous operations under an overall ``deadline`` (seconds)."""

    retry: RetryPolicy
    _: KW_ONLY
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    deadline: float = 300.0

    def call(self, operation: Callable[..., Any], **kwargs: Any) -> Any:
        """One AWS call, retried with jittered backoff when AWS says "try again"."""
        tries = self.retry.start(self.sleep)
        while True:
            try:
                return operation(**kwargs)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code in _NOT_FOUND:
                    raise _NotFound(_describe(exc)) from None
                if code not in _RETRYABLE or not tries.again():
                    raise ProviderError(_describe(exc), retryable=code in _RETRYABLE) from None
            except BotoCoreError as exc:
                if not tries.again():
                    raise ProviderError(_describe(exc), retryable=True) from None

    def pages(self, client: BaseClient, operation: str, **kwargs: Any) -> Iterator[Any]:
        token: str | None = None
        while True:
            extra = {"NextToken": token} if token else {}
            try:
                page = self.call(getattr(client, operation), **kwargs, **extra)
            except _NotFound as exc:
                raise ProviderError(str(exc)) from None
            yield page
            token = page.get("NextToken")
            if not token:
                return

    def wait(
        self,
        instance_arn: str,
        status: dict[str, Any],
        describe: Callable[..., dict[str, Any]],
        fields: tuple[str, str],
        confirmed: Callable[[], bool],
        *,
        what: str,
    ) -> None:
        """Poll an asynchronous operation until it succeeds or fails, with backoff, under
        the overall deadline. ``fields``: the request id's and the status's field names."""
        id_field, status_field = fields
        start = self.monotonic()
        delay = 0.5
        while True:
            state = status.get("Status")
            if state == "SUCCEEDED":
                return
            if state == "FAILED":
                reason = status.get("FailureReason") or "no reason given"
                raise ProviderError(f"AWS reports {what} FAILED: {reason}")
            if state is None and confirmed():
                # Some endpoints answer without a status; the assignment list is the truth.
                return
            if self.monotonic() - start > self.deadline:
                raise ProviderError(
                    f"{what} still {state or 'unconfirmed'} after {self.deadline:.0f}s",
                    retryable=True,
                )
            self.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, 10.0)
            answer = self.call(
                describe, InstanceArn=instance_arn, **{id_field: status["RequestId"]}
            )
            status = answer[status_field]


class _NotFound(ProviderError):
    """AWS answered ResourceNotFoundException."""


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        operation = getattr(exc, "operation_name", "call")
        return f"AWS {operation}: {error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
    return f"AWS: {type(exc).__name__}: {exc}"


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code") in _RETRYABLE
    return True


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
