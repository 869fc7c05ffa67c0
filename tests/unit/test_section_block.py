"""``MarkdownSection`` renders exactly as ``SectionBlock(text=MarkdownTextObject(…))``
does, refuses what slack_sdk refuses, and leaves to slack_sdk whatever it does not
write out itself."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import MarkdownTextObject, SectionBlock
from slack_sdk.models.views import View

from bot.slack.blocks.section import MarkdownSection

TEXTS = [
    "plain",
    "*bold* _it_ `code` <@U123> <!date^1700000000^{date_short_pretty}|x>",
    "line one\nline two\n> quoted",
    "ünïcödé :rotating_light: 日本語",
    "&lt;escaped&gt; & <https://example.com|link>",
    " ",
    "x" * 3000,
]


def _sdk(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=text))


@pytest.mark.parametrize("text", TEXTS)
def test_renders_as_slack_sdk_renders_the_same_section(text: str) -> None:
    assert MarkdownSection(text).to_dict() == _sdk(text).to_dict()


@pytest.mark.parametrize("text", ["", "x" * 3001])
def test_what_slack_sdk_refuses_or_renders_otherwise_is_left_to_it(text: str) -> None:
    if text:
        with pytest.raises(SlackObjectFormationError):
            MarkdownSection(text).to_dict()
    else:
        assert MarkdownSection(text).to_dict() == _sdk(text).to_dict()


def test_anything_set_besides_the_text_is_rendered_by_slack_sdk() -> None:
    ours, theirs = MarkdownSection("hi"), _sdk("hi")
    ours.block_id = theirs.block_id = "summary"
    assert ours.to_dict() == theirs.to_dict() and "block_id" in ours.to_dict()


def test_inside_a_view_it_renders_as_slack_sdk_does() -> None:
    def view(block: SectionBlock) -> dict[str, object]:
        return View(type="modal", title="t", blocks=[block]).to_dict()

    assert view(MarkdownSection("*Deny?*")) == view(_sdk("*Deny?*"))
