"""What the bot builds for Slack, checked against Slack's limits as the fake Slack checks
them (tests/fakes/block_kit.py) for inputs larger than the end-to-end tests use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.operations.home import Home, Review
from bot.slack.blocks import (
    everyone_active,
    finished_line,
    home_view,
    list_blocks,
    list_text,
    request_modal,
    reviews_waiting,
    week_figures,
)
from bot.stats.figures import ApproverLoad, BreakGlass, DecisionTimes, Figures, Window
from bot.storage.models import AccessRequest, Status
from bot.templates import Note, RequestTemplate
from tests.fakes.block_kit import block_problems, view_problems


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


def _finished(number: int, reason: str = "INC-1") -> AccessRequest:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    return AccessRequest(
        id=f"R-{number:08d}",
        requester_id="UALICE",
        requester_email="alice@example.com",
        role="prod-support",
        environment="prod",
        reason=reason,
        duration_seconds=6 * 3600,
        status=Status.DENIED,
        rule_index=0,
        required_approvals=1,
        approvers=["UBOB"],
        created_at=now,
        updated_at=now,
    )


def test_a_form_filled_in_from_a_reason_longer_than_it_takes_is_one_slack_takes() -> None:
    """A reason typed in one line (`/jit request`) has no limit; the form's field takes
    1,000 characters: it opens with them, and says the rest was cut."""
    source = _finished(1, "x" * 1500)
    template = RequestTemplate(
        source, "prod-support", None, timedelta(hours=4), source.reason, (Note.DURATION_CAPPED,)
    )
    view = request_modal(
        [("prod-support", "")],
        "prod-support",
        ["prod"],
        timedelta(hours=1),
        timedelta(hours=4),
        template=template,
    )
    assert view_problems(view) == []
    fields = {b["block_id"]: b for b in view["blocks"]}
    assert fields["reason"]["element"]["initial_value"] == "x" * 1000
    assert fields["duration"]["element"]["initial_value"] == "4h"
    assert "initial_option" not in fields["environment"]["element"]
    notes = fields["again"]["text"]["text"]
    assert "cut to 1000 characters" in notes and "6h is longer than `prod-support`" in notes


def test_a_list_longer_than_a_message_holds_still_offers_request_again() -> None:
    """Slack takes 50 blocks and 3,000 characters a section: a long list is packed and
    cut, and the finished requests with their buttons come whole after it."""
    now = datetime(2025, 1, 1, tzinfo=UTC)
    awaiting = [
        _finished(n, "why " * 120).model_copy(update={"status": Status.PENDING}) for n in range(400)
    ]
    finished = [_finished(900 + n) for n in range(5)]
    shown = list_blocks([], awaiting, now, finished)
    assert block_problems(shown) == []
    assert "more part(s) of the list do not fit here" in str(shown)
    assert [b["accessory"]["value"] for b in shown if "accessory" in b] == [r.id for r in finished]
    assert list_text([], awaiting, now, finished).endswith(finished_line(finished[-1]))


def _request(n: int, status: str, **values: object) -> AccessRequest:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    return AccessRequest(
        id=f"R-{n:08d}",
        requester_id=f"U{n:08d}",
        requester_email=f"person{n}@example.com",
        role=f"role-{n % 7}-" + "r" * 80,
        environment=f"env-{n % 3}-" + "e" * 80,
        reason="<!channel> " + "why " * 700,
        duration_seconds=3600,
        status=status,
        rule_index=0,
        required_approvals=1,
        approvers=[f"UAPPROVER{a:03d}" for a in range(40)],
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(hours=1),
        incident="INC-" + "9" * 90,
        **values,
    )


def test_a_home_full_of_everything_is_one_slack_takes_with_room_for_another_section() -> None:
    """Every section at its cap, long names and reasons, an admin's sections too, the last
    7 days' figures with many roles and approvers among them: within Slack's limits."""
    many = range(40)
    home = Home(
        user_id="UVIEWER",
        now=datetime(2025, 1, 1, tzinfo=UTC),
        access=[_request(n, "active") for n in many],
        pending=[_request(n, "pending") for n in many],
        awaiting=[_request(n, "pending") for n in many],
        recent=[_request(n, "revoked") for n in range(5)],
        admin=True,
        notice=":warning: " + "x" * 4000,
    )
    reviews = [Review(_request(n, "active"), home.now, ["UVIEWER"]) for n in many]
    admin = everyone_active([_request(n, "active") for n in many])
    admin += reviews_waiting(reviews, "UVIEWER")
    admin += week_figures(
        Figures(
            window=Window(),
            days=7.0,
            requests=4000,
            auto_approved=100,
            expired_undecided=3,
            decision_times=tuple(
                DecisionTimes("r" * 64, "e" * 64, n, 60.0 * n, 600.0 * n) for n in many
            ),
            approvers=tuple(ApproverLoad(f"U{n:010d}", 90, 10, 12.9, 1 / 40, 3.5) for n in many),
            break_glass=BreakGlass(4, 1),
            extensions=(),
        )
    )
    view = home_view(home, admin)
    assert view_problems(view) == []
    assert len(view["blocks"]) <= 90
    assert ":warning: under 10s: possibly not reading" in str(view["blocks"])
    assert sum("…and 35 more" in str(b) for b in view["blocks"]) == 2  # access, reviews
    assert sum("…and 30 more" in str(b) for b in view["blocks"]) == 3  # the rest
