"""The post-incident review of a break-glass use: the DM each reviewer gets (and its
daily reminder), the note modal, the security channel's alert when a use was not
justified, and the short answers. Pure functions of stored rows."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.names import Verdict
from bot.operations.reviewing import NOTE_MAX
from bot.slack.blocks.common import (
    REVIEW_JUSTIFIED,
    REVIEW_MODAL,
    REVIEW_NOT_JUSTIFIED,
    duration,
    mention,
    when,
)
from bot.slack.blocks.section import MarkdownSection
from bot.slack.mrkdwn import clip, inline, quote
from bot.storage.models import AccessRequest, BreakGlassReview

REVIEW_TITLE = "Review break-glass"
_SAID = {Verdict.JUSTIFIED: "justified", Verdict.NOT_JUSTIFIED: "NOT justified"}
_ICON = {Verdict.JUSTIFIED: ":white_check_mark:", Verdict.NOT_JUSTIFIED: ":x:"}


def _use(request: AccessRequest) -> SectionBlock:
    incident = inline(request.incident or "", 200)
    text = (
        f"{mention(request.requester_id)} broke the glass for `{request.role}` in "
        f"`{request.environment}` for {duration(request)}, at {when(request.created_at)}, for "
        f"incident {incident}.\n*Reason*\n{quote(request.reason, 1500)}"
    )
    return MarkdownSection(clip(text, 3000))


def outcome(review: BreakGlassReview) -> str:
    """How the use was judged, by whom and when, with the reviewer's note quoted."""
    if review.verdict is None or review.reviewer_id is None or review.reviewed_at is None:
        return ":hourglass_flowing_sand: Not reviewed yet."
    verdict = Verdict(review.verdict)
    line = (
        f"{_ICON[verdict]} Reviewed: *{_SAID[verdict]}*, by {mention(review.reviewer_id)} "
        f"at {when(review.reviewed_at)}"
    )
    return line + (f":\n{quote(review.note, 1000)}" if review.note else ".")


def review_message(
    request: AccessRequest, review: BreakGlassReview | None, *, reminder: bool
) -> tuple[str, list[dict[str, Any]]]:
    """The DM a reviewer gets as the glass is broken, and daily while nobody reviewed it:
    the use and two buttons, or, once reviewed, how it was judged."""
    again = "Reminder: " if reminder else ""
    text = (
        f"{again}review break-glass {request.id}: {mention(request.requester_id)} broke the "
        f"glass for `{request.role}` in `{request.environment}`. Was it justified?"
    )
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=f"{again}Review break-glass {request.id}")),
        _use(request),
    ]
    if review is None or review.verdict is None:
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(
                    text="Once the incident is over, was breaking the glass justified? The "
                    "first review decides; the requester cannot review their own."
                )
            )
        )
        blocks.append(
            ActionsBlock(
                block_id="review",
                elements=[
                    ButtonElement(text="Justified", action_id=REVIEW_JUSTIFIED, value=request.id),
                    ButtonElement(
                        text="Not justified",
                        action_id=REVIEW_NOT_JUSTIFIED,
                        value=request.id,
                        style="danger",
                    ),
                ],
            )
        )
    else:
        blocks.append(MarkdownSection(outcome(review)))
    return text, [b.to_dict() for b in blocks]


def review_modal(request_id: str, verdict: Verdict) -> dict[str, Any]:
    """The optional note, asked before a review is recorded."""
    view = View(
        type="modal",
        callback_id=REVIEW_MODAL,
        private_metadata=f"{verdict}:{request_id}",
        title=PlainTextObject(text=REVIEW_TITLE),
        submit=PlainTextObject(
            text="Justified" if verdict == Verdict.JUSTIFIED else "Not justified"
        ),
        close=PlainTextObject(text="Back"),
        blocks=[
            SectionBlock(
                text=MarkdownTextObject(
                    text=f"Review break-glass *{request_id}* as *{_SAID[verdict]}*?"
                )
            ),
            InputBlock(
                block_id="note",
                label="Note (optional, shown to the other reviewers and in the audit trail)",
                optional=True,
                element=PlainTextInputElement(
                    action_id="note", multiline=True, max_length=NOTE_MAX
                ),
            ),
        ],
    )
    return view.to_dict()


def not_justified_alert(
    request: AccessRequest, review: BreakGlassReview
) -> tuple[str, list[dict[str, Any]]]:
    """What the security channel is told when a break-glass use was found not justified."""
    text = (
        f":x: Break-glass {request.id} was NOT justified: {mention(request.requester_id)} "
        f"broke the glass for `{request.role}` in `{request.environment}`"
    )
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=f":x: Break-glass {request.id} not justified")),
        _use(request),
        MarkdownSection(outcome(review)),
    ]
    return text, [b.to_dict() for b in blocks]


def reviewed(review: BreakGlassReview) -> str:
    said = _SAID[Verdict(review.verdict or Verdict.JUSTIFIED)]
    return f"You reviewed break-glass {review.request_id} as {said}."


def already_reviewed(review: BreakGlassReview) -> str:
    """The answer to a later click: the first review decided."""
    return f":warning: Break-glass {review.request_id} was already reviewed. {outcome(review)}"
