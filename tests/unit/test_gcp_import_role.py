"""providers/gcp-import-role.yaml includes exactly what ``jit-bot import gcp`` reads, and
nothing that writes; the reader pages through every list and retries what Google asks it
to retry.

The reader is driven against a chaotic estate in FakeGoogle from each kind of node, every
call recorded by the fake and named by the IAM permission Google checks for it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from google.auth.transport.requests import AuthorizedSession

from bot.clock import SystemClock
from bot.google_groups import SCOPE, GoogleGroups
from bot.importer.gcp.estate import Estate
from bot.importer.gcp.reading import import_hint, read_estate
from providers.gcp import GcpClients
from providers.gcp.calls import RETRY, GoogleCalls
from tests.fakes.gcp import FakeGoogle, GoogleCall
from tests.fakes.gcp_estate import DEV, ORGANIZATION, PROD, ChaoticGcp, seed_gcp_chaos

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "providers" / "gcp-import-role.yaml"
DOCS = REPO / "docs" / "gcp.md"
_WRITES = re.compile(r"\.(set|create|delete|update|undelete|move)", re.IGNORECASE)
# The permission Google checks for each call (Resource Manager v3 and IAM references).
_PERMISSION = {
    "getProject": "resourcemanager.projects.get",
    "getFolder": "resourcemanager.folders.get",
    "getOrganization": "resourcemanager.organizations.get",
    "listProjects": "resourcemanager.projects.list",
    "listFolders": "resourcemanager.folders.list",
    "ListRoles": "iam.roles.list",
    "GetRole": "iam.roles.get",
}
_NOT_IAM = {"token", "members.list"}  # OAuth, and the Directory API (an OAuth scope)


def _permission(call: GoogleCall) -> str:
    if call.operation == "getIamPolicy":
        kind = call.path.removeprefix("/v3/").split("/")[0]
        return f"resourcemanager.{kind}.getIamPolicy"
    return _PERMISSION[call.operation]


def _read(google: FakeGoogle, node: str, waits: list[float] | None = None) -> Estate:
    clients = GcpClients(
        google.credentials(), api_endpoint=google.url, iam_endpoint=google.iam_endpoint
    )
    groups = GoogleGroups(
        lambda: AuthorizedSession(google.credentials([SCOPE])),
        SystemClock(),
        endpoint=google.url,
    )
    sleep = waits.append if waits is not None else (lambda _: None)
    return read_estate(clients, GoogleCalls(RETRY, sleep=sleep, hint=import_hint), groups, node)


@pytest.fixture
def chaos(empty_google: FakeGoogle) -> ChaoticGcp:
    return seed_gcp_chaos(empty_google)


@pytest.fixture
def recorded(empty_google: FakeGoogle, chaos: ChaoticGcp) -> set[str]:
    calls: list[GoogleCall] = []
    for node in (f"organizations/{ORGANIZATION}", f"folders/{PROD}", "projects/acme-dev-a"):
        empty_google.calls.clear()
        estate = _read(empty_google, node)
        assert estate.bindings and estate.groups  # the reader did read the estate
        calls += empty_google.calls
    assert all(c.status == 200 for c in calls)
    return {_permission(c) for c in calls if c.operation not in _NOT_IAM}


def _included() -> list[str]:
    permissions: list[str] = yaml.safe_load(ROLE.read_text())["includedPermissions"]
    return permissions


def test_the_import_role_includes_exactly_what_the_reader_calls(recorded: set[str]) -> None:
    assert recorded == set(_included())


def test_the_import_role_reads_only_and_the_docs_list_it() -> None:
    included = _included()

    assert [p for p in included if _WRITES.search(p)] == []
    assert len(included) == len(set(included))
    docs = DOCS.read_text()
    assert "providers/gcp-import-role.yaml" in docs
    assert [p for p in included if f"`{p}`" not in docs] == []


def test_a_throttled_read_is_retried_and_the_estate_still_read_whole(
    empty_google: FakeGoogle, chaos: ChaoticGcp
) -> None:
    whole = _read(empty_google, f"organizations/{ORGANIZATION}")
    empty_google.fail_next("getIamPolicy", times=2, status=429)
    empty_google.fail_next("ListRoles", times=1, status=503)
    waits: list[float] = []

    estate = _read(empty_google, f"organizations/{ORGANIZATION}", waits)

    assert len(waits) == 3
    assert estate == whole


def test_every_list_is_read_to_its_last_page(empty_google: FakeGoogle, chaos: ChaoticGcp) -> None:
    for n in range(7):  # the fake answers three to a page
        empty_google.add_project(f"acme-extra-{n}", parent=f"folders/{DEV}")
        empty_google.add_role(f"projects/acme-dev-a/roles/extra{n}", permissions=("a.b.c",))
    empty_google.add_group("developers@example.com", [f"dev{n}@example.com" for n in range(7)])

    estate = _read(empty_google, f"folders/{DEV}")

    assert len([n for n in estate.nodes if n.startswith("projects/")]) == 9
    assert len([r for r in estate.roles if r.startswith("projects/acme-dev-a/")]) == 7
    assert len(estate.groups["developers@example.com"]) == 7
    assert len(empty_google.calls_to("listProjects")) == 3  # dev's nine, three a page
    assert len(empty_google.calls_to("members.list")) == 3
