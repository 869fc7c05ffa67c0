"""`jit-bot stats` figures from a trail built by hand, every figure worked out here by hand:
decision times per role and environment, the auto-approved share, each approver's load,
speed and approval rate, break-glass reviews, extensions per grant and requests that
expired undecided; and the empty trail, which divides by nothing."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console

from bot.names import BOT_ACTOR, AuditAction
from bot.stats import figures, rendering
from bot.stats.figures import Event, Figures, Window, compute

ALICE, BOB, CAROL, SEC1, SEC2, SEC3 = "UALICE", "UBOB", "UCAROL", "USEC1", "USEC2", "USEC3"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
WINDOW = Window(since=datetime(2026, 3, 2, tzinfo=UTC), until=datetime(2026, 3, 6, tzinfo=UTC))
SECTIONS = ("Requests", "Time to decision", "Approvers", "Break-glass", "Extensions")
S = timedelta(seconds=1)
H = timedelta(hours=1)
D = timedelta(days=1)


@dataclass
class Trail:
    """Events as the bot writes them: every one carries its request's role, environment
    and requester (and the break-glass badge)."""

    events: list[Event] = field(default_factory=list)
    asked: dict[str, dict[str, Any]] = field(default_factory=dict)

    def ask(
        self, request_id: str, role: str, env: str, at: datetime, approvers: list[str], **more: Any
    ) -> None:
        self.asked[request_id] = {"role": role, "environment": env, "requester": ALICE}
        if more.get("break_glass"):
            self.asked[request_id]["break_glass"] = True
        self.add(at, ALICE, AuditAction.REQUESTED, request_id, approvers=approvers, **more)

    def add(self, at: datetime, actor: str, action: str, request_id: str, **details: Any) -> None:
        self.events.append(Event(at, actor, action, request_id, self.asked[request_id] | details))

    def approve(self, request_id: str, at: datetime, *voters: str) -> None:
        """Votes at ``at``, the last of them approving the request."""
        for n, voter in enumerate(voters, 1):
            self.add(at, voter, AuditAction.APPROVAL_RECORDED, request_id, approvals=n)
        self.add(at, BOT_ACTOR, AuditAction.APPROVED, request_id, approvals=len(voters))

    def grant(self, request_id: str, at: datetime) -> None:
        self.add(at, BOT_ACTOR, AuditAction.GRANT_STARTED, request_id)
        self.add(at, BOT_ACTOR, AuditAction.GRANTED, request_id, expires_at=(at + H).isoformat())


def seeded() -> Trail:
    """Twelve requests asked from Monday to Thursday, one before and one at the end of
    the window (neither counts, whatever happens to them inside it)."""
    t = Trail()
    t.ask("R-OLD", "prod-support", "prod", T0 - 10 * H, [BOB, CAROL])  # Sunday night
    t.approve("R-OLD", T0 + 10 * 60 * S, SEC1)  # decided inside the window: still not counted
    # prod-support in prod: decided after 60 s, 5 s, 300 s (approved) and 600 s (denied).
    leads = [BOB, CAROL]
    t.ask("R-1", "prod-support", "prod", T0, leads)
    t.approve("R-1", T0 + 60 * S, BOB)
    t.grant("R-1", T0 + 61 * S)
    t.ask("R-2", "prod-support", "prod", T0 + H, leads)
    t.approve("R-2", T0 + H + 5 * S, CAROL)
    t.grant("R-2", T0 + H + 6 * S)
    t.ask("R-3", "prod-support", "prod", T0 + 2 * H, leads)
    t.approve("R-3", T0 + 2 * H + 300 * S, BOB)
    t.grant("R-3", T0 + 2 * H + 301 * S)
    t.ask("R-4", "prod-support", "prod", T0 + 3 * H, leads)
    t.add(T0 + 3 * H + 600 * S, CAROL, AuditAction.DENIED, "R-4", reason="change freeze")
    # An extension of R-1, approved after 40 s: prod-support's only extension.
    t.ask("R-8", "prod-support", "prod", T0 + 30 * 60 * S, leads, extends="R-1")
    t.approve("R-8", T0 + 30 * 60 * S + 40 * S, BOB)
    t.add(T0 + 31 * 60 * S, BOT_ACTOR, AuditAction.EXTENDED, "R-8", extends="R-1")
    # db-admin in prod, two of N: Bob after 120 s, then Sec3, added by escalation at
    # 30 min, 8 s after that DM (decided 1808 s after asking).
    t.ask("R-5", "db-admin", "prod", T0 + D, [BOB, CAROL, SEC1, SEC2])
    t.add(T0 + D + 120 * S, BOB, AuditAction.APPROVAL_RECORDED, "R-5", approvals=1, required=2)
    t.add(
        T0 + D + 1800 * S, BOT_ACTOR, AuditAction.ESCALATED, "R-5", group="oncall", approvers=[SEC3]
    )
    t.add(T0 + D + 1808 * S, SEC3, AuditAction.APPROVAL_RECORDED, "R-5", approvals=2, required=2)
    t.add(T0 + D + 1808 * S, BOT_ACTOR, AuditAction.APPROVED, "R-5", approvals=2)
    t.grant("R-5", T0 + D + 1809 * S)
    # db-admin in dev: auto-approved, and its extension, auto-approved too.
    t.ask("R-6", "db-admin", "dev", T0 + D + H, [])
    t.add(T0 + D + H, BOT_ACTOR, AuditAction.AUTO_APPROVED, "R-6", rule=1)
    t.grant("R-6", T0 + D + H)
    t.ask("R-7", "db-admin", "dev", T0 + D + 2 * H, [], extends="R-6")
    t.add(T0 + D + 2 * H, BOT_ACTOR, AuditAction.AUTO_APPROVED, "R-7", rule=1)
    t.add(T0 + D + 2 * H, BOT_ACTOR, AuditAction.EXTENDED, "R-7", extends="R-6")
    t.add(T0 + D + 2 * H, BOT_ACTOR, AuditAction.EXPIRY_MOVED, "R-6", extension="R-7")
    # prod-support in staging: one no one decided (expired), one cancelled.
    t.ask("R-9", "prod-support", "staging", T0 + 2 * D, [SEC1, SEC2])
    t.add(T0 + 2 * D + H, BOT_ACTOR, AuditAction.EXPIRED_UNDECIDED, "R-9")
    t.ask("R-10", "prod-support", "staging", T0 + 2 * D + 2 * H, [SEC1, SEC2])
    t.add(T0 + 2 * D + 2 * H + 600 * S, ALICE, AuditAction.CANCELLED, "R-10")
    # Two break-glass uses; the first reviewed after the window's end (it still counts).
    for request_id, role, at in (("R-11", "prod-support", 3 * D), ("R-12", "db-admin", 3 * D + H)):
        t.ask(request_id, role, "prod", T0 + at, leads, break_glass=True, incident="INC-1")
        t.add(T0 + at, ALICE, AuditAction.BREAK_GLASS, request_id, incident="INC-1")
        t.grant(request_id, T0 + at)
    t.add(T0 + 5 * D, CAROL, AuditAction.BREAK_GLASS_REVIEWED, "R-11", verdict="justified")
    t.ask("R-LATE", "prod-support", "prod", WINDOW.until or T0, leads)  # until is exclusive
    t.approve("R-LATE", WINDOW.until or T0, SEC1)
    return t


@pytest.fixture(scope="module")
def found() -> Figures:
    return compute(iter(seeded().events), WINDOW)


def test_requests_are_those_asked_in_the_window_and_two_of_twelve_auto_approved(
    found: Figures,
) -> None:
    assert (found.requests, found.auto_approved, found.expired_undecided) == (12, 2, 1)
    assert found.auto_approved_share == pytest.approx(2 / 12)
    assert found.days == 4.0


def test_time_to_decision_per_role_and_environment_leaves_out_rules_and_break_glass(
    found: Figures,
) -> None:
    # prod-support/prod: 5, 40, 60, 300, 600 s. p50 is the middle one; p90 sits at rank
    # 0.9 × 4 = 3.6, between 300 and 600: 300 + 0.6 × 300.
    assert found.decision_times == (
        figures.DecisionTimes("db-admin", "prod", 1, 1808.0, 1808.0),
        figures.DecisionTimes("prod-support", "prod", 5, 60.0, 480.0),
    )


def test_each_approver_s_decisions_share_rate_speed_and_approvals_per_day(
    found: Figures,
) -> None:
    by = {a.approver: a for a in found.approvers}
    assert [a.approver for a in found.approvers] == [BOB, CAROL, SEC3]  # most decisions first
    bob, carol, sec3 = by[BOB], by[CAROL], by[SEC3]
    # Bob approved R-1 (60 s), R-3 (300 s), R-5 (120 s) and R-8 (40 s), over 4 days.
    assert (bob.approvals, bob.denials, bob.approvals_per_day) == (4, 0, 1.0)
    assert (bob.approval_rate, bob.median_seconds_to_click) == (1.0, 90.0)
    # Carol approved R-2 after 5 s and denied R-4 after 600 s: half approved, not flagged.
    assert (carol.approvals, carol.denials, carol.approvals_per_day) == (1, 1, 0.25)
    assert (carol.approval_rate, carol.median_seconds_to_click) == (0.5, 302.5)
    assert not carol.possible_rubber_stamping
    # Sec3 was DM'd by escalation at 30 min and clicked 8 s later.
    assert (sec3.approvals, sec3.median_seconds_to_click) == (1, 8.0)
    assert sec3.possible_rubber_stamping and not bob.possible_rubber_stamping
    shares = [a.share_of_decisions for a in found.approvers]
    assert shares == pytest.approx([4 / 7, 2 / 7, 1 / 7])


def test_break_glass_uses_and_their_reviews(found: Figures) -> None:
    assert (found.break_glass.uses, found.break_glass.reviewed) == (2, 1)
    assert found.break_glass.review_completion == 0.5


def test_extensions_per_granted_request_of_each_role(found: Figures) -> None:
    # prod-support granted, extended once; db-admin granted
    # extended once. Extensions grant nothing of their own.
    assert found.extensions == (
        figures.ExtensionRate("db-admin", granted=3, extensions=1),
        figures.ExtensionRate("prod-support", granted=4, extensions=1),
    )
    assert [e.per_grant for e in found.extensions] == pytest.approx([1 / 3, 1 / 4])


def test_the_json_document_has_every_figure_under_stable_keys(found: Figures) -> None:
    doc = json.loads(json.dumps(rendering.as_json(found)))
    assert doc["version"] == 1
    assert doc["window"] == {
        "since": "2026-03-02T00:00:00+00:00",
        "until": "2026-03-06T00:00:00+00:00",
        "days": 4.0,
    }
    assert doc["requests"] == {
        "asked": 12,
        "auto_approved": 2,
        "auto_approved_share": 0.1667,
        "expired_undecided": 1,
    }
    assert doc["time_to_decision"][1] == {
        "role": "prod-support",
        "environment": "prod",
        "decided": 5,
        "p50_seconds": 60.0,
        "p90_seconds": 480.0,
    }
    assert doc["approvers"][2] == {
        "approver": SEC3,
        "approvals": 1,
        "denials": 0,
        "decisions": 1,
        "approvals_per_day": 0.25,
        "share_of_decisions": 0.1429,
        "approval_rate": 1.0,
        "median_seconds_to_click": 8.0,
        "possible_rubber_stamping": True,
    }
    assert doc["break_glass"] == {"uses": 2, "reviewed": 1, "review_completion": 0.5}
    assert doc["extensions"][0] == {
        "role": "db-admin",
        "granted": 3,
        "extensions": 1,
        "extensions_per_grant": 0.3333,
    }


def _table(found: Figures, *, terminal: bool) -> str:
    out = io.StringIO()
    rendering.show(found, Console(file=out, force_terminal=terminal, width=160))
    return out.getvalue()


def test_the_table_names_every_section_and_flags_the_fast_clicker(found: Figures) -> None:
    text = _table(found, terminal=False)
    assert [s for s in SECTIONS if s not in text] == []
    [sec3] = [line for line in text.splitlines() if SEC3 in line]
    assert "possible rubber-stamping" in sec3 and "8s" in sec3 and "14%" in sec3
    [bob] = [line for line in text.splitlines() if BOB in line]
    assert "1.00" in bob and "57%" in bob and "1m30s" in bob and "rubber" not in bob
    assert "\x1b[" not in text and "█" not in text  # a pipe gets figures, no colour or bars


def test_at_a_terminal_the_table_draws_bars_in_colour(found: Figures) -> None:
    text = _table(found, terminal=True)
    assert "\x1b[" in text and "█" in text
    # The largest p90 (1808 s, db-admin in prod) has the full bar.
    [longest] = [line for line in text.splitlines() if "30m8s" in line]
    assert "█" * rendering.BAR_WIDTH in longest


def test_control_characters_from_the_trail_cannot_reach_the_terminal() -> None:
    t = Trail()
    t.ask("R-1", "prod\x1b[2Jsupport", "prod", T0, [BOB])
    t.approve("R-1", T0 + 60 * S, "U\x1b]0;owned\x07BOB")
    text = _table(compute(t.events), terminal=True)
    assert "\x1b[2J" not in text and "\x1b]0" not in text
    assert "prod?[2Jsupport" in text and "U?]0;owned?BOB" in text


def test_an_empty_trail_gives_zeroes_and_no_rate_and_says_so() -> None:
    empty = compute([], WINDOW)
    assert (empty.requests, empty.auto_approved_share, empty.days) == (0, None, 4.0)
    assert (empty.approvers, empty.decision_times, empty.extensions) == ((), (), ())
    assert empty.break_glass.review_completion is None
    doc = rendering.as_json(compute([]))
    assert doc["requests"]["auto_approved_share"] is None and doc["window"]["days"] == 0.0
    text = _table(compute([]), terminal=True)
    assert "no request was asked in this window" in text
    assert "no one approved or denied a request" in text
    assert [s for s in SECTIONS if s not in text] == []


def test_without_bounds_the_window_spans_the_days_of_its_first_and_last_request() -> None:
    t = Trail()
    t.ask("R-1", "prod-support", "prod", T0, [BOB])  # Monday
    t.approve("R-1", T0 + 60 * S, BOB)
    t.ask("R-2", "prod-support", "prod", T0 + D + 12 * H, [BOB])  # Tuesday night
    t.approve("R-2", T0 + D + 13 * H, BOB)
    assert compute(t.events).days == 2.0
    [bob] = compute(t.events).approvers
    assert bob.approvals_per_day == 1.0
    since_only = compute(t.events, Window(since=T0 - 9 * H - D))  # from Sunday
    assert since_only.days == 3.0


def test_an_undecided_request_adds_no_decision_time_and_no_approver() -> None:
    t = Trail()
    t.ask("R-1", "prod-support", "prod", T0, [BOB, CAROL])
    found = compute(t.events)
    assert (found.requests, found.decision_times, found.approvers) == (1, (), ())
    assert found.expired_undecided == 0


def test_a_quiet_approver_has_decisions_but_no_dm_to_click_time() -> None:
    t = Trail()
    t.ask("R-1", "prod-support", "prod", T0, [BOB, SEC1], quiet_approvers=[SEC1])
    t.approve("R-1", T0 + 3 * S, SEC1)  # 3 s after asking: no DM it could answer that fast
    t.ask("R-2", "prod-support", "prod", T0 + H, [BOB, SEC1], quiet_approvers=[SEC1])
    t.approve("R-2", T0 + H + 20 * S, BOB)
    found = compute(t.events)
    by_person = {a.approver: a for a in found.approvers}
    assert by_person[SEC1].approvals == 1
    assert by_person[SEC1].median_seconds_to_click is None
    assert not by_person[SEC1].possible_rubber_stamping
    assert by_person[BOB].median_seconds_to_click == 20.0
