"""Tests for FakeGoogle's authentication: it must refuse what Google refuses, so a bot that
sends no token, a forged one, or an assertion Google would not accept fails here as it
would against Google. Every refusal is met through the real google-auth and client
libraries, and its wire answer is compared with Google's (HTTP status and JSON shape).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from google.auth import crypt, impersonated_credentials
from google.auth import jwt as google_jwt
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import AuthorizedSession, Request
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from providers.base import GrantContext, Principal, ProviderError
from providers.gcp import GcpClients, GcpProvider, GcpTarget
from tests.fakes.gcp import CLOUD_PLATFORM, GOOGLE_TOKEN_URI, SERVICE_ACCOUNT, FakeGoogle

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TARGET = GcpTarget(role="roles/logging.viewer", projects=["acme-prod"])
ALICE = Principal(slack_user_id="U0ALICE", email="alice@example.com")
CONTEXT = GrantContext(
    request_id="R-1",
    role="prod-support",
    environment="prod",
    reason="INC-1",
    expires_at=datetime.now(UTC) + timedelta(hours=1),
)


@pytest.fixture
def google(empty_google: FakeGoogle) -> FakeGoogle:
    empty_google.add_project("acme-prod")
    return empty_google


def _assertion(info: dict[str, str], **claims: Any) -> str:
    """A JWT-bearer grant assertion signed with ``info``'s private key, as google-auth
    signs one, with ``claims`` overriding the usual ones."""
    now = int(time.time())
    payload = {
        "iss": info["client_email"],
        "aud": GOOGLE_TOKEN_URI,
        "scope": CLOUD_PLATFORM,
        "iat": now,
        "exp": now + 3600,
        **claims,
    }
    signer = crypt.RSASigner.from_service_account_info(info)
    return google_jwt.encode(signer, payload).decode()


def _token_answer(google: FakeGoogle, assertion: str) -> requests.Response:
    return requests.post(
        f"{google.url}/token",
        data={"grant_type": JWT_BEARER, "assertion": assertion},
        timeout=5,
    )


def _refresh_error(credentials: Any) -> str:
    with pytest.raises(RefreshError) as info:
        credentials.refresh(Request())
    return str(info.value)


def test_an_assertion_signed_by_an_issued_key_gets_a_token_that_the_apis_accept(
    google: FakeGoogle,
) -> None:
    credentials = service_account.Credentials.from_service_account_info(
        google.service_account_info(), scopes=[CLOUD_PLATFORM]
    )
    credentials.refresh(Request())

    assert credentials.token in google.token_grants
    answer = AuthorizedSession(credentials).post(
        f"{google.url}/v3/projects/acme-prod:getIamPolicy", json={}
    )
    assert answer.status_code == 200


def test_a_key_google_never_issued_is_invalid_grant(google: FakeGoogle) -> None:
    credentials = service_account.Credentials.from_service_account_info(
        google.service_account_info(known=False), scopes=[CLOUD_PLATFORM]
    )

    assert "invalid_grant" in _refresh_error(credentials)
    answer = _token_answer(google, _assertion(google.service_account_info(known=False)))
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid JWT Signature.",
    }
    assert google.token_grants == {}


def test_an_account_google_does_not_know_is_invalid_grant(google: FakeGoogle) -> None:
    stranger = google.service_account_info("nobody@elsewhere.iam.gserviceaccount.com", known=False)

    answer = _token_answer(google, _assertion(stranger))

    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")
    assert answer.json()["error_description"] == "Invalid grant: account not found"


def test_a_tampered_assertion_fails_the_signature_check(google: FakeGoogle) -> None:
    header, _, signature = _assertion(google.service_account_info()).split(".")
    # The same signature over other claims (a different subject to act as).
    forged_claims = _assertion(google.service_account_info(), sub="admin@example.com")
    forged = f"{header}.{forged_claims.split('.')[1]}.{signature}"

    answer = _token_answer(google, forged)

    assert answer.status_code == 400
    assert answer.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid JWT Signature.",
    }


@pytest.mark.parametrize(
    "claims",
    [
        {"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600},  # expired
        {"iat": int(time.time()) + 3600, "exp": int(time.time()) + 7200},  # from the future
        {"iat": int(time.time()), "exp": int(time.time()) + 7200},  # longer than an hour
    ],
    ids=["expired", "not-yet-valid", "too-long"],
)
def test_an_assertion_outside_its_time_is_invalid_grant(
    google: FakeGoogle, claims: dict[str, int]
) -> None:
    answer = _token_answer(google, _assertion(google.service_account_info(), **claims))

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"
    assert "Check your iat and exp values" in answer.json()["error_description"]


def test_an_assertion_for_another_audience_is_invalid_grant(google: FakeGoogle) -> None:
    assertion = _assertion(google.service_account_info(), aud="https://example.com/token")

    answer = _token_answer(google, assertion)

    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_grant")
    assert "Failed audience check" in answer.json()["error_description"]


def test_an_assertion_without_a_scope_is_invalid_scope(google: FakeGoogle) -> None:
    assertion = _assertion(google.service_account_info(), scope="")

    answer = _token_answer(google, assertion)

    assert (answer.status_code, answer.json()["error"]) == (400, "invalid_scope")


def test_an_api_call_without_a_token_is_401_unauthenticated(google: FakeGoogle) -> None:
    answer = requests.post(f"{google.url}/v3/projects/acme-prod:getIamPolicy", json={}, timeout=5)

    assert answer.status_code == 401
    assert answer.json()["error"]["status"] == "UNAUTHENTICATED"


def test_a_token_google_did_not_mint_is_refused_through_the_provider(
    google: FakeGoogle,
) -> None:
    forged = user_credentials.Credentials(token="ya29.forged")
    provider = GcpProvider(
        GcpClients(forged, api_endpoint=google.url, iam_endpoint=google.iam_endpoint),
        sleep=lambda _: None,
    )

    # google-auth meets the 401, tries to refresh the token and cannot: the grant fails.
    with pytest.raises(ProviderError):
        provider.grant(ALICE, TARGET, CONTEXT)
    assert "bindings" not in google.policy("projects/acme-prod")
    assert {c.status for c in google.calls} == {401}


def test_a_self_signed_jwt_of_an_unknown_key_is_refused(google: FakeGoogle) -> None:
    stranger = service_account.Credentials.from_service_account_info(
        google.service_account_info(known=False), scopes=[CLOUD_PLATFORM]
    ).with_always_use_jwt_access(True)

    answer = AuthorizedSession(stranger).post(
        f"{google.url}/v3/projects/acme-prod:getIamPolicy", json={}
    )

    assert answer.status_code == 401
    assert json.loads(answer.text)["error"]["status"] == "UNAUTHENTICATED"


def test_impersonation_needs_a_token_google_minted(google: FakeGoogle) -> None:
    caller = user_credentials.Credentials(token="ya29.forged")
    impersonated = impersonated_credentials.Credentials(
        source_credentials=caller,
        target_principal="jit-bot-actor@acme-admin.iam.gserviceaccount.com",
        target_scopes=[CLOUD_PLATFORM],
        iam_endpoint_override=(
            f"{google.url}/v1/projects/-/serviceAccounts/"
            "jit-bot-actor@acme-admin.iam.gserviceaccount.com:generateAccessToken"
        ),
    )

    assert "Unable to acquire impersonated credentials" in _refresh_error(impersonated)
    assert google.impersonations == []
    [call] = google.calls_to("generateAccessToken")
    assert call.status == 401


def test_impersonation_with_a_minted_token_is_served(google: FakeGoogle) -> None:
    impersonated = impersonated_credentials.Credentials(
        source_credentials=google.credentials(),
        target_principal="jit-bot-actor@acme-admin.iam.gserviceaccount.com",
        target_scopes=[CLOUD_PLATFORM],
        iam_endpoint_override=(
            f"{google.url}/v1/projects/-/serviceAccounts/"
            "jit-bot-actor@acme-admin.iam.gserviceaccount.com:generateAccessToken"
        ),
    )
    impersonated.refresh(Request())

    [minted] = google.impersonations
    assert minted["token"] == impersonated.token
    assert minted["account"] == "jit-bot-actor@acme-admin.iam.gserviceaccount.com"


def test_the_service_account_is_the_one_the_key_names(google: FakeGoogle) -> None:
    google.credentials().refresh(Request())

    [claims] = google.token_grants.values()
    assert claims["iss"] == SERVICE_ACCOUNT
