"""What the bot builds for Slack, checked against Slack's limits as the fake Slack checks
them (tests/fakes/block_kit.py) for inputs larger than the end-to-end tests use."""

from __future__ import annotations

from datetime import timedelta

from bot.slack.blocks import request_modal
from tests.fakes.block_kit import view_problems


def test_the_request_modal_for_more_roles_than_a_menu_holds_is_one_slack_takes() -> None:
    """Slack's menus hold 100 options: the modal offers the chosen role and the first
    others, and says how to ask for the rest."""
    roles = [(f"role-{n:03d}", f"Role number {n}" * 10) for n in range(150)]
    for chosen in ("role-000", "role-149"):
        view = request_modal(roles, chosen, ["dev"], timedelta(hours=1), timedelta(hours=2))
        assert view_problems(view) == []
        [role_block] = [b for b in view["blocks"] if b["block_id"] == "role"]
        options = role_block["element"]["options"]
        assert len(options) == 100 and chosen in [o["value"] for o in options]
        assert role_block["element"]["initial_option"]["value"] == chosen
        assert role_block["hint"]["text"].startswith("50 more roles are not listed here.")
    few = request_modal(roles[:3], "role-001", ["dev"], timedelta(hours=1), timedelta(hours=2))
    assert "hint" not in few["blocks"][0] and len(few["blocks"][0]["element"]["options"]) == 3
