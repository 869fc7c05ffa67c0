"""The block nearly every message is made of: a section of mrkdwn text.

``MarkdownSection(text)`` is ``SectionBlock(text=MarkdownTextObject(text=text))`` and
renders as that does, only faster. slack_sdk renders a block by reflection (it looks its
validators and attributes up by name on every call): 19 µs for this one against about
1 µs written out, and a backlog of 5,000 revocations renders 10,000 of them inside the
transactions that record it. What slack_sdk refuses (text over 3,000 characters) or
renders otherwise (no text, or anything set besides the text) is left to slack_sdk.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import MarkdownTextObject, SectionBlock

# slack_sdk's limit on a section's text.
_TEXT_MAX = 3000


class MarkdownSection(SectionBlock):
    """A section showing ``text`` as mrkdwn, and nothing else."""

    def __init__(self, text: str) -> None:
        super().__init__(text=MarkdownTextObject(text=text))

    def to_dict(self, *args: Any) -> dict[str, Any]:
        shown = self.text
        if (
            isinstance(shown, MarkdownTextObject)
            and shown.text
            and len(shown.text) <= _TEXT_MAX
            and shown.verbatim is None
            and shown.emoji is None
            and self.block_id is None
            and self.accessory is None
            and not self.fields
            and getattr(self, "expand", None) is None
        ):
            return {"text": {"text": shown.text, "type": "mrkdwn"}, "type": "section"}
        return super().to_dict(*args)
