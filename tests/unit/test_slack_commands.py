"""The /jit command's table and the texts built for it, checked without a running bot."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.errors import WrongState
from bot.slack import blocks
from bot.slack.listeners.commands import SUBCOMMANDS
from bot.storage.models import AccessRequest, Status


def test_every_subcommand_has_its_line_in_help_and_help_names_no_other() -> None:
    assert list(SUBCOMMANDS) == list(blocks.COMMAND_HELP)
    for name, text in blocks.COMMAND_HELP.items():
        assert f"`/jit {name}" in text and text in blocks.HELP


def test_an_active_request_without_an_end_time_is_refused_in_words_not_by_an_assert() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    damaged = AccessRequest(
        id="R-ABCDEFGH",
        requester_id="U1",
        requester_email="a@example.com",
        role="prod-support",
        environment="prod",
        reason="INC-1",
        duration_seconds=3600,
        status=Status.ACTIVE,
        rule_index=0,
        required_approvals=1,
        created_at=now,
        updated_at=now,
    )
    with pytest.raises(WrongState, match="R-ABCDEFGH is active but has no end time"):
        blocks.list_text([damaged], [], now)
