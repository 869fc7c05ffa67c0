"""The longer texts a /jit command answers with: help, the person's list of requests (as
text, and as blocks whose finished requests carry "Request again") and the roles they
may request."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject, SectionBlock

from bot.config import Rule
from bot.durations import format_duration
from bot.errors import WrongState
from bot.slack.blocks.again import finished_line, request_again_button
from bot.slack.blocks.common import badge, duration, mention, mentions, when
from bot.slack.blocks.extensions import extension_line
from bot.slack.blocks.section import MarkdownSection
from bot.slack.mrkdwn import clip, escape, quote
from bot.storage.models import AccessRequest, Status

# Placeholders are escaped: to Slack a bare <role> is markup, not text.
_HELP_HEAD = "*jit-bot*: just-in-time access, approved by people you trust."
# What each /jit subcommand does, in the order help lists them; the keys are the
# subcommands bot/slack/listeners/commands.py answers.
COMMAND_HELP = {
    "request": "• `/jit request` opens a form.\n"
    "• `/jit request &lt;role&gt; &lt;environment&gt; &lt;duration&gt; &lt;reason…&gt;` asks "
    "in one line, e.g. `/jit request prod-support prod 2h INC-123 checkout errors`.",
    "breakglass": "• `/jit breakglass &lt;role&gt; &lt;environment&gt; &lt;duration&gt; "
    "&lt;incident-ref&gt; &lt;reason…&gt;` takes access at once, with no approval, where "
    "a rule allows break-glass; its approvers and the security channel are told, e.g. "
    "`/jit breakglass prod-support prod 30m INC-123 checkout down`.",
    "extend": "• `/jit extend &lt;request-id&gt; &lt;duration&gt; &lt;reason…&gt;` asks to keep "
    "your active access longer, decided by the same rule as the access, e.g. "
    "`/jit extend R-7K2M9QXA 30m still on INC-123`; the Extend button does the same.",
    "list": "• `/jit list` shows your requests, your active access, what waits for your "
    "decision, and your last finished requests, with Request again.",
    "roles": "• `/jit roles` shows what you may request, where, for how long and who approves it.",
    "approve": "• `/jit approve &lt;request-id&gt;` approves a request that waits for you, as "
    "the Approve button does (also for approvers who get no DM).",
    "deny": "• `/jit deny &lt;request-id&gt; [reason…]` denies it, with an optional reason "
    "the requester is shown.",
    "revoke": "• `/jit revoke &lt;request-id&gt;` ends access now (requester or approver).",
    "cancel": "• `/jit cancel &lt;request-id&gt;` withdraws a pending request.",
    "sync": "• `/jit sync` re-reads users, groups and cloud accounts now (approvers and admins).",
    "help": "• `/jit help` shows this.",
}
HELP = "\n".join([_HELP_HEAD, *COMMAND_HELP.values()])


def _active_line(request: AccessRequest, now: datetime) -> str:
    if request.expires_at is None:
        # The domain sets both at once; a row without is damaged, and saying so beats a guess.
        raise WrongState(f"{request.id} is active but has no end time; ask an admin to look.")
    left = format_duration(max(request.expires_at - now, timedelta(seconds=0)))
    return (
        f"• {request.id} {badge(request)}`{request.role}` in `{request.environment}`, "
        f"{left} left "
        f"(until {when(request.expires_at)}) · `/jit revoke {request.id}` to end it, "
        f"`/jit extend {request.id} &lt;duration&gt; &lt;reason&gt;` to keep it longer"
    )


_SECTION_MAX = 3000  # characters in a section's text
# Slack's 50 blocks a message, less the finished requests' and the line saying more.
_LIST_SECTIONS_MAX = 40
FINISHED_HEADING = "*Recently finished*"


def list_text(
    mine: Sequence[AccessRequest],
    awaiting: Sequence[AccessRequest],
    now: datetime,
    finished: Sequence[AccessRequest] = (),
) -> str:
    """/jit list as text (the message's fallback): the lines of ``list_blocks``."""
    lines = _list_lines(mine, awaiting, now)
    if finished:
        lines += [FINISHED_HEADING, *(finished_line(r) for r in finished)]
    return "\n".join(lines)


def list_blocks(
    mine: Sequence[AccessRequest],
    awaiting: Sequence[AccessRequest],
    now: datetime,
    finished: Sequence[AccessRequest] = (),
) -> list[dict[str, Any]]:
    """/jit list as blocks: the same lines, then each recently finished request with
    "Request again"."""
    sections = [MarkdownSection(text) for text in _packed(_list_lines(mine, awaiting, now))]
    shown: list[Block] = list(sections[:_LIST_SECTIONS_MAX])
    if len(sections) > _LIST_SECTIONS_MAX:
        more = f"{len(sections) - _LIST_SECTIONS_MAX} more part(s) of the list do not fit here."
        shown.append(ContextBlock(elements=[MarkdownTextObject(text=more)]))
    if finished:
        shown.append(MarkdownSection(FINISHED_HEADING))
        shown += [
            SectionBlock(
                text=MarkdownTextObject(text=finished_line(r)),
                accessory=request_again_button(r.id),
            )
            for r in finished
        ]
    return [b.to_dict() for b in shown]


def _packed(lines: Sequence[str]) -> list[str]:
    """The lines, packed in order into as few texts as fit in a section each."""
    texts: list[str] = []
    for line in lines:
        line = clip(line, _SECTION_MAX)
        if texts and len(texts[-1]) + 1 + len(line) <= _SECTION_MAX:
            texts[-1] += "\n" + line
        else:
            texts.append(line)
    return texts


def _list_lines(
    mine: Sequence[AccessRequest], awaiting: Sequence[AccessRequest], now: datetime
) -> list[str]:
    pending = [r for r in mine if r.status == Status.PENDING]
    active = [r for r in mine if r.status == Status.ACTIVE]
    other = [r for r in mine if r not in pending and r not in active]
    lines = ["*Your pending requests*"]
    lines += [_asked(r) + ", waiting for " + mentions(r.approvers, limit=400) for r in pending] or [
        "• none"
    ]
    lines.append("*Your active access*")
    lines += [_active_line(r, now) for r in active] or ["• none"]
    if other:
        lines.append("*In progress*")
        lines += [f"• {r.id} {badge(r)}`{r.role}` in `{r.environment}`: {r.status}" for r in other]
    lines.append("*Waiting for your decision*")
    lines += [
        f"• {r.id} {mention(r.requester_id)} asks "
        + (
            f"to extend {r.extends} (`{r.role}` in `{r.environment}`) by {duration(r)}"
            if r.extends
            else f"`{r.role}` in `{r.environment}` for {duration(r)}"
        )
        + f", because:\n{quote(r.reason, 500)}"
        for r in awaiting
    ] or ["• none"]
    return lines


def _asked(request: AccessRequest) -> str:
    if request.extends:
        return extension_line(request)
    return f"• {request.id} `{request.role}` in `{request.environment}` for {duration(request)}"


class RequestableRole(NamedTuple):
    """One role a person may request, with the rule that would decide it in each of its
    environments (None: no rule covers this person there)."""

    name: str
    description: str
    max_duration: timedelta
    rules: Sequence[tuple[str, Rule | None]]


def _approval(rule: Rule | None) -> str:
    if rule is None:
        return "no rule covers you here"
    if rule.auto_approve:
        return "approved automatically"
    text = f"{rule.required_approvals} approval(s) from " + ", ".join(
        escape(a) for a in rule.approver_groups
    )
    if rule.break_glass is not None:
        limit = format_duration(rule.break_glass.max_duration)
        text += f"; break-glass up to {limit} ({rule.break_glass.per_person_per_day} a day)"
    return text


def roles_text(roles: Sequence[RequestableRole]) -> str:
    if not roles:
        return "There is no role you may request."
    lines = ["*Roles you may request*"]
    for role in roles:
        description = role.description
        lines.append(f"*{role.name}*{': ' + escape(description) if description else ''}")
        limit = format_duration(role.max_duration)
        lines += [f"• `{env}`: up to {limit}, {_approval(rule)}" for env, rule in role.rules]
    return "\n".join(lines)
