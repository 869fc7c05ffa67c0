"""One request end to end: /jit request → approver DM → Approve → granted → expiry."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import ALICE, BOB, CAROL, Bot
from tests.e2e.helpers import buttons


def test_inline_request_is_approved_granted_and_revoked_at_expiry(bot: Bot) -> None:
    answer = bot.command(ALICE, "request prod-support prod 2h INC-123 checkout errors")
    # The requester is told who decides: the sre-leads, resolved from the user group.
    request_id, sent_to = answer["text"].split(" sent to ")
    assert sent_to == f"<@{BOB}>, <@{CAROL}>. I'll DM you when it is decided."
    assert answer.get("response_type") == "ephemeral"

    dm = bot.dms_to(BOB)[-1]
    assert "prod-db" in str(dm["blocks"]) and "INC-123 checkout errors" in str(dm["blocks"])
    approve = next(b for b in buttons(dm) if b["action_id"] == "approve")
    assert approve["value"] == request_id and request_id.startswith("R-")

    reply = bot.sim.block_action(BOB, "approve", request_id, message=dm)
    assert reply.status == 200
    bot.settle()
    assert bot.provider.holdings == {
        ("alice@example.com", "prod-db"),
        ("alice@example.com", "prod-logs"),
    }
    granted = bot.dms_to(ALICE)[-1]
    assert "Access granted" in granted["text"]
    assert [b["action_id"] for b in buttons(granted)] == ["extend", "end_access"]
    for approver in (BOB, CAROL):
        latest = bot.slack.messages_in(approver)[-1]
        assert latest["updates"], "approver DM was not updated in place"
        assert not buttons(latest), "buttons must be gone once decided"
        assert f"<@{BOB}>" in str(latest["blocks"])

    bot.clock.advance(timedelta(hours=2, seconds=1))
    bot.service.sweep()
    bot.settle()
    assert bot.provider.holdings == set()
    assert "has ended" in bot.dms_to(ALICE)[-1]["text"]
    actions = [e.action for e in bot.service.audit_events(request_id)]
    assert actions == [
        "requested",
        "approval_recorded",
        "approved",
        "grant_started",
        "granted",
        "revoke_started",
        "revoked",
    ]
    assert len(bot.audit_posts()) == len(actions)
