"""The audit channel's posts: one line per audit event, several lines to a post when the
events come faster than the posts go out.

Slack takes about one post a second in a channel, and a request's lifecycle writes
seven events or so. So the notifier queues each event's line as a marker (``METHOD``)
under one key for the whole channel (``KEY``), in the transaction that records the
event, and the outbox builds the post when it sends it (``build``): the line due and the
lines queued after it, up to ``MOST_LINES`` lines and ``MOST_CHARS`` characters. A
quiet bot posts each change as it happens (the events of one transaction, an approval
and the grant it starts, share a post); a busy one posts what piled up while the last
post was on its way, in order.

Each line is a section block of its own, marked by its ``block_id``, so ``audit verify
--against-slack`` reads every event's seal back from its own block (``lines_of``), and
the text a person typed, quoted in one line, can never pass for the end of another.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import MarkdownTextObject, SectionBlock

from bot.slack.outbox import Built

#: The markers' method: the outbox builds a chat.postMessage from them (``build``).
METHOD = "audit.post"
#: One key for the channel's posts: in the order the events were queued, one at a time.
KEY = "audit"
#: Slack allows 50 blocks in a message; the text (the notification) stays short.
MOST_LINES = 40
MOST_CHARS = 12_000
#: The block_id of a line's section: this prefix, then its place in the post.
LINE_BLOCK = "audit-line-"


def marker(channel: str, line: str) -> dict[str, Any]:
    """What the notifier queues for one event's line (``blocks.audit_line``)."""
    return {"channel": channel, "text": line}


def build(markers: Sequence[dict[str, Any]]) -> Built:
    """One post of the first markers' lines, in order: as many as fit, at least one. A
    marker for another channel (the setting changed) starts a post of its own."""
    channel = str(markers[0]["channel"])
    lines: list[str] = []
    size = 0
    for queued in markers[:MOST_LINES]:
        line = str(queued["text"])
        if lines and (queued["channel"] != channel or size + len(line) > MOST_CHARS):
            break
        lines.append(line)
        size += len(line) + 1
    sections = [
        SectionBlock(
            block_id=f"{LINE_BLOCK}{place}",
            text=MarkdownTextObject(text=line, verbatim=True),
        ).to_dict()
        for place, line in enumerate(lines)
    ]
    post = {"channel": channel, "text": "\n".join(lines), "blocks": sections}
    return Built("chat.postMessage", post, len(lines))


def lines_of(message: dict[str, Any]) -> list[str]:
    """The event lines of one of the bot's posts in the channel, each ending with its seal:
    the text of each line's section; for any other post its text, as the bot wrote one
    event's line before it put lines in blocks (Slack may show such a post with a block
    of its own making, and a break-glass alert's text ends with the bot's words)."""
    sections = [
        block.get("text") or {} for block in message.get("blocks") or [] if carries_a_line(block)
    ]
    if sections:
        return [str(text.get("text") or "") for text in sections]
    return [str(message.get("text") or "")]


def carries_a_line(block: dict[str, Any]) -> bool:
    """Whether a block of a post is one of the lines ``build`` puts in it."""
    return str(block.get("block_id") or "").startswith(LINE_BLOCK)
