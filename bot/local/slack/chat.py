"""chat.* and conversations.history: the messages the bot posts, edits and reads back."""

from __future__ import annotations

import base64
import copy
import time
from typing import Any

from bot.local.slack.block_kit import block_problems
from bot.local.slack.feed import ChangeKind
from bot.local.slack.identity import APP_ID, BOT_ID, BOT_USER_ID, TEAM_ID, TEXT_MAX
from bot.local.slack.state import WorkspaceState
from bot.local.slack.wire import SlackError

__all__ = ["ChatMethods"]

# conversations.history page sizes, as Slack documents them.
_HISTORY_DEFAULT_LIMIT = 100
_HISTORY_MAX_LIMIT = 999
_CONVERSATION_PREFIXES = ("C", "G", "D")


class ChatMethods(WorkspaceState):
    """chat.postMessage, chat.update, chat.postEphemeral and conversations.history."""

    def _chat_post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._post_target(params)
        content = self._content(params)
        stored: dict[str, Any] = {
            "channel": channel,
            "ts": self._next_ts(),
            "text": content.get("text") or "",
            "blocks": content.get("blocks") or [],
            "attachments": content.get("attachments") or [],
            "thread_ts": params.get("thread_ts"),
            "metadata": params.get("metadata"),
            "updates": [],
        }
        self._messages.append(stored)
        self._publish(ChangeKind.MESSAGE_POSTED, _shown(stored))
        return {
            "channel": channel,
            "ts": stored["ts"],
            "message": self._message_payload(stored),
        }

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        # Unlike postMessage, chat.update needs the conversation id, not a user id.
        channel = params.get("channel")
        if not isinstance(channel, str) or channel[:1] not in _CONVERSATION_PREFIXES:
            raise SlackError("channel_not_found")
        self._conversation(channel)
        stored = self._find_message(channel, params.get("ts"))
        content = self._content(params)
        # Fields left out keep their previous value, as Slack documents for blocks.
        stored.update(copy.deepcopy(content))
        stored["text"] = stored["text"] or ""
        if "metadata" in params:
            stored["metadata"] = params["metadata"]
        stored["updates"].append(copy.deepcopy({**content, "at": time.time()}))
        self._publish(ChangeKind.MESSAGE_UPDATED, _shown(stored))
        return {
            "channel": channel,
            "ts": stored["ts"],
            "text": stored["text"],
            "message": self._message_payload(stored),
        }

    def _chat_post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._post_target(params)
        user = params.get("user")
        if not user:
            raise SlackError("invalid_arguments", ["missing required field: user"])
        if user not in self._users:
            raise SlackError("user_not_found")
        content = self._content(params)
        ephemeral = {
            "channel": channel,
            "user": user,
            "ts": self._next_ts(),
            "text": content.get("text") or "",
            "blocks": content.get("blocks") or [],
        }
        self._ephemerals.append(ephemeral)
        self._publish(ChangeKind.EPHEMERAL_POSTED, ephemeral)
        return {"message_ts": ephemeral["ts"]}

    def _conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        """Top-level messages of a channel, newest first, a page at a time: Slack's cursor
        pagination (``limit``, ``has_more``, ``response_metadata.next_cursor``, an opaque
        cursor that is base64 of ``next_ts:<ts>``)."""
        channel = params.get("channel")
        if not isinstance(channel, str) or channel[:1] not in _CONVERSATION_PREFIXES:
            raise SlackError("channel_not_found")
        self._conversation(channel)
        try:
            limit = int(params.get("limit") or _HISTORY_DEFAULT_LIMIT)
        except ValueError:
            raise SlackError("invalid_limit") from None
        limit = min(max(limit, 1), _HISTORY_MAX_LIMIT)
        history = sorted(
            (m for m in self._messages if m["channel"] == channel and not m["thread_ts"]),
            key=lambda m: m["ts"],
            reverse=True,
        )
        cursor = params.get("cursor")
        if cursor:
            next_ts = _cursor_ts(cursor)
            history = [m for m in history if m["ts"] <= next_ts]
        page, rest = history[:limit], history[limit:]
        answer: dict[str, Any] = {
            "messages": [self._message_payload(m) for m in page],
            "has_more": bool(rest),
            "pin_count": 0,
        }
        if rest:
            next_cursor = base64.b64encode(f"next_ts:{rest[0]['ts']}".encode()).decode()
            answer["response_metadata"] = {"next_cursor": next_cursor}
        return answer

    @staticmethod
    def _content(params: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
        """The text/blocks/attachments in `params`, validated as Slack does."""
        content: dict[str, Any] = {
            k: params[k] for k in ("text", "blocks", "attachments") if k in params
        }
        if "blocks" in content:
            blocks = content["blocks"]
            if not isinstance(blocks, list):
                raise SlackError("invalid_blocks_format")
            problems = block_problems(blocks)
            if problems:
                raise SlackError("invalid_blocks", problems)
        if required and not any(content.values()):
            raise SlackError("no_text")
        if len(str(content.get("text") or "")) > TEXT_MAX:
            raise SlackError("msg_too_long")
        return content

    def _message_payload(self, stored: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            "ts": stored["ts"],
            "text": stored["text"],
        }
        for key in ("blocks", "attachments", "thread_ts", "metadata"):
            if stored.get(key):
                message[key] = copy.deepcopy(stored[key])
        return message


def _cursor_ts(cursor: Any) -> str:
    """The ts a conversations.history cursor points at, or ``invalid_cursor``."""
    try:
        kind, _, next_ts = base64.b64decode(cursor, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise SlackError("invalid_cursor") from None
    if kind != "next_ts":
        raise SlackError("invalid_cursor")
    return next_ts


def _shown(stored: dict[str, Any]) -> dict[str, Any]:
    """What a page needs to draw a message (its current content, not its edit history)."""
    return {
        key: stored[key]
        for key in ("channel", "ts", "text", "blocks", "attachments", "thread_ts", "metadata")
    }
