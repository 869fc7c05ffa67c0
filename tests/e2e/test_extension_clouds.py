"""Extending access in the clouds, end to end over the real Slack wire and the official
clients against the local fakes: the GCP binding's condition and the Azure PIM schedule
move to the new end, and at every step of the extension (each policy write, each Azure
call) the person holds exactly one live grant per resource; AWS Identity Center keeps its
assignments untouched. The old end passes with the access in place; the new end takes it
away."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from tests.conftest import ALICE, BOB, CAROL, Bot
from tests.e2e.helpers import click, submit
from tests.e2e.test_aws import ALL_PROD, aws_bot  # noqa: F401  (fixtures)
from tests.e2e.test_azure import (  # noqa: F401  (fixtures)
    ALICE_PROD,
    LOGS,
    PROD,
    _requests,
    azure,
    azure_bot,
    waits,
)
from tests.e2e.test_extension import _extension_of
from tests.e2e.test_gcp import gcp_bot, google, google_env  # noqa: F401  (fixtures)
from tests.fakes.aws import MotoAws, Seeded
from tests.fakes.azure import FakeAzure
from tests.fakes.gcp import FakeGoogle

MEMBER = "user:alice@example.com"
GCP_RESOURCES = ("projects/acme-prod", "folders/123456789012")


def _approve_extension(bot: Bot, request_id: str, more: str) -> str:
    answer = bot.command(ALICE, f"extend {request_id} {more} the incident goes on")["text"]
    assert "asked to extend" in answer, answer
    bot.settle()
    extension = _extension_of(bot, request_id)
    assert "Approved" in click(bot, CAROL, "approve", extension.id)
    assert bot.service.get(extension.id).status == "extended"
    return extension.id


def test_a_gcp_extension_moves_the_bindings_end_with_one_live_binding_at_every_step(
    gcp_bot: Callable[..., Bot],  # noqa: F811
    google: FakeGoogle,  # noqa: F811
) -> None:
    bot = gcp_bot()
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-42")
    click(bot, BOB, "approve", request_id)
    old_end = bot.service.get(request_id).expires_at
    assert old_end is not None
    writes = len(google.policy_writes)
    seen: list[int] = []

    def look_before_each_write() -> None:
        now = bot.clock.now()
        seen.extend(len(google.live_bindings(r, MEMBER, at=now)) for r in GCP_RESOURCES)
        google.before_next("setIamPolicy", look_before_each_write)

    google.before_next("setIamPolicy", look_before_each_write)
    bot.clock.advance(timedelta(minutes=45))

    _approve_extension(bot, request_id, "30m")

    new_end = old_end + timedelta(minutes=30)
    assert bot.service.get(request_id).expires_at == new_end
    written = google.policy_writes[writes:]
    assert sorted(resource for resource, _ in written) == sorted(GCP_RESOURCES)
    for resource, policy in written:
        [live] = FakeGoogle.live_bindings_in(policy, MEMBER, at=bot.clock.now())
        assert live["condition"]["title"] == f"jit-bot {request_id}", resource
        assert FakeGoogle.expiry(live["condition"]) == new_end
    assert seen and set(seen) == {1}
    # Past the old end: Google still gives the access, and so does the bot.
    bot.clock.advance(old_end - bot.clock.now() + timedelta(seconds=1))
    bot.service.sweep()
    bot.settle()
    assert bot.service.get(request_id).status == "active"
    for resource in GCP_RESOURCES:
        assert len(google.live_bindings(resource, MEMBER, at=bot.clock.now())) == 1

    bot.clock.advance(timedelta(minutes=30))
    bot.service.sweep()
    bot.settle()
    assert bot.service.get(request_id).status == "revoked"
    for resource in GCP_RESOURCES:
        assert google.live_bindings(resource, MEMBER, at=old_end) == []


def test_an_azure_pim_extension_keeps_one_assignment_and_moves_its_schedule(
    azure_bot: Callable[[], Bot],  # noqa: F811
    azure: FakeAzure,  # noqa: F811
) -> None:
    bot = azure_bot()
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-42")
    click(bot, BOB, "approve", request_id)
    assert azure.assignments() == ALICE_PROD
    before = {scope: azure.assignments_at(scope, "alice@example.com") for scope in (PROD, LOGS)}
    seen: list[tuple[int, int]] = []

    def count(_: Any) -> None:
        for scope in (PROD, LOGS):
            seen.append(
                (
                    len(azure.assignments_at(scope, "alice@example.com")),
                    len(azure.schedules_at(scope, "alice@example.com")),
                )
            )

    azure.after_each_call(count)

    _approve_extension(bot, request_id, "45m")

    access = bot.service.get(request_id)
    assert access.expires_at is not None
    assert set(seen) == {(1, 1)} and seen
    extended = _requests(azure, "AdminExtend")
    assert [r["scope"] for r in extended] == [PROD, LOGS]
    for scope in (PROD, LOGS):
        assert azure.assignments_at(scope, "alice@example.com") == before[scope]
        [schedule] = azure.schedules_at(scope, "alice@example.com")
        assert schedule["end"] >= access.expires_at  # PIM ends it no earlier than the bot
        assert schedule["end"] - access.expires_at < timedelta(minutes=1)
    assert _requests(azure, "AdminRemove") == []

    bot.clock.advance(access.expires_at - bot.clock.now() + timedelta(seconds=1))
    bot.service.sweep()
    bot.settle()
    assert bot.service.get(request_id).status == "revoked"
    assert azure.assignments() == set()


def test_an_aws_extension_keeps_the_assignments_and_the_new_end_removes_them(
    aws_bot: Callable[..., Bot],  # noqa: F811
    moto: MotoAws,
    aws: Seeded,
) -> None:
    bot = aws_bot()
    request_id = submit(bot, ALICE, "prod-support prod 1h INC-42")
    click(bot, BOB, "approve", request_id)
    held = {("alice@example.com", n, "ProdSupport") for n in ALL_PROD}
    assert moto.assignments(aws) == held
    old_end = bot.service.get(request_id).expires_at
    assert old_end is not None

    _approve_extension(bot, request_id, "1h")

    bot.clock.advance(old_end - bot.clock.now() + timedelta(seconds=1))
    bot.service.sweep()
    bot.settle()
    assert bot.service.get(request_id).status == "active"
    assert moto.assignments(aws) == held
    bot.clock.advance(timedelta(hours=1))
    bot.service.sweep()
    bot.settle()
    assert bot.service.get(request_id).status == "revoked"
    assert moto.assignments(aws) == set()
