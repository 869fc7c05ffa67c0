"""Text the bot did not write, made safe to show in Slack's mrkdwn.

Slack reads ``<…>`` as mentions, links and dates, and ``*``, ``_``, ``~`` and backticks
as formatting. A reason, a deny reason or a cloud's error message shown as it came would
let its author ping a channel, disguise a link, or draw lines that look like the bot's
own ("*approved* by …", a seal in the audit channel). Everything not written by the bot
passes through here on its way to Slack:

- ``escape``: Slack's own escaping of ``&``, ``<`` and ``>``; enough for names the bot
  shows inside its own formatting (target descriptions, config entries).
- ``inline``: foreign free text on one of the bot's lines (errors, audit details):
  escaped, defused, and kept on that one line.
- ``quote``: what a person typed (reasons, deny reasons, notes): escaped, defused, and
  set in a block quote where every line starts with ``>``, so no line of it can pass
  for one of the bot's.

"Defused" means formatting characters shown as lookalikes, bare @channel/@here/@everyone
unlinkable, direction overrides dropped (``defuse``, for text escaped later as a whole).
"""

from __future__ import annotations

import re

# Lookalikes that read the same but that Slack does not take for formatting: mrkdwn has
# no backslash escape, so this is the only way to show these characters literally.
_LOOKALIKE = {"*": "\u2217", "~": "\u223c", "`": "\u02cb"}
# An underscore inside a word (snake_case, :white_check_mark:) never formats; at a word's
# edge it may open or close italics.
_EDGE_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
_LOW_LINE = "\u02cd"
# Bare @channel/@here/@everyone notify everyone where a client links names; a word
# joiner after the @ keeps the word readable and unlinkable.
_SPECIAL_MENTION = re.compile(r"@(?=(?:channel|here|everyone)\b)", re.IGNORECASE)
_WORD_JOINER = "\u2060"
# Bidirectional overrides can make text display in another order than it reads.
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
# A cut must not leave half an entity ("&am") behind.
_PARTIAL_ENTITY = re.compile(r"&[a-z]*$")
ELLIPSIS = "\u2026"


def escape(text: str) -> str:
    """Slack's escaping: no mention, channel link, link or date can be made of the text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def defuse(text: str) -> str:
    """Formatting characters, bare special mentions and direction overrides made inert;
    not escaped (for text that is escaped later, as a whole, by ``escape``)."""
    text = _BIDI.sub("", text)
    text = _SPECIAL_MENTION.sub("@" + _WORD_JOINER, text)
    text = _EDGE_UNDERSCORE.sub(_LOW_LINE, text)
    for char, lookalike in _LOOKALIKE.items():
        text = text.replace(char, lookalike)
    return text


def _defused(text: str) -> str:
    return escape(defuse(text))


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, marked with an ellipsis where it was cut, and never
    cut inside an entity."""
    if len(text) <= limit:
        return text
    return _PARTIAL_ENTITY.sub("", text[: max(limit - 1, 0)]) + ELLIPSIS


def inline(text: str, limit: int = 3000) -> str:
    """Foreign text inside one of the bot's lines: defused, its line breaks as spaces."""
    return clip(_defused(" ".join(text.splitlines())), limit)


def quote(text: str, limit: int = 3000) -> str:
    """What a person typed, as a block quote: every line begins with ``>``, so a line
    break in it cannot start a line of the bot's own."""
    quoted = "\n".join("> " + _defused(line) for line in text.splitlines() or [""])
    if len(quoted) <= limit:
        return quoted
    # Cut back to whole text: no half entity, no quote marker left without its line.
    cut = _PARTIAL_ENTITY.sub("", quoted[: max(limit - 1, 0)]).rstrip("\n> ")
    return (cut or ">") + ELLIPSIS
