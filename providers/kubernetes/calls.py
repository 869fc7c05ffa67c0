"""How the ``kubernetes`` provider calls a cluster: each call given a timeout, retried
under one `RETRY` policy while the cluster says "later" (429 with its Retry-After, 5xx,
no answer at all), every call of one operation within one `OPERATION_BUDGET`, and the API
server's ``Status`` errors translated once, here, into ProviderErrors that name the
cluster and what was asked."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import urllib3.exceptions

from providers.base import ProviderError
from providers.resilience import RetryPolicy, parse_retry_after

if TYPE_CHECKING:  # annotations only: the SDK is imported where it is used
    from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

R = TypeVar("R")

#: Eight tries, the backoff doubling from 0.5s to at most 8s, an API server's
#: Retry-After (priority and fairness sends one with 429) honoured up to 10s, and 30s of
#: waiting at most per call (tests/unit/test_resilience.py).
RETRY = RetryPolicy(attempts=8, base=0.5, cap=8.0, retry_after_cap=10.0, budget=30.0)
#: Each try is given this long to answer, and never longer than the operation has left.
TIMEOUT_SECONDS = 10.0
#: What one provider operation (a grant, a revocation: every call it makes, their tries
#: and the waits between them) may take in all before it gives up, retryably: inside the
#: revocation deadline, however slowly a cluster answers (tests/unit/test_resilience.py).
OPERATION_BUDGET = 90.0
_RETRYABLE = {429, 500, 502, 503, 504}


class NotFound(ProviderError):
    """The cluster answered 404: the object (or the namespace it would live in) is not there."""


class AlreadyExists(ProviderError):
    """The cluster answered 409: an object of that name exists, or a precondition failed."""


class StaleClient(ProviderError):
    """The cluster refused the bot's credentials (401), or its certificate did not verify:
    the client built for it may hold a token, endpoint or CA that has since rotated. The
    provider builds it afresh and tries once more; no retry here would help."""


class KubeCalls:
    """Calls to clusters, each retried under ``retry`` with ``sleep`` between tries, and
    all the calls of one operation (`operation`) within ``budget`` seconds of
    ``monotonic``."""

    def __init__(
        self,
        retry: RetryPolicy = RETRY,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        budget: float = OPERATION_BUDGET,
    ) -> None:
        self.retry = retry
        self.budget = budget
        self._sleep = sleep
        self._monotonic = monotonic
        self._local = threading.local()  # the deadline of the operation on this thread

    @contextmanager
    def operation(self) -> Iterator[None]:
        """The calls made inside share one deadline, ``budget`` seconds from now (an
        operation inside another keeps the outer one's)."""
        outer = getattr(self._local, "deadline", None)
        if outer is None:
            self._local.deadline = self._monotonic() + self.budget
        try:
            yield
        finally:
            self._local.deadline = outer

    def call(self, where: str, operation: str, method: Callable[..., R], *args: Any) -> R:
        """``method(*args)`` with a timeout, tried again while the cluster says "later"
        and the operation has time left."""
        from kubernetes.client.exceptions import ApiException

        deadline = getattr(self._local, "deadline", None)
        if deadline is None:
            deadline = self._monotonic() + self.budget
        tries = self.retry.start(self._sleep)
        while True:
            left = deadline - self._monotonic()
            if left <= 0:
                raise ProviderError(
                    f"{where}: {operation}: the cluster did not answer in time "
                    f"({self.budget:.0f}s for the whole operation)",
                    retryable=True,
                )
            retry_after = None
            try:
                return method(*args, _request_timeout=min(TIMEOUT_SECONDS, left))
            except ApiException as exc:
                error = _failure(where, operation, exc)
                headers = exc.headers or {}
                retry_after = parse_retry_after(
                    headers.get("Retry-After"), cap=self.retry.retry_after_cap
                )
            except urllib3.exceptions.HTTPError as exc:
                if _untrusted(exc):
                    raise StaleClient(
                        f"{where}: {operation}: the cluster's certificate does not verify "
                        f"({_reason(exc)})",
                        retryable=True,
                    ) from None
                error = ProviderError(
                    f"{where}: {operation}: cannot reach the cluster ({_reason(exc)})",
                    retryable=True,
                )
            wait = tries.plan(retry_after) if error.retryable else None
            if wait is None or wait >= deadline - self._monotonic():
                raise error from None
            log.info("%s; retrying in %.1fs", error, wait)
            tries.sleep(wait)


def _failure(where: str, operation: str, exc: ApiException) -> ProviderError:
    status = exc.status or 0
    said = _message(exc)
    if status == 404:
        return NotFound(f"{where}: {operation}: {said}")
    if status == 409:
        return AlreadyExists(f"{where}: {operation}: {said}")
    if status == 401:
        return StaleClient(
            f"{where}: {operation}: the cluster does not accept the bot's credentials "
            f"(401 Unauthorized); check its kubeconfig user, or its EKS access entry"
        )
    if status == 403:
        return ProviderError(f"{where}: {operation} refused (403 Forbidden): {said}")
    retryable = status in _RETRYABLE
    log.warning("%s: %s failed (%s): %s", where, operation, status, said)
    return ProviderError(f"{where}: {operation} failed ({status}): {said}", retryable=retryable)


def _message(exc: ApiException) -> str:
    """The ``message`` of the API server's Status object, else the HTTP reason."""
    try:
        status = json.loads(exc.body or "")
    except (TypeError, ValueError):
        status = None
    if isinstance(status, dict) and isinstance(status.get("message"), str):
        return str(status["message"])
    return str(exc.reason or "no reason given")


def _untrusted(exc: urllib3.exceptions.HTTPError) -> bool:
    """A TLS failure (urllib3 wraps it in MaxRetryError when it gives up)."""
    reason = getattr(exc, "reason", None)
    return isinstance(exc, urllib3.exceptions.SSLError) or isinstance(
        reason, urllib3.exceptions.SSLError
    )


def _reason(exc: urllib3.exceptions.HTTPError) -> str:
    reason = getattr(exc, "reason", None) or exc
    return str(reason).split(": ", 1)[-1][:200]
