"""Google Workspace groups as approvers and requesters: ``google:sre-leads@example.com``.

Members are read with the Admin SDK Directory API (``members.list``, indirect members of
nested groups included) as the bot's Google identity (`providers.gcp.GoogleAuth`),
acting as a Workspace user through domain-wide delegation when ``JIT_GOOGLE_ADMIN_SUBJECT``
names one. Answers are cached for ``ttl`` and forgotten on ``/jit sync``.

Members are Google accounts; Slack knows people by their Slack email, which the GCP
domain map (``JIT_GCP_DOMAIN_MAP``) may spell with another domain, so `emails` answers
with every Slack email a member may have.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from bot.clock import Clock
from bot.errors import DirectoryError, DirectoryUnavailable
from providers.base import ProviderError
from providers.gcp import DomainMap, GoogleAuth
from providers.resilience import RetryPolicy, TtlCache

if TYPE_CHECKING:  # annotations only: the SDK is imported where it is used
    import requests

log = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/admin.directory.group.member.readonly"
DIRECTORY_API = "https://admin.googleapis.com"
_RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Four tries, the backoff doubling from 0.5s to at most 8s: 3.5s of waiting at worst
#: per page (tests/unit/test_resilience.py).
RETRY = RetryPolicy(attempts=4, base=0.5, cap=8.0)


class GoogleGroups:
    """Members of Google groups, cached. ``session`` builds the authorised HTTP session
    on first use, so nothing asks for credentials until a ``google:`` entry is read."""

    def __init__(
        self,
        session: Callable[[], requests.Session],
        clock: Clock,
        *,
        endpoint: str = DIRECTORY_API,
        domain_map: DomainMap | None = None,
        ttl: timedelta = timedelta(minutes=5),
        attempts: int = RETRY.attempts,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._make_session = session
        self._session: requests.Session | None = None
        self._endpoint = endpoint.rstrip("/")
        self._domains = domain_map or DomainMap()
        self._retry = dataclasses.replace(RETRY, attempts=attempts)
        self._timeout = timeout
        self._sleep = sleep
        self._cache: TtlCache[str, frozenset[str]] = TtlCache(
            ttl.total_seconds(), lambda: clock.now().timestamp()
        )
        self._lock = threading.Lock()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], clock: Clock) -> GoogleGroups:
        """``JIT_GOOGLE_ADMIN_SUBJECT`` (optional): the Workspace user to act as;
        ``JIT_GOOGLE_DIRECTORY_ENDPOINT`` (tests); credentials as for the gcp provider."""
        auth = GoogleAuth.from_environ(environ)
        subject = environ.get("JIT_GOOGLE_ADMIN_SUBJECT") or None

        def session() -> requests.Session:
            from google.auth.transport.requests import AuthorizedSession

            return AuthorizedSession(auth.credentials([SCOPE], subject=subject))

        return cls(
            session,
            clock,
            endpoint=environ.get("JIT_GOOGLE_DIRECTORY_ENDPOINT") or DIRECTORY_API,
            domain_map=DomainMap.parse(environ.get("JIT_GCP_DOMAIN_MAP", "")),
        )

    def emails(self, group: str) -> set[str]:
        """The Slack emails the group's active users may have."""
        return {slack for email in self.members(group) for slack in self._domains.to_slack(email)}

    def members(self, group: str) -> frozenset[str]:
        """The emails of the group's active users, nested groups included."""
        key = group.lower()
        return self._cache.get(key, lambda: self._list(key))

    def refresh(self) -> None:
        self._cache.clear()

    # ------------------------------------------------------------------ Directory API

    def _list(self, group: str) -> frozenset[str]:
        emails: set[str] = set()
        token: str | None = None
        while True:
            params = {"maxResults": "200", "includeDerivedMembership": "true"}
            if token:
                params["pageToken"] = token
            page = self._get(group, params)
            if page is None:
                return frozenset()
            for member in page.get("members") or []:
                kind, status = member.get("type"), member.get("status", "ACTIVE")
                if kind == "USER" and status == "ACTIVE" and member.get("email"):
                    emails.add(str(member["email"]).lower())
                elif kind == "CUSTOMER":
                    log.warning(
                        "Google group %s contains everyone in the Workspace; that member "
                        "is ignored: name people or groups instead",
                        group,
                    )
            token = page.get("nextPageToken")
            if not token:
                return frozenset(emails)

    def _get(self, group: str, params: dict[str, str]) -> dict[str, Any] | None:
        """One page; None when the group does not exist."""
        import google.auth.exceptions
        import requests

        url = f"{self._endpoint}/admin/directory/v1/groups/{quote(group, safe='@')}/members"
        tries = self._retry.start(self._sleep)
        while True:
            try:
                response = self._http().get(url, params=params, timeout=self._timeout)
            except ProviderError as exc:  # credentials could not be set up
                raise DirectoryError(f"Cannot read the Google group {group}: {exc}") from None
            except google.auth.exceptions.RefreshError as exc:
                raise DirectoryError(
                    f"Cannot read the Google group {group}: Google refused the bot's "
                    f"credentials ({exc})."
                ) from None
            except (requests.RequestException, google.auth.exceptions.TransportError) as exc:
                problem = f"Google is unreachable ({exc})"
            else:
                if response.status_code == 200:
                    page: dict[str, Any] = response.json()
                    return page
                message = _error_message(response)
                if response.status_code == 404:
                    log.warning("No Google group %s (%s); skipping it", group, message)
                    return None
                if response.status_code in (401, 403):
                    raise DirectoryError(
                        f"Google refused to list the members of {group} "
                        f"({response.status_code}: {message}). The bot's service account "
                        "needs the Admin SDK scope admin.directory.group.member.readonly "
                        "through domain-wide delegation (JIT_GOOGLE_ADMIN_SUBJECT) or a "
                        "Groups Reader admin role."
                    )
                if response.status_code not in _RETRYABLE_STATUSES:
                    raise DirectoryError(
                        f"Reading the Google group {group} failed "
                        f"({response.status_code}: {message})."
                    )
                problem = f"Google answered {response.status_code}: {message}"
            if not tries.again():
                raise DirectoryUnavailable(
                    f"Reading the Google group {group} failed: {problem}, {tries.attempt} "
                    "tries. Nothing was changed; try again in a minute."
                )

    def _http(self) -> requests.Session:
        with self._lock:
            if self._session is None:
                self._session = self._make_session()
            return self._session


def _error_message(response: requests.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason
