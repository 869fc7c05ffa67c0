"""Break-glass over the real Slack wire: `/jit breakglass` grants at once with no click,
within the rule's limits and quota, tells the rule's approvers and the security channel
loudly, carries a badge everywhere, and ends like any grant."""

from __future__ import annotations

import copy
import io
import json
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import sessionmaker

from bot import audit
from bot.slack import audit_posts
from tests.conftest import ALICE, AUDIT_CHANNEL, BOB, CAROL, MALLORY, SEC1, Bot, stop
from tests.e2e.helpers import (
    buttons,
    force,
    force_target,
    latest,
    open_request_modal,
    requests_of,
    submit,
)
from tests.fakes.slack_client import select_value, text_value
from tests.kit.configs import APPROVERS_YAML

SECURITY = "C0SECURITY"
PROD_RULE = "    environments: [prod]\n    approvers: [sre-leads]\n"
BREAK_GLASS_YAML = APPROVERS_YAML.replace(
    PROD_RULE, PROD_RULE + "    break_glass: {max_duration: 1h, per_person_per_day: 2}\n", 1
)
BADGE = ":rotating_light: `break-glass`"
PROD = {("alice@example.com", "prod-db"), ("alice@example.com", "prod-logs")}


def _start(make_bot: Callable[..., Bot], **options: Any) -> Bot:
    assert BREAK_GLASS_YAML != APPROVERS_YAML
    return make_bot(approvers=BREAK_GLASS_YAML, **options)


def _texts(message: dict[str, Any]) -> str:
    """Everything a reader sees of a message as it reads now: its text, its blocks' and
    its attachments' texts."""
    message = latest(message)
    found = [message.get("text") or ""]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            found.extend(str(v) for k, v in node.items() if k == "text" and isinstance(v, str))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(message.get("blocks") or [])
    walk(message.get("attachments") or [])
    return "\n".join(found)


def _about(bot: Bot, channel: str, request_id: str) -> list[dict[str, Any]]:
    bot.settle()
    return [m for m in bot.slack.messages_in(channel) if request_id in str(m)]


def _is_alert(message: dict[str, Any]) -> bool:
    """A break-glass alert, not a post of audit lines (blocks both)."""
    blocks = message.get("blocks") or []
    return bool(blocks) and not any(audit_posts.carries_a_line(block) for block in blocks)


def _glass(bot: Bot, user: str, text: str) -> str:
    """Break the glass; return the ephemeral answer."""
    answer = bot.command(user, f"breakglass {text}")
    assert answer.get("response_type") == "ephemeral", answer
    bot.settle()
    return str(answer["text"])


def _export(bot: Bot, kind: str) -> list[dict[str, Any]]:
    out = io.StringIO()
    sessions = sessionmaker(bot.runtime.engine)
    audit.export(sessions, out, since=None, until=None, fmt="jsonl", kind=kind)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def _assert_loud_alert(message: dict[str, Any], request_id: str, *, active: bool) -> None:
    shown = latest(message)
    [header] = [b for b in shown["blocks"] if b["type"] == "header"]
    assert header["text"]["text"] == f":rotating_light: Break-glass {request_id}"
    assert [a["color"] for a in shown["attachments"]] == ["danger"]
    assert "INC-42" in _texts(message) and "checkout is down" in _texts(message)
    assert [b["action_id"] for b in buttons(shown) if b.get("style") == "danger"] == (
        ["end_access"] if active else []
    )
    assert not [b for b in buttons(shown) if b["action_id"] in ("approve", "deny")]


def test_break_glass_is_granted_at_once_loudly_with_a_badge_and_ends_at_expiry(
    make_bot: Callable[..., Bot],
) -> None:
    bot = _start(make_bot, security_channel=SECURITY)
    bot.slack.add_channel(SECURITY)
    # Someone else's routine request, before and around it, stays routine.
    routine = submit(bot, CAROL, "prod-support staging 1h INC-7 routine look")

    answer = _glass(bot, ALICE, "prod-support prod 30m INC-42 checkout is down")

    request_id = answer.split(":")[0]
    assert "`break-glass`" in answer and "no approval" in answer
    request = bot.service.get(request_id)
    assert (request.status, request.break_glass, request.incident) == ("active", True, "INC-42")
    assert bot.provider.holdings == PROD  # no click: granted as soon as asked
    assert bot.service.votes_of(request_id) == []
    for approver in (BOB, CAROL):  # every approver of the prod-support rule
        # The alert, then the review DM (tests/e2e/test_breakglass_review.py).
        alert, review = _about(bot, approver, request_id)
        _assert_loud_alert(alert, request_id, active=True)
        assert review["text"].startswith(f"review break-glass {request_id}")
    [alert] = _about(bot, SECURITY, request_id)
    _assert_loud_alert(alert, request_id, active=True)
    assert not _about(bot, AUDIT_CHANNEL, f"Break-glass {request_id}")  # audit lines only
    told = _about(bot, ALICE, request_id)
    assert [m["text"].startswith(BADGE) for m in told] == [True, True]  # asked, granted
    assert "Access granted" in told[-1]["text"]
    listed = bot.command(ALICE, "list")["text"]
    assert f"{request_id} {BADGE} `prod-support` in `prod`" in listed
    assert BADGE not in bot.command(CAROL, "list")["text"]
    roles = bot.command(ALICE, "roles")["text"]
    assert "`prod`: up to 4h, 1 approval(s) from sre-leads; break-glass up to 1h (2 a day)" in roles
    assert "`staging`: up to 4h, 1 approval(s) from security\n" in roles

    bot.clock.advance(timedelta(minutes=30, seconds=1))
    bot.service.sweep()
    bot.settle()

    assert bot.provider.holdings == set()
    assert bot.service.get(request_id).status == "revoked"
    assert _texts(_about(bot, ALICE, request_id)[-1]).startswith(f"{BADGE} Your access")
    for where in (BOB, SECURITY):
        _assert_loud_alert(_about(bot, where, request_id)[0], request_id, active=False)
    events = bot.service.audit_events(request_id)
    assert [e.action for e in events] == [
        "requested",
        "break_glass",
        "grant_started",
        "granted",
        "revoke_started",
        "revoked",
    ]
    assert all(e.details["break_glass"] is True for e in events)
    assert events[1].actor == ALICE and events[1].details["incident"] == "INC-42"
    posts = [p for p in bot.audit_posts() if request_id in p]
    assert len(posts) == len(events) and all(BADGE in p for p in posts)
    [row] = [r for r in _export(bot, "grants") if r["request_id"] == request_id]
    assert (row["break_glass"], row["incident"], row["status"]) == (True, "INC-42", "revoked")
    exported = [e for e in _export(bot, "events") if e["request_id"] == request_id]
    assert all(e["details"]["break_glass"] for e in exported)
    # The routine request: still waiting for its approvers, with no badge anywhere.
    assert bot.service.get(routine).status == "pending" and not bot.service.get(routine).break_glass
    assert not any(BADGE in _texts(m) for m in _about(bot, SEC1, routine))
    assert not any("break_glass" in e.details for e in bot.service.audit_events(routine))


def test_break_glass_is_refused_with_the_fix_where_no_rule_allows_it_or_too_long(
    make_bot: Callable[..., Bot],
) -> None:
    bot = _start(make_bot)
    refusals = {
        # The staging rule has no break_glass.
        "prod-support staging 30m INC-1 down": "No rule in "
        + bot.settings.approvers_file
        + " allows you to break the glass for `prod-support` in `staging`. Ask for it with "
        "`/jit request prod-support staging &lt;duration&gt; &lt;reason…&gt;`",
        "prod-support prod 2h INC-1 down": "Break-glass allows `prod-support` in `prod` for "
        "at most 1h, not 2h; break it for 1h or less",
        # Over the role's own maximum too: the limit that applies is break-glass's.
        "prod-support prod 5h INC-1 down": "at most 1h, not 5h",
        "prod-support prod 30m": "Name the incident (a ticket id or link such as INC-123)",
        "prod-support prod 30m INC-1": "Say why you need access",
        "prod-support prod 30m " + "I" * 101 + " down": "give one of at most 100",
        "db-admin prod 30m INC-1 down": "No rule in",  # the db-admin rule has none either
    }
    for text, says in refusals.items():
        answer = _glass(bot, ALICE, text)
        assert answer.startswith(":warning:") and says in answer, (text, answer)
    # Not a requester of the role at all: the rule's break-glass is not for them either.
    answer = _glass(bot, MALLORY, "prod-support prod 30m INC-1 down")
    assert "You are not among the requesters of `prod-support`" in answer
    assert requests_of(bot, ALICE) == [] and requests_of(bot, MALLORY) == []
    assert bot.provider.holdings == set()
    assert bot.slack.messages_in(BOB) == [] and bot.slack.messages_in(SEC1) == []


def test_with_no_channel_to_announce_it_break_glass_is_refused(
    make_bot: Callable[..., Bot],
) -> None:
    # Neither JIT_SECURITY_CHANNEL nor JIT_AUDIT_CHANNEL: only the approvers would know.
    bot = _start(make_bot, audit_channel=None)

    answer = _glass(bot, ALICE, "prod-support prod 30m INC-1 down")

    assert answer.startswith(":warning:") and "it must be announced in a channel" in answer
    assert "JIT_SECURITY_CHANNEL" in answer
    assert requests_of(bot, ALICE) == [] and bot.provider.holdings == set()
    assert bot.slack.messages_in(BOB) == []


def test_break_glass_quota_counts_each_persons_uses_over_24_hours(
    make_bot: Callable[..., Bot],
) -> None:
    bot = _start(make_bot)
    start = bot.clock.now()
    _glass(bot, ALICE, "prod-support prod 30m INC-1 down")
    bot.clock.advance(timedelta(hours=1))
    _glass(bot, ALICE, "prod-support prod 30m INC-2 still down")
    bot.clock.advance(timedelta(hours=1))

    refused = _glass(bot, ALICE, "prod-support prod 30m INC-3 down again")

    again = (start + timedelta(hours=24)).strftime("%H:%M")
    assert refused.startswith(":warning: You have broken the glass 2 time(s) in the last 24 hours")
    assert f"again in 22 hours 0 minutes (at {again} UTC)" in refused
    assert "ask with `/jit request`" in refused
    assert len(requests_of(bot, ALICE)) == 2
    # Per person: Bob's first use is his own.
    assert "`break-glass`" in _glass(bot, BOB, "prod-support prod 15m INC-3 helping")
    # 24 hours after her first use, one of Alice's places is free again (one only).
    bot.clock.advance(timedelta(hours=22, seconds=1))
    assert "`break-glass`" in _glass(bot, ALICE, "prod-support prod 30m INC-4 down")
    assert _glass(bot, ALICE, "prod-support prod 30m INC-5 down").startswith(":warning:")
    assert [r.incident for r in requests_of(bot, ALICE)].count("INC-4") == 1


def test_two_break_glass_commands_at_once_cannot_both_take_the_last_place(
    make_bot: Callable[..., Bot],
) -> None:
    """Both replicas count Alice's uses before either has stored hers: the one that
    stores second counts again, under Alice's lock, and is refused.

    Replica A is held between its first count and storing, by Slack rate-limiting its
    approver lookup (its Retry-After wait is the test's to end); replica B then breaks the
    glass from start to end and takes the last place."""
    entered, release = threading.Event(), threading.Event()

    def held(seconds: float) -> None:
        entered.set()
        assert release.wait(30), "replica A was never released"

    a = _start(make_bot, sleep=held)
    b = _start(make_bot)
    to_b = copy.copy(a.sim)  # one Slack app, two replicas: B's deliveries go to B
    to_b.url = b.sim.url
    _glass(b, ALICE, "prod-support prod 30m INC-1 down")  # one of two places taken
    a.slack.fail_next("usergroups.users.list", retry_after=1, where={"usergroup": "SSRE"})
    first = a.sim.command(ALICE, "breakglass prod-support prod 30m INC-2 down")
    assert entered.wait(30), "replica A never reached its approver lookup"
    second = to_b.command(ALICE, "breakglass prod-support prod 30m INC-3 down")
    answered_b = b.slack.wait_for_response(name=second.response_url_name)["text"]
    release.set()
    answered_a = a.slack.wait_for_response(name=first.response_url_name)["text"]
    a.settle()
    b.settle()

    assert "`break-glass`" in answered_b
    assert answered_a.startswith(":warning: You have broken the glass 2 time(s)"), answered_a
    assert sorted(r.incident or "" for r in requests_of(b, ALICE)) == ["INC-1", "INC-3"]


HOSTILE_INCIDENT = "<!channel>*approved*<https://evil.example|INC-9>"
HOSTILE_REASON = "<!here> *approved by security* <@UMALLORY> ~gone~ `x` <https://evil.example|ok>"
LIVE = ("<!channel>", "<!here>", "<@UMALLORY>", "<https://evil.example")


def test_hostile_incident_and_reason_are_escaped_in_every_message(
    make_bot: Callable[..., Bot],
) -> None:
    bot = _start(make_bot)  # JIT_SECURITY_CHANNEL unset: the audit channel is told

    answer = _glass(bot, ALICE, f"prod-support prod 30m {HOSTILE_INCIDENT} {HOSTILE_REASON}")

    request_id = answer.split(":")[0]
    assert bot.service.get(request_id).incident == HOSTILE_INCIDENT
    shown = {
        "alert to an approver": _texts(_about(bot, BOB, request_id)[0]),
        "alert to the security channel": _texts(
            next(m for m in _about(bot, AUDIT_CHANNEL, request_id) if _is_alert(m))
        ),
        "requester DMs": "\n".join(_texts(m) for m in _about(bot, ALICE, request_id)),
        "audit posts": "\n".join(p for p in bot.audit_posts() if request_id in p),
        "/jit list": bot.command(ALICE, "list")["text"],
    }
    for where, text in shown.items():
        for live in LIVE:
            assert live not in text, (where, live, text)
    for where in ("alert to an approver", "alert to the security channel", "audit posts"):
        assert "&lt;!channel&gt;" in shown[where] and "&lt;!here&gt;" in shown[where], where
    assert "*approved by security*" not in shown["alert to an approver"]


def test_a_break_glass_its_rule_no_longer_allows_is_not_granted_after_a_restart(
    make_bot: Callable[..., Bot],
) -> None:
    first = _start(make_bot)
    _glass(first, ALICE, "prod-support prod 30m INC-1 down")
    [request] = requests_of(first, ALICE)
    # As a crash right after storing leaves it: approved, nothing granted yet.
    force(first, request.id, status="approved", expires_at=None)
    for target in first.service.targets_of(request.id):
        force_target(first, target.id, status="pending", granted_at=None)
    first.provider.holdings.clear()
    stop(first)

    second = make_bot()  # the same approvers.yaml, without break_glass
    second.clock.advance(timedelta(minutes=2))
    second.service.sweep()
    second.settle()

    assert second.service.get(request.id).status == "failed"
    assert second.provider.holdings == set()


def test_the_request_modal_breaks_the_glass_where_a_rule_allows_it_with_the_same_checks(
    make_bot: Callable[..., Bot],
) -> None:
    bot = _start(make_bot)
    view = open_request_modal(bot, ALICE)
    kind = next(b for b in view["blocks"] if b["block_id"] == "kind")
    assert [o["value"] for o in kind["element"]["options"]] == ["request", "break_glass"]
    assert "allowed here in prod" in kind["hint"]["text"]
    # No rule lets Alice break the glass for db-admin: no such choice for it.
    bot.sim.select_action(ALICE, "role", "db-admin", view=view, block_id="role")
    bot.settle()
    assert "kind" not in [b["block_id"] for b in bot.slack.view(view["id"])["blocks"]]

    def send(env: str, duration: str, incident: str, kind: str = "break_glass") -> Any:
        form = {
            "role": {"role": select_value("prod-support")},
            "environment": {"environment": select_value(env)},
            "duration": {"duration": text_value(duration)},
            "reason": {"reason": text_value("checkout is down")},
            "kind": {"kind": select_value(kind)},
            "incident": {"incident": text_value(incident)},
        }
        reply = bot.sim.submit_view(ALICE, view, form)
        bot.settle()
        return reply.json

    assert list(send("prod", "30m", " ")["errors"]) == ["incident"]  # in the modal's answer
    assert list(send("prod", "30m", "INC-1", kind="admin")["errors"]) == ["kind"]
    assert send("staging", "30m", "INC-1") is None  # closed; the full check answers by DM
    assert "allows you to break the glass" in bot.dms_to(ALICE)[-1]["text"]
    send("prod", "2h", "INC-1")
    assert "for at most 1h, not 2h" in bot.dms_to(ALICE)[-1]["text"]
    assert requests_of(bot, ALICE) == []

    send("prod", "30m", "INC-42")
    send("prod", "30m", "", kind="request")  # still a request its approvers decide

    glass, routine = sorted(requests_of(bot, ALICE), key=lambda r: r.break_glass, reverse=True)
    assert (glass.break_glass, glass.incident, glass.status) == (True, "INC-42", "active")
    assert (routine.break_glass, routine.status) == (False, "pending")
    [alert] = [m for m in _about(bot, AUDIT_CHANNEL, glass.id) if _is_alert(m)]
    _assert_loud_alert(alert, glass.id, active=True)


def test_break_glass_nobody_but_the_requester_could_review_is_refused(
    make_bot: Callable[..., Bot],
) -> None:
    # BOB alone approves prod-support in prod: his own break-glass could never be reviewed.
    alone = BREAK_GLASS_YAML.replace('  sre-leads: ["@sre-leads"]', "  sre-leads: [UBOB]", 1)
    alone = alone.replace(
        "roles: [prod-support]\n", "roles: [prod-support]\n    requesters: [UBOB]\n", 1
    )
    assert alone != BREAK_GLASS_YAML
    bot = make_bot(approvers=alone)

    answer = _glass(bot, BOB, "prod-support prod 30m INC-1 down")

    assert answer.startswith(":warning:") and "Nobody but you could review" in answer
    assert requests_of(bot, BOB) == [] and bot.provider.holdings == set()
