"""How the ``gcp`` provider calls Google: each call retried under the provider's one
`RETRY` policy (providers/resilience.py) while Google says "later", and Google's errors
turned into ProviderErrors that name the resource."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from providers.base import ProviderError
from providers.gcp.target import _KINDS, _label
from providers.resilience import RetryPolicy

if TYPE_CHECKING:  # annotations only: the SDK is imported where it is used
    from google.api_core import exceptions as api

#: Twelve tries, the backoff doubling from 0.5s to at most 4s (Google's client libraries
#: send no Retry-After): 35.5s of waiting at worst per call, so a read-modify-write of a
#: policy (two calls) still fits the revocation deadline (tests/unit/test_resilience.py).
#: Many short waits rather than a few long ones: eight tries let a burst of 503s fail a
#: grant on a fault that only asked to wait (tests/reliability/test_provider_faults_wire.py),
#: and IAM policy calls answer fast once Google is back; what still fails is retried by
#: the sweeper (revocations) or reported to the requester (grants). A read-modify-write
#: whose etag keeps going stale starts over under the same policy.
RETRY = RetryPolicy(attempts=12, base=0.5, cap=4.0)


class _Stale(Exception):
    """setIamPolicy refused our etag: someone changed the policy since we read it."""


class _NotFound(ProviderError):
    """Google answered 404."""


class GoogleCalls:
    """Google API calls, each given ``timeout`` seconds and retried under ``retry``.
    ``hint`` says, for a resource, what to grant when Google refuses a call on it (the
    bot's own roles by default; ``jit-bot import gcp`` names its read-only ones)."""

    def __init__(
        self,
        retry: RetryPolicy,
        *,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 30.0,
        hint: Callable[[str], str] | None = None,
    ) -> None:
        self.retry = retry
        self.sleep = sleep
        self._timeout = timeout
        self._hint = hint or _permission_hint

    def call(self, subject: str, operation: str, method: Callable[..., Any], request: Any) -> Any:
        """One API call, retried with backoff while Google says "later"; a stale etag
        raises _Stale; anything else becomes a ProviderError naming the resource."""
        tries = self.retry.start(self.sleep)
        while True:
            try:
                # The clients' own retry settings would sleep where tests cannot see it.
                return method(request, retry=None, timeout=self._timeout)
            except _failures() as exc:
                error = _failure(subject, operation, exc, self._hint)
            if not error.retryable or not tries.again(why=error):
                raise error from None


def _failures() -> tuple[type[Exception], ...]:
    """What a call may fail with; anything else is a bug and propagates as it is."""
    import google.auth.exceptions
    import requests
    from google.api_core import exceptions as api

    return (
        api.GoogleAPICallError,
        requests.ConnectionError,
        requests.Timeout,
        google.auth.exceptions.GoogleAuthError,
    )


def _failure(
    subject: str, operation: str, exc: Exception, hint: Callable[[str], str]
) -> ProviderError:
    """What a failed call means, as the ProviderError to raise (or retry); a stale etag
    raises _Stale for the read-modify-write to start over."""
    import google.auth.exceptions
    import requests
    from google.api_core import exceptions as api

    retryable_errors = (
        api.TooManyRequests,
        api.ServerError,  # 500, 502, 503, 504
        api.DeadlineExceeded,
        api.ResourceExhausted,
        api.ServiceUnavailable,
    )
    label = _label(subject)
    if isinstance(exc, api.NotFound):
        return _NotFound(f"{label}: {operation}: {_message(exc)}")
    if isinstance(exc, api.Conflict):
        if operation == "setIamPolicy":
            raise _Stale() from None
        return ProviderError(f"{label}: {operation}: {_message(exc)}")
    if isinstance(exc, retryable_errors):
        return ProviderError(
            f"{label}: {operation} failed ({_status(exc)}): {_message(exc)}", retryable=True
        )
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return ProviderError(f"{label}: {operation}: Google unreachable: {exc}", retryable=True)
    if isinstance(
        exc, api.PermissionDenied | api.Forbidden | api.Unauthenticated | api.Unauthorized
    ):
        return ProviderError(
            f"{label}: {operation} refused ({_status(exc)}): {_message(exc)}{hint(subject)}"
        )
    if isinstance(exc, api.GoogleAPICallError):
        return ProviderError(f"{label}: {operation} failed ({_status(exc)}): {_message(exc)}")
    retryable = isinstance(exc, google.auth.exceptions.TransportError)
    return ProviderError(f"{label}: cannot get Google credentials: {exc}", retryable=retryable)


def _status(exc: api.GoogleAPICallError) -> str:
    """ "403 PERMISSION_DENIED": the HTTP code and Google's canonical status name."""
    grpc_code = getattr(exc, "grpc_status_code", None)
    name = grpc_code.name if grpc_code is not None else ""
    if not name and exc.response is not None:
        try:  # REST answers carry the status name in their JSON error
            name = str(exc.response.json()["error"]["status"])
        except (ValueError, KeyError, TypeError, AttributeError):
            name = ""
    return f"{exc.code or ''} {name}".strip() or type(exc).__name__


def _message(exc: api.GoogleAPICallError) -> str:
    # REST errors start with "POST http://…?$alt=json: "; the URL says nothing new.
    return re.sub(r"^[A-Z]+ \S+: ", "", str(exc.message)).strip().rstrip(".")


def _permission_hint(subject: str) -> str:
    kind = subject.split("/")[0]
    if kind in _KINDS and subject.count("/") == 1:
        return (
            f"; the {_KINDS[kind][0]} may not exist, or the bot's service account needs "
            f"{_KINDS[kind][1]} on it"
        )
    return "; the bot's service account needs roles/iam.roleViewer to read roles"
