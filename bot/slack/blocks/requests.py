"""The messages about one request: the DM each approver gets (re-rendered on every
change) and the news the requester is told, as pure functions of stored rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.durations import format_duration
from bot.names import BOT_ACTOR, Decision
from bot.notify import RequesterNews
from bot.slack.blocks import credentials, extensions
from bot.slack.blocks.common import (
    APPROVE,
    DENY,
    END_ACCESS,
    badge,
    duration,
    literal,
    mention,
    mentions,
    one_line,
    when,
)
from bot.slack.blocks.section import MarkdownSection
from bot.slack.mrkdwn import clip, inline, quote
from bot.storage.models import AccessRequest, RequestTarget, Status, TargetStatus, Vote

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
    Status.EXTENDED: ":hourglass: Extended",
}
# A failed grant whose rollback was refused: access is still there until the bot removes it.
_EXTENSION_FAILED = ":x: Extension failed; nothing was extended"
_LEFT_BEHIND = ":rotating_light: Grant failed, and taking back what it granted FAILED; retrying"


def _summary(request: AccessRequest) -> SectionBlock:
    return SectionBlock(
        fields=[
            MarkdownTextObject(text=f"*Requester*\n{mention(request.requester_id)}"),
            MarkdownTextObject(text=f"*Role*\n`{request.role}`"),
            MarkdownTextObject(text=f"*Environment*\n`{request.environment}`"),
            MarkdownTextObject(text=f"*Duration*\n{duration(request)}"),
        ]
    )


def _targets(targets: Sequence[RequestTarget], heading: str = "Will grant") -> SectionBlock:
    # Descriptions are the providers' own wording around names from config or a cloud.
    lines = "\n".join(f"• {one_line(t.description)}" for t in targets) or "• (nothing)"
    return MarkdownSection(clip(f"*{heading}*\n{lines}", 3000))


def _principal(request: AccessRequest, targets: Sequence[RequestTarget]) -> SectionBlock:
    """Who exactly receives the access: the email the request was made with (what the
    clouds are asked for), and each target's own name for that person once known."""
    lines = [f"*Access goes to*\n{literal(request.requester_email)}"]
    lines += [
        f"• {one_line(t.description)}: {literal(t.principal)}" for t in targets if t.principal
    ]
    return MarkdownSection(clip("\n".join(lines), 3000))


def _reason(request: AccessRequest) -> SectionBlock:
    # The requester's words come after the bot's fields, quoted: they cannot pass for one.
    body = quote(request.reason, 3000 - len("*Reason*\n"))
    return MarkdownSection(f"*Reason*\n{body}")


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
    if request.extends is not None and request.status == Status.FAILED:
        line = _EXTENSION_FAILED
    approvers = [mention(v.voter_id) for v in votes if v.decision == Decision.APPROVE]
    deniers = [v for v in votes if v.decision == Decision.DENY]
    parts = [f"*{line}*"]
    if request.auto_approve:
        parts.append("Approved automatically by rule.")
    if request.break_glass:
        parts.append("Break-glass: granted at once, with no approval.")
    if approvers:
        parts.append(f"Approved by {', '.join(approvers)}.")
    for vote in deniers:
        why = f":\n{quote(vote.reason, 1000)}" if vote.reason else "."
        parts.append(f"Denied by {mention(vote.voter_id)}{why}")
    if request.status in (Status.ACTIVE, Status.EXTENDED) and request.expires_at:
        parts.append(f"Until {when(request.expires_at)}.")
    if request.status == Status.REVOKED and request.ended_at:
        by = f" by {mention(request.ended_by)}" if request.ended_by not in (None, BOT_ACTOR) else ""
        why = inline(request.end_reason or "", 200)
        parts.append(f"Ended{by} at {when(request.ended_at)} ({why}).")
    # Errors are a cloud's or a receiver's words, not ours.
    if request.error and request.status in (Status.FAILED, Status.REVOKE_FAILED):
        parts.append(f"Error: {inline(request.error, 1000)}")
    for target in leftovers:
        error = inline(target.error or "", 500)
        parts.append(f"Still granted: {one_line(target.description)}: {error}")
    return clip("\n".join(parts), 3000)


def _decision_blocks(
    request: AccessRequest, votes: Sequence[Vote], *, buttons: bool = True
) -> list[Block]:
    """How far the approvals are, and the buttons (not for watchers): shown while the
    request is pending."""
    approvals = sum(1 for v in votes if v.decision == Decision.APPROVE)
    progress: list[Block] = [
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"Needs {request.required_approvals} approval(s); "
                    f"{approvals} so far. Approvers: " + mentions(request.approvers)
                )
            ]
        )
    ]
    if not buttons:
        return progress
    return [
        *progress,
        ActionsBlock(
            block_id="decision",
            elements=[
                ButtonElement(text="Approve", action_id=APPROVE, value=request.id, style="primary"),
                ButtonElement(text="Deny", action_id=DENY, value=request.id, style="danger"),
            ],
        ),
    ]


def approver_message(
    request: AccessRequest,
    targets: Sequence[RequestTarget],
    votes: Sequence[Vote],
    original: AccessRequest | None = None,
    *,
    heading: str | None = None,
    buttons: bool = True,
) -> tuple[str, list[dict[str, Any]]]:
    """The DM an approver gets; re-rendered on every change, buttons only while pending.
    For an extension (``original``: the access it extends), what it adds to that access.
    ``heading``: a line above the request (why this person got it); ``buttons`` False: a
    notify-only watcher's copy, which never has any."""
    if original is not None:
        text = (
            f"{request.id}: {mention(request.requester_id)} asks to extend `{request.role}` "
            f"in `{request.environment}` ({original.id}) by {duration(request)}"
        )
        blocks: list[Block] = [
            HeaderBlock(text=PlainTextObject(text=f"Extension request {request.id}")),
            _summary(request),
            *extensions.facts(request, original),
            _principal(request, targets),
            _reason(request),
            _targets(targets, "Keeps granted"),
        ]
    else:
        text = (
            f"{request.id}: {mention(request.requester_id)} requests `{request.role}` in "
            f"`{request.environment}` for {duration(request)}"
        )
        blocks = [
            HeaderBlock(text=PlainTextObject(text=f"Access request {request.id}")),
            _summary(request),
            _principal(request, targets),
            _reason(request),
            _targets(targets),
        ]
    if heading is not None:
        blocks.insert(1, ContextBlock(elements=[MarkdownTextObject(text=heading)]))
    if request.status == Status.PENDING:
        blocks += _decision_blocks(request, votes, buttons=buttons)
    else:
        blocks.append(MarkdownSection(_outcome(request, targets, votes)))
    return text, [b.to_dict() for b in blocks]


def break_glass_alert(
    request: AccessRequest, targets: Sequence[RequestTarget]
) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """What the rule's approvers and the security channel see when someone breaks the
    glass: a header and a danger bar, so it cannot pass for a routine request. Re-rendered
    on every change, with "End access now" while the access is active. Returns the
    text, the blocks and the attachment that draws the bar."""
    text = (
        f":rotating_light: BREAK-GLASS {request.id}: {mention(request.requester_id)} took "
        f"`{request.role}` in `{request.environment}` for {duration(request)} without approval"
    )
    incident = inline(request.incident or "", 200)
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=f":rotating_light: Break-glass {request.id}")),
        MarkdownSection(f"*{_BROKEN}*"),
        _summary(request),
        MarkdownSection(f"*Incident*\n{incident}"),
        _principal(request, targets),
        _reason(request),
        _targets(targets),
        MarkdownSection(_outcome(request, targets, [])),
    ]
    if request.status == Status.ACTIVE:
        blocks.append(_end_access_button(request))
    bar = {"color": "danger", "fallback": _BROKEN, "text": _NOBODY_APPROVED}
    return text, [b.to_dict() for b in blocks], [bar]


_BROKEN = "Access taken with break-glass: granted at once, with no approval"
_NOBODY_APPROVED = "No one approved this access. An approver of the rule may end it at once."

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
# The same news about an extension ({id}) of access ({access}).
_EXTENSION_TEXT = {
    RequesterNews.SUBMITTED: "Your request {id} to extend `{role}` in `{env}` ({access}) by "
    "{more} was sent to {approvers}.",
    RequesterNews.EXTENDED: "Extended: `{role}` in `{env}` ({access}) now lasts until {until} "
    "({id}).",
    RequesterNews.DENIED: "Your request {id} to extend `{role}` in `{env}` ({access}) was "
    "denied; the access ends as planned, at {ends}.",
    RequesterNews.FAILED: "Extending `{role}` in `{env}` ({access}) failed ({id}); nothing "
    "was extended.",
    RequesterNews.EXPIRED: "Your request {id} to extend `{role}` in `{env}` ({access}) "
    "expired without a decision; the access ends as planned.",
    RequesterNews.CANCELLED: "You cancelled request {id} to extend {access}.",
}
# The news that says how the request ended, and with which error.
_OUTCOMES = (
    RequesterNews.DENIED,
    RequesterNews.FAILED,
    RequesterNews.ROLLED_BACK,
    RequesterNews.REVOKE_FAILED,
    RequesterNews.ENDED,
)


def _extension_news(request: AccessRequest, original: AccessRequest, news: RequesterNews) -> str:
    approvers = mentions(request.approvers) or "nobody"
    if news == RequesterNews.SUBMITTED and request.auto_approve:
        approvers = "no one: its rule extends it without approval, extending now"
    ends = when(original.expires_at) if original.expires_at else "its end"
    template = _EXTENSION_TEXT[news] if news in _EXTENSION_TEXT else _NEWS_TEXT[news]
    maximum = extensions.past_maximum(request, original)
    if news == RequesterNews.SUBMITTED and maximum is not None:
        template += (
            " It takes the total past the role's maximum ({maximum}), which only its "
            "approvers may allow."
        )
    return template.format(
        maximum=format_duration(maximum) if maximum is not None else "",
        id=request.id,
        access=original.id,
        role=request.role,
        env=request.environment,
        more=duration(request),
        approvers=approvers,
        until=when(request.expires_at) if request.expires_at else ends,
        ends=ends,
    )


def _news_text(
    request: AccessRequest,
    targets: Sequence[RequestTarget],
    news: RequesterNews,
    original: AccessRequest | None = None,
) -> str:
    if original is not None:
        return _extension_news(request, original, news)
    approvers = mentions(request.approvers) or "nobody"
    if news == RequesterNews.SUBMITTED and request.auto_approve:
        approvers = "no one: an auto-approve rule covers it, granting now"
    template = _NEWS_TEXT[news]
    if news == RequesterNews.SUBMITTED and request.break_glass:
        told = [mentions(request.approvers)] if request.approvers else []
        approvers = " and ".join([*told, "the security channel"])
        template = (
            "You broke the glass for `{role}` in `{env}` ({id}); granting now, with no "
            "approval. Told at once: {approvers}."
        )
    if news == RequesterNews.FAILED and left_behind(request, targets):
        template = (
            "Granting `{role}` in `{env}` failed ({id}), and taking back what was granted "
            "failed too; the bot keeps trying and the audit channel has been told."
        )
    return badge(request) + template.format(
        id=request.id,
        role=request.role,
        env=request.environment,
        approvers=approvers,
        until=when(request.expires_at) if request.expires_at else "?",
    )


def _end_access_button(request: AccessRequest) -> ActionsBlock:
    return ActionsBlock(
        block_id="access",
        elements=[
            ButtonElement(
                text="End access now", action_id=END_ACCESS, value=request.id, style="danger"
            )
        ],
    )


def requester_message(
    request: AccessRequest,
    targets: Sequence[RequestTarget],
    votes: Sequence[Vote],
    news: RequesterNews,
    original: AccessRequest | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """What the requester is told. ``original``: the request is an extension of it."""
    text = _news_text(request, targets, news, original)
    blocks: list[Block] = [MarkdownSection(text)]
    if news in (RequesterNews.SUBMITTED, RequesterNews.GRANTED) and original is None:
        blocks.append(_principal(request, targets))
    if news in _OUTCOMES:
        blocks.append(MarkdownSection(_outcome(request, targets, votes)))
    if news == RequesterNews.GRANTED:
        blocks.append(_targets(targets))
        blocks.append(extensions.access_buttons(request))
        if credentials.offers_credentials(targets):
            blocks.append(credentials.credentials_button(request))
    extended = news == RequesterNews.EXTENDED and original is not None
    if extended and original is not None and original.status == Status.ACTIVE:
        blocks.append(extensions.access_buttons(original))
    return text, [b.to_dict() for b in blocks]
