"""Generated database credentials: the "Show credentials" button on the "Access granted"
DM of a grant with ``credentials: generated`` targets, and the ephemeral answer to it,
seen only by the person who clicked. The button carries the request id only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    MarkdownTextObject,
)

from bot.slack.blocks.common import literal, one_line, when
from bot.slack.blocks.section import MarkdownSection
from bot.storage.models import AccessRequest, RequestTarget
from providers.dblogins import GENERATED

if TYPE_CHECKING:  # annotations only
    from bot.operations.credentials import Shown

SHOW_CREDENTIALS = "show_credentials"


def offers_credentials(targets: Sequence[RequestTarget]) -> bool:
    """Whether a grant includes a login whose password the bot makes."""
    return any(t.spec.get("credentials") == GENERATED for t in targets)


def credentials_button(request: AccessRequest) -> ActionsBlock:
    return ActionsBlock(
        block_id="credentials",
        elements=[
            ButtonElement(text="Show credentials", action_id=SHOW_CREDENTIALS, value=request.id)
        ],
    )


def _login(shown: Shown) -> str:
    made = shown.credentials
    lines = [
        f"*{one_line(shown.description)}*",
        f"host {literal(made.host)}  port {literal(str(made.port))}",
        f"database {literal(made.database or '(the server default)')}",
        f"user {literal(made.user)}",
        f"password {literal(made.password)}",
    ]
    return "\n".join(lines)


def credentials_message(
    request: AccessRequest, shown: Sequence[Shown]
) -> tuple[str, list[dict[str, Any]]]:
    """The ephemeral answer: each login's connection details and fresh password."""
    until = when(request.expires_at) if request.expires_at else "the end of the access"
    text = f"Credentials for {request.id} (`{request.role}` in `{request.environment}`)"
    blocks: list[Block] = [MarkdownSection(text)]
    blocks += [MarkdownSection(_login(s)) for s in shown]
    blocks.append(
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text=f"Valid until {until}. Shown to you only, once: jit-bot keeps no "
                    "copy. Clicking again sets a new password, and this one stops working."
                )
            ]
        )
    )
    return text, [b.to_dict() for b in blocks]
