"""Every Slack message and modal the bot shows, as pure functions of stored values.

Built with slack_sdk.models so Slack's limits (text lengths, element counts) are checked
by the library rather than discovered in production.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.durations import format_duration
from bot.notify import RequesterNews
from bot.slack.mrkdwn import clip, escape, inline, quote
from bot.storage.models import (
    AccessRequest,
    AuditEvent,
    RequestTarget,
    Status,
    TargetStatus,
    Vote,
)

APPROVE = "approve"
DENY = "deny"
END_ACCESS = "end_access"
REQUEST_MODAL = "jit_request"
DENY_MODAL = "jit_deny"
ROLE_SELECT = "role"

_STATUS_LINE = {
    Status.PENDING: ":hourglass_flowing_sand: Waiting for approval",
    Status.APPROVED: ":white_check_mark: Approved; granting access",
    Status.GRANTING: ":gear: Granting access",
    Status.ACTIVE: ":unlock: Access active",
    Status.REVOKING: ":gear: Removing access",
    Status.REVOKE_FAILED: ":rotating_light: Removing access FAILED; retrying",
    Status.REVOKED: ":lock: Access ended",
    Status.DENIED: ":no_entry: Denied",
    Status.EXPIRED: ":zzz: Expired without a decision",
    Status.CANCELLED: ":leftwards_arrow_with_hook: Cancelled by the requester",
    Status.FAILED: ":x: Grant failed; nothing is left granted",
}
# A failed grant whose rollback was refused: access is still there until the bot removes it.
_LEFT_BEHIND = ":rotating_light: Grant failed, and taking back what it granted FAILED; retrying"


def mention(user_id: str) -> str:
    return f"<@{user_id}>"


def when(moment: datetime) -> str:
    """A time every reader sees in their own time zone (ISO UTC as the fallback)."""
    iso = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{iso}>"


def _duration(request: AccessRequest) -> str:
    return format_duration(timedelta(seconds=request.duration_seconds))


def _summary(request: AccessRequest) -> SectionBlock:
    return SectionBlock(
        fields=[
            MarkdownTextObject(text=f"*Requester*\n{mention(request.requester_id)}"),
            MarkdownTextObject(text=f"*Role*\n`{request.role}`"),
            MarkdownTextObject(text=f"*Environment*\n`{request.environment}`"),
            MarkdownTextObject(text=f"*Duration*\n{_duration(request)}"),
        ]
    )


def _targets(targets: Sequence[RequestTarget]) -> SectionBlock:
    # Descriptions are the providers' own wording around names from config or a cloud.
    lines = "\n".join(f"• {_one_line(t.description)}" for t in targets) or "• (nothing)"
    return SectionBlock(text=MarkdownTextObject(text=clip(f"*Will grant*\n{lines}", 3000)))


def _one_line(text: str) -> str:
    return escape(" ".join(text.splitlines()))


def _literal(text: str) -> str:
    """Text from Slack profiles or clouds, shown as code and never as markup."""
    return "`" + escape(text).replace("`", "'") + "`"


def _principal(request: AccessRequest, targets: Sequence[RequestTarget]) -> SectionBlock:
    """Who exactly receives the access: the email the request was made with (what the
    clouds are asked for), and each target's own name for that person once known."""
    lines = [f"*Access goes to*\n{_literal(request.requester_email)}"]
    lines += [
        f"• {_one_line(t.description)}: {_literal(t.principal)}" for t in targets if t.principal
    ]
    return SectionBlock(text=MarkdownTextObject(text=clip("\n".join(lines), 3000)))


def mentions(users: Sequence[str], limit: int = 2500) -> str:
    """Mentions of ``users``, as many as fit in ``limit`` characters (Slack refuses a
    text over 3,000, and the line around them needs room too), then how many more there
    are: a request to a large approver group is still asked and told."""
    shown: list[str] = []
    length = 0
    for user in users:
        more = mention(user)
        if length + len(more) + 2 > limit:
            return ", ".join(shown) + f" and {len(users) - len(shown)} more"
        shown.append(more)
        length += len(more) + 2
    return ", ".join(shown)


def _reason(request: AccessRequest) -> SectionBlock:
    # The requester's words come after the bot's fields, quoted: they cannot pass for one.
    body = quote(request.reason, 3000 - len("*Reason*\n"))
    return SectionBlock(text=MarkdownTextObject(text=f"*Reason*\n{body}"))


def left_behind(request: AccessRequest, targets: Sequence[RequestTarget]) -> list[RequestTarget]:
    """What a failed grant could not take back (the bot keeps trying)."""
    if request.status != Status.FAILED:
        return []
    return [t for t in targets if t.status == TargetStatus.REVOKE_FAILED]


def _outcome(
    request: AccessRequest, targets: Sequence[RequestTarget], votes: Sequence[Vote]
) -> str:
    leftovers = left_behind(request, targets)
    line = _LEFT_BEHIND if leftovers else _STATUS_LINE[Status(request.status)]
    approvers = [mention(v.voter_id) for v in votes if v.decision == "approve"]
    deniers = [v for v in votes if v.decision == "deny"]
    parts = [f"*{line}*"]
    if request.auto_approve:
        parts.append("Approved automatically by rule.")
    if approvers:
        parts.append(f"Approved by {', '.join(approvers)}.")
    for vote in deniers:
        why = f":\n{quote(vote.reason, 1000)}" if vote.reason else "."
        parts.append(f"Denied by {mention(vote.voter_id)}{why}")
    if request.status == Status.ACTIVE and request.expires_at:
        parts.append(f"Until {when(request.expires_at)}.")
    if request.status == Status.REVOKED and request.ended_at:
        by = f" by {mention(request.ended_by)}" if request.ended_by not in (None, "jit-bot") else ""
        why = inline(request.end_reason or "", 200)
        parts.append(f"Ended{by} at {when(request.ended_at)} ({why}).")
    # Errors are a cloud's or a receiver's words, not ours.
    if request.error and request.status in (Status.FAILED, Status.REVOKE_FAILED):
        parts.append(f"Error: {inline(request.error, 1000)}")
    for target in leftovers:
        error = inline(target.error or "", 500)
        parts.append(f"Still granted: {_one_line(target.description)}: {error}")
    return clip("\n".join(parts), 3000)


def approver_message(
    request: AccessRequest, targets: Sequence[RequestTarget], votes: Sequence[Vote]
) -> tuple[str, list[dict[str, Any]]]:
    """The DM an approver gets; re-rendered on every change, buttons only while pending."""
    text = (
        f"{request.id}: {mention(request.requester_id)} requests `{request.role}` in "
        f"`{request.environment}` for {_duration(request)}"
    )
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=f"Access request {request.id}")),
        _summary(request),
        _principal(request, targets),
        _reason(request),
        _targets(targets),
    ]
    if request.status == Status.PENDING:
        approvals = sum(1 for v in votes if v.decision == "approve")
        blocks.append(
            ContextBlock(
                elements=[
                    MarkdownTextObject(
                        text=f"Needs {request.required_approvals} approval(s); "
                        f"{approvals} so far. Approvers: " + mentions(request.approvers)
                    )
                ]
            )
        )
        blocks.append(
            ActionsBlock(
                block_id="decision",
                elements=[
                    ButtonElement(
                        text="Approve", action_id=APPROVE, value=request.id, style="primary"
                    ),
                    ButtonElement(text="Deny", action_id=DENY, value=request.id, style="danger"),
                ],
            )
        )
    else:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=_outcome(request, targets, votes))))
    return text, [b.to_dict() for b in blocks]


_NEWS_TEXT = {
    RequesterNews.SUBMITTED: "Your request {id} for `{role}` in `{env}` was sent to {approvers}.",
    RequesterNews.GRANTED: "Access granted: `{role}` in `{env}` until {until} ({id}).",
    RequesterNews.DENIED: "Your request {id} for `{role}` in `{env}` was denied.",
    RequesterNews.FAILED: "Granting `{role}` in `{env}` failed ({id}); nothing is left granted.",
    RequesterNews.ROLLED_BACK: "What the failed grant of `{role}` in `{env}` left behind has "
    "been removed ({id}); nothing is left granted.",
    RequesterNews.EXPIRED: "Your request {id} for `{role}` in `{env}` expired without a decision.",
    RequesterNews.CANCELLED: "You cancelled request {id}.",
    RequesterNews.ENDED: "Your access `{role}` in `{env}` has ended ({id}).",
    RequesterNews.REVOKE_FAILED: "Removing `{role}` in `{env}` ({id}) failed; the bot keeps "
    "retrying and the audit channel has been told.",
}


def requester_message(
    request: AccessRequest,
    targets: Sequence[RequestTarget],
    votes: Sequence[Vote],
    news: RequesterNews,
) -> tuple[str, list[dict[str, Any]]]:
    approvers = mentions(request.approvers) or "nobody"
    if news == RequesterNews.SUBMITTED and request.auto_approve:
        approvers = "no one: an auto-approve rule covers it, granting now"
    template = _NEWS_TEXT[news]
    if news == RequesterNews.FAILED and left_behind(request, targets):
        template = (
            "Granting `{role}` in `{env}` failed ({id}), and taking back what was granted "
            "failed too; the bot keeps trying and the audit channel has been told."
        )
    text = template.format(
        id=request.id,
        role=request.role,
        env=request.environment,
        approvers=approvers,
        until=when(request.expires_at) if request.expires_at else "?",
    )
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=text))]
    if news in (RequesterNews.SUBMITTED, RequesterNews.GRANTED):
        blocks.append(_principal(request, targets))
    outcomes = (
        RequesterNews.DENIED,
        RequesterNews.FAILED,
        RequesterNews.ROLLED_BACK,
        RequesterNews.REVOKE_FAILED,
        RequesterNews.ENDED,
    )
    if news in outcomes:  # these say how it ended, and with which error
        blocks.append(SectionBlock(text=MarkdownTextObject(text=_outcome(request, targets, votes))))
    if news == RequesterNews.GRANTED:
        blocks.append(_targets(targets))
        blocks.append(
            ActionsBlock(
                block_id="access",
                elements=[
                    ButtonElement(
                        text="End access now",
                        action_id=END_ACCESS,
                        value=request.id,
                        style="danger",
                    )
                ],
            )
        )
    return text, [b.to_dict() for b in blocks]


# Details a person typed: quoted below the event's line rather than written into it.
_TYPED_DETAILS = ("reason", "note")


def audit_line(event: AuditEvent) -> str:
    details = dict(event.details)
    role, env = details.pop("role", None), details.pop("environment", None)
    requester = details.pop("requester", None)
    typed = [str(v) for v in (details.pop(k, None) for k in _TYPED_DETAILS) if v]
    actor = event.actor if event.actor == "jit-bot" else mention(event.actor)
    subject = f"`{event.request_id}` " if event.request_id else ""
    head = f"{subject}*{event.action}* by {actor}"
    if role:
        head += f" · `{role}` in `{env}` for {mention(requester) if requester else '?'}"
    rest = ", ".join(f"{k}={inline(str(v))}" for k, v in details.items() if v not in (None, "", []))
    # The event's id and full hash make the channel a witness of the chain, which
    # `jit-bot audit verify --against-slack` reads back (bot/slack/audit_channel.py).
    seal = f" · #{event.id} `{event.hash}`"
    line = f"{head}{' · ' + rest if rest else ''}"
    if not typed:
        return clip(line, 3000 - len(seal)) + seal
    # What a person typed sits between the bot's first line and the seal, every line of
    # it quoted: it can neither extend the first line nor end the post with a seal.
    words = "\n".join(quote(t, 1000) for t in typed)
    seal = "\n" + seal.removeprefix(" · ")
    return clip(line, 3000 - len(seal) - len(words) - 1) + "\n" + words + seal


REQUEST_TITLE = "Request access"
DENY_TITLE = "Deny request"


def loading_modal(title: str) -> dict[str, Any]:
    """What a modal shows from the moment it opens until its lookups are done: Slack gives
    a trigger_id 3 s, lookups may take longer. No submit: there is nothing to send yet."""
    return View(
        type="modal",
        title=PlainTextObject(text=title),
        close=PlainTextObject(text="Close"),
        blocks=[SectionBlock(text=MarkdownTextObject(text=":hourglass_flowing_sand: Loading…"))],
    ).to_dict()


def notice_modal(title: str, text: str) -> dict[str, Any]:
    """A modal that only says something (`text` is mrkdwn, escaped by the caller): why the
    form it was opened for cannot be shown, and what to do."""
    return View(
        type="modal",
        title=PlainTextObject(text=title),
        close=PlainTextObject(text="Close"),
        blocks=[SectionBlock(text=MarkdownTextObject(text=clip(text, 3000)))],
    ).to_dict()


_SELECT_OPTIONS_MAX = 100  # Slack's limit for a static select


def request_modal(
    roles: Sequence[tuple[str, str]],
    role: str,
    environments: Sequence[str],
    default_duration: timedelta,
    max_duration: timedelta,
) -> dict[str, Any]:
    """The /jit request modal. Choosing a role re-renders it with that role's choices.

    A select holds at most 100 options in Slack: past that the chosen role and the first
    others are offered, and the hint says how to ask for the rest."""
    shown = [r for r in roles if r[0] == role] + [r for r in roles if r[0] != role]
    shown = sorted(shown[:_SELECT_OPTIONS_MAX], key=roles.index)
    role_options = [
        Option(value=name, text=f"{name}: {description}"[:75] if description else name)
        for name, description in shown
    ]
    selected = next(o for o in role_options if o.value == role)
    env_options = [Option(value=env, text=env) for env in environments[:_SELECT_OPTIONS_MAX]]
    more_roles = (
        f"{len(roles) - len(shown)} more roles are not listed here. /jit roles lists them "
        "all; /jit request <role> <environment> <duration> <reason> asks for any of them."
        if len(roles) > len(shown)
        else None
    )
    view = View(
        type="modal",
        callback_id=REQUEST_MODAL,
        title=PlainTextObject(text=REQUEST_TITLE),
        submit=PlainTextObject(text="Request"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            InputBlock(
                block_id="role",
                label="Role",
                hint=more_roles,
                dispatch_action=True,
                element=StaticSelectElement(
                    action_id=ROLE_SELECT, options=role_options, initial_option=selected
                ),
            ),
            InputBlock(
                block_id="environment",
                label="Environment",
                element=StaticSelectElement(
                    action_id="environment", options=env_options, initial_option=env_options[0]
                ),
            ),
            InputBlock(
                block_id="duration",
                label="Duration",
                hint=f"For example 30m, 2h or 1h30m; at most {format_duration(max_duration)}.",
                element=PlainTextInputElement(
                    action_id="duration", initial_value=format_duration(default_duration)
                ),
            ),
            InputBlock(
                block_id="reason",
                label="Reason",
                hint="A ticket or incident id helps the approvers.",
                element=PlainTextInputElement(action_id="reason", multiline=True, max_length=1000),
            ),
        ],
    )
    return view.to_dict()


def deny_modal(request_id: str) -> dict[str, Any]:
    view = View(
        type="modal",
        callback_id=DENY_MODAL,
        private_metadata=request_id,
        title=PlainTextObject(text=DENY_TITLE),
        submit=PlainTextObject(text="Deny"),
        close=PlainTextObject(text="Back"),
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=f"Deny request *{request_id}*?")),
            InputBlock(
                block_id="reason",
                label="Reason (optional, shown to the requester)",
                optional=True,
                element=PlainTextInputElement(action_id="reason", multiline=True, max_length=500),
            ),
        ],
    )
    return view.to_dict()


# Placeholders are escaped: to Slack a bare <role> is markup, not text.
HELP = """*jit-bot*: just-in-time access, approved by people you trust.
• `/jit request` opens a form.
• `/jit request &lt;role&gt; &lt;environment&gt; &lt;duration&gt; &lt;reason…&gt;` asks \
in one line, e.g. `/jit request prod-support prod 2h INC-123 checkout errors`.
• `/jit list` shows your requests, your active access and what waits for your decision.
• `/jit roles` shows what you may request, where, for how long and who approves it.
• `/jit revoke &lt;request-id&gt;` ends access now (requester or approver).
• `/jit cancel &lt;request-id&gt;` withdraws a pending request.
• `/jit sync` re-reads users, groups and cloud accounts now (approvers and admins).
• `/jit help` shows this."""


def list_text(
    mine: Sequence[AccessRequest], awaiting: Sequence[AccessRequest], now: datetime
) -> str:
    pending = [r for r in mine if r.status == Status.PENDING]
    active = [r for r in mine if r.status == Status.ACTIVE]
    other = [r for r in mine if r not in pending and r not in active]
    lines = ["*Your pending requests*"]
    lines += [
        f"• {r.id} `{r.role}` in `{r.environment}` for {_duration(r)}, waiting for "
        + mentions(r.approvers, limit=400)
        for r in pending
    ] or ["• none"]
    lines.append("*Your active access*")
    for r in active:
        assert r.expires_at is not None
        left = format_duration(max(r.expires_at - now, timedelta(seconds=0)))
        lines.append(
            f"• {r.id} `{r.role}` in `{r.environment}`, {left} left "
            f"(until {when(r.expires_at)}) · `/jit revoke {r.id}` to end it"
        )
    if not active:
        lines.append("• none")
    if other:
        lines.append("*In progress*")
        lines += [f"• {r.id} `{r.role}` in `{r.environment}`: {r.status}" for r in other]
    lines.append("*Waiting for your decision*")
    lines += [
        f"• {r.id} {mention(r.requester_id)} asks `{r.role}` in `{r.environment}` "
        f"for {_duration(r)}, because:\n{quote(r.reason, 500)}"
        for r in awaiting
    ] or ["• none"]
    return "\n".join(lines)
