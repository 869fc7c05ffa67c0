"""The admins' App Home section of the last seven days' figures (``jit-bot stats`` in
small): how many requests, how many approved by rule or left to expire, how fast each
role and environment is decided, who carries the approvals and who may be clicking
without reading."""

from __future__ import annotations

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.config import USER_ID
from bot.slack.blocks.common import literal, mention
from bot.slack.blocks.section import MarkdownSection
from bot.stats.figures import ApproverLoad, Figures
from bot.stats.words import percent, span

# Rows per part: the Home holds 100 blocks, and this section takes five.
ROWS = 5


def week_figures(found: Figures) -> list[Block]:
    """The section: a header, the counts, decision times, approvers, and where to look."""
    glass = found.break_glass
    counts = (
        f"*{found.requests}* requests · *{percent(found.auto_approved_share)}* "
        f"approved by rule · *{found.expired_undecided}* expired undecided · break-glass "
        f"*{glass.uses}* used, *{glass.reviewed}* reviewed"
    )
    busiest = sorted(found.decision_times, key=lambda d: -d.decided)[:ROWS]
    times = [
        f"• `{d.role}` in `{d.environment}`: p50 {span(d.p50_seconds)}, "
        f"p90 {span(d.p90_seconds)} ({d.decided} decided)"
        for d in busiest
    ]
    people = [_approver(a) for a in found.approvers[:ROWS]]
    return [
        HeaderBlock(text=PlainTextObject(text="Last 7 days")),
        _text(counts),
        _text("*Time to decision*\n" + ("\n".join(times) or "• nothing decided")),
        _text("*Approvers*\n" + ("\n".join(people) or "• no decisions")),
        ContextBlock(
            elements=[
                MarkdownTextObject(text="Every figure, per approver and per role: `jit-bot stats`.")
            ]
        ),
    ]


def _approver(load: ApproverLoad) -> str:
    who = mention(load.approver) if USER_ID.match(load.approver) else literal(load.approver)
    line = (
        f"• {who}: {load.decisions} decisions ({percent(load.share_of_decisions)}), "
        f"approves {percent(load.approval_rate)}, median {span(load.median_seconds_to_click)} "
        "from DM to click"
    )
    if load.possible_rubber_stamping:
        line += " :warning: under 10s: possibly not reading"
    return line


def _text(text: str) -> SectionBlock:
    return MarkdownSection(text)
