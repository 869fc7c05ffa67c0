"""The audit channel's line for one audit event, ending in the seal that
``jit-bot audit verify --against-slack`` reads back."""

from __future__ import annotations

from bot.names import BOT_ACTOR
from bot.slack.blocks.common import mention
from bot.slack.mrkdwn import clip, inline, quote
from bot.storage.models import AuditEvent

# Details a person typed: quoted below the event's line rather than written into it.
_TYPED_DETAILS = ("reason", "note", "incident")


def audit_line(event: AuditEvent) -> str:
    details = dict(event.details)
    role, env = details.pop("role", None), details.pop("environment", None)
    requester = details.pop("requester", None)
    glass = " · :rotating_light: `break-glass`" if details.pop("break_glass", False) else ""
    typed = [str(v) for v in (details.pop(k, None) for k in _TYPED_DETAILS) if v]
    actor = event.actor if event.actor == BOT_ACTOR else mention(event.actor)
    subject = f"`{event.request_id}` " if event.request_id else ""
    head = f"{subject}*{event.action}* by {actor}"
    if role:
        head += f" · `{role}` in `{env}` for {mention(requester) if requester else '?'}"
    head += glass
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
