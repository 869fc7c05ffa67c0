"""Microsoft Graph for the ``azure`` provider: the Microsoft Entra ID user behind a
requester's Slack email, and the email behind an object id (for drift), cached."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from providers.azure.api import CachedLookups
from providers.base import ProviderError

_FIELDS = "id,userPrincipalName,mail"  # what jit-bot reads of a user


class UnknownUser(ProviderError):
    """No Microsoft Entra ID user has the requester's email."""


class EntraUsers(CachedLookups[str]):
    """Users looked up in Microsoft Graph, kept in ``cache``."""

    def object_id(self, email: str) -> str:
        """The Microsoft Entra ID user with this user principal name, else this mail."""

        def load() -> str:
            answer = self._user(email, quote(email, safe="@"))
            if answer is not None:
                return str(answer["id"])
            escaped = email.replace("'", "''")
            found = self._api.graph(
                f"looking up {email}",
                "GET",
                "/v1.0/users",
                {"$filter": f"mail eq '{escaped}'", "$select": _FIELDS},
            )
            users = (found or {}).get("value") or []
            if not users:
                raise UnknownUser(
                    f"no Microsoft Entra ID user has the user principal name or mail {email}; "
                    "the Slack email must match one of them. Nothing was granted."
                )
            if len(users) > 1:
                raise ProviderError(
                    f"{len(users)} Microsoft Entra ID users have the mail {email}; fix the "
                    "directory so it names one person. Nothing was granted."
                )
            return str(users[0]["id"])

        result: str = self._cache.get(("user", email.lower()), load)
        return result

    def email_of(self, object_id: str) -> str:
        def load() -> str:
            user = self._user(f"user {object_id}", object_id)
            if user is None:
                return f"unknown-user:{object_id}"
            return str(user.get("mail") or user.get("userPrincipalName") or object_id).lower()

        result: str = self._cache.get(("email", object_id.lower()), load)
        return result

    def _user(self, who: str, key: str) -> dict[str, Any] | None:
        """The user whose object id or user principal name is ``key`` (already quoted for
        the path), or None when Graph has no such user."""
        return self._api.graph(
            f"looking up {who}", "GET", f"/v1.0/users/{key}", {"$select": _FIELDS}, missing_ok=True
        )
