"""providers/aws-import-policy.json allows exactly what ``jit-bot import aws`` reads, and
nothing that writes.

The reader is driven against a chaotic estate in moto (server mode) on both credential
paths, every call recorded through ``AwsClients(on_call=…)`` (botocore's before-call
event) as the IAM action ``signing_name:Operation``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from bot.importer.aws.reading import read_estate
from providers.aws import AwsClients, AwsCredentials
from providers.aws.calls import RETRY, AwsCalls
from tests.fakes.aws import REGION, MotoAws
from tests.fakes.aws_estate import ChaoticEstate, seed_chaos

PROVIDERS = Path(__file__).resolve().parents[2] / "providers"
POLICY = PROVIDERS / "aws-import-policy.json"
ASSUME_ROLE_POLICY = PROVIDERS / "aws-assume-role-policy.json"
ROLE_ARN = "arn:aws:iam::123456789012:role/jit-bot-import"
_WRITES = re.compile(r":(Create|Delete|Put|Update|Attach|Detach|Provision|Tag|Untag|Move)")


def _actions(path: Path) -> list[str]:
    document: dict[str, Any] = json.loads(path.read_text())
    found: list[str] = []
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        found += statement["Action"]
    return found


def _allows(patterns: list[str], action: str) -> bool:
    return any(fnmatchcase(action.lower(), pattern.lower()) for pattern in patterns)


@pytest.fixture(scope="module")
def chaos(moto: MotoAws) -> ChaoticEstate:
    """One seeded estate for the tests that only read it."""
    return seed_chaos(moto)


@pytest.fixture(scope="module")
def recorded(moto: MotoAws, chaos: ChaoticEstate) -> Iterator[set[str]]:
    calls: list[str] = []
    for default in (AwsCredentials(), AwsCredentials(assume_role_arn=ROLE_ARN)):
        clients = AwsClients(
            moto.session(),
            region=REGION,
            endpoint_url=moto.endpoint,
            default=default,
            on_call=lambda service, operation: calls.append(f"{service}:{operation}"),
        )
        estate = read_estate(clients, AwsCalls(RETRY, sleep=lambda _: None))
        assert estate.assignments and estate.members  # the reader did read the estate
    yield set(calls)


def test_every_call_the_importer_makes_is_allowed(recorded: set[str]) -> None:
    role, runtime = _actions(POLICY), _actions(ASSUME_ROLE_POLICY)

    refused = sorted(
        a for a in recorded if not _allows(runtime if a.startswith("sts:") else role, a)
    )
    assert refused == []
    assert "sts:AssumeRole" in recorded  # both credential paths were driven


def test_every_action_the_import_policy_allows_is_exercised(recorded: set[str]) -> None:
    unused = [p for p in _actions(POLICY) if not any(_allows([p], a) for a in recorded)]

    assert unused == []


def test_the_import_policy_reads_only() -> None:
    actions = _actions(POLICY)

    assert [a for a in actions if _WRITES.search(a) or "*" in a] == []
    assert len(actions) == len({a.lower() for a in actions})


def test_a_throttled_read_is_retried_and_the_estate_still_read_whole(
    moto: MotoAws, chaos: ChaoticEstate
) -> None:
    clients = AwsClients(moto.session(), region=REGION, endpoint_url=moto.endpoint)
    throttled: list[str] = []

    def throttle_twice(model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if len(throttled) >= 2:
            return None
        throttled.append(model.name)
        error = {"Code": "ThrottlingException", "Message": "Rate exceeded"}
        return AWSResponse("", 400, {}, None), {"Error": error, "ResponseMetadata": {}}

    sso = clients.client("sso-admin")
    sso.meta.events.register("before-call.sso-admin.ListAccountAssignments", throttle_twice)
    waits: list[float] = []
    estate = read_estate(clients, AwsCalls(RETRY, sleep=waits.append))

    assert throttled == ["ListAccountAssignments", "ListAccountAssignments"]
    assert len(waits) == 2
    assert len(estate.assignments) == chaos.assignments


def test_every_list_is_read_to_its_last_page(moto: MotoAws) -> None:
    # adds accounts and users: an estate of its own (the module's tests before it have
    # read theirs; this one is last)
    chaos = seed_chaos(moto)
    org, store = moto.client("organizations"), moto.client("identitystore")
    for n in range(21):  # moto pages accounts of a parent by 20
        org.create_account(Email=f"extra{n}@aws.example.com", AccountName=f"extra{n}")
    for n in range(100):  # users and memberships by 100
        user = store.create_user(
            IdentityStoreId=chaos.store_id,
            UserName=f"user{n}",
            DisplayName=f"user{n}",
            Name={"GivenName": "user", "FamilyName": str(n)},
        )["UserId"]
        store.create_group_membership(
            IdentityStoreId=chaos.store_id,
            GroupId=chaos.groups["developers"],
            MemberId={"UserId": user},
        )
    calls: list[str] = []
    clients = AwsClients(
        moto.session(),
        region=REGION,
        endpoint_url=moto.endpoint,
        on_call=lambda service, operation: calls.append(f"{service}:{operation}"),
    )

    estate = read_estate(clients, AwsCalls(RETRY, sleep=lambda _: None))

    assert len(estate.accounts) == len(org.list_accounts()["Accounts"]) == 27
    assert len(estate.people) == 105 and "user99" in estate.people.values()
    assert len(estate.members[chaos.groups["developers"]]) == 102
    assert calls.count("identitystore:ListUsers") == 2
    assert calls.count("identitystore:ListGroupMemberships") == 3  # 2 for developers
    assert calls.count("organizations:ListAccountsForParent") == 4  # 2 for the root
