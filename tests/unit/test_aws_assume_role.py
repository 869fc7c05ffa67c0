"""Assuming the target's role through STS is retried like every other AWS call: it stands
before each call the provider makes, and nothing above the provider retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from providers.aws import AwsClients
from providers.aws.calls import RETRY, AwsCredentials
from providers.base import ProviderError

ROLE = "arn:aws:iam::123456789012:role/jit-bot"
REGION = "eu-west-1"


class _Session(boto3.Session):
    """A real boto3 session whose STS client is the stubbed one given."""

    def __init__(self, sts: Any) -> None:
        super().__init__(
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="not-a-secret",
            region_name=REGION,
        )
        self._sts = sts

    def client(self, service_name: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if service_name == "sts":
            return self._sts
        return super().client(service_name, *args, **kwargs)


def _sts() -> tuple[Any, Stubber]:
    sts = boto3.Session(
        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="not-a-secret", region_name=REGION
    ).client("sts")
    return sts, Stubber(sts)


def _credentials() -> dict[str, Any]:
    return {
        "Credentials": {
            "AccessKeyId": "ASIAEXAMPLEEXAMPLE01",
            "SecretAccessKey": "x" * 40,
            "SessionToken": "token",
            "Expiration": datetime.now(UTC) + timedelta(hours=1),
        }
    }


def _clients(sts: Any, sleeps: list[float]) -> AwsClients:
    return AwsClients(
        _Session(sts), region=REGION, default=AwsCredentials(ROLE), sleep=sleeps.append
    )


@pytest.mark.parametrize(
    "code", ["Throttling", "ThrottlingException", "ServiceUnavailableException"]
)
def test_a_throttled_assume_role_is_tried_again_and_the_client_is_built(code: str) -> None:
    sts, stub = _sts()
    stub.add_client_error("assume_role", service_error_code=code, http_status_code=400)
    stub.add_client_error("assume_role", service_error_code=code, http_status_code=400)
    stub.add_response("assume_role", _credentials())
    sleeps: list[float] = []

    with stub:
        client = _clients(sts, sleeps).client("sso-admin")

    stub.assert_no_pending_responses()
    assert client.meta.service_model.service_name == "sso-admin"
    assert len(sleeps) == 2 and all(0 < s <= RETRY.cap for s in sleeps)


def test_a_refused_assume_role_is_not_tried_again_and_says_which_role() -> None:
    sts, stub = _sts()
    stub.add_client_error("assume_role", service_error_code="AccessDenied", http_status_code=403)
    sleeps: list[float] = []

    with stub, pytest.raises(ProviderError) as refused:
        _clients(sts, sleeps).client("sso-admin")

    assert f"cannot assume {ROLE}" in str(refused.value)
    assert "AccessDenied" in str(refused.value)
    assert not refused.value.retryable
    assert sleeps == []


def test_assume_role_gives_up_after_the_policys_attempts() -> None:
    sts, stub = _sts()
    for _ in range(RETRY.attempts):
        stub.add_client_error("assume_role", service_error_code="Throttling", http_status_code=400)
    sleeps: list[float] = []

    with stub, pytest.raises(ProviderError) as gave_up:
        _clients(sts, sleeps).client("sso-admin")

    stub.assert_no_pending_responses()
    assert gave_up.value.retryable
    assert len(sleeps) == RETRY.attempts - 1
