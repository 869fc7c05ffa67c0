"""Block Kit checks now live in the product (`bot.local.slack.block_kit`); re-exported here."""

from bot.local.slack.block_kit import (
    MESSAGE_BLOCKS_MAX,
    VIEW_BLOCKS_MAX,
    block_problems,
    view_problems,
)

__all__ = ["MESSAGE_BLOCKS_MAX", "VIEW_BLOCKS_MAX", "block_problems", "view_problems"]
