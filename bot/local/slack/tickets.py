"""trigger_ids and response_urls: Slack's one-shot, short-lived permissions to answer.

A trigger_id opens one view within 3 s of the interaction that carried it; a response_url
takes 5 posts within 30 minutes. Both are issued here (by `SlackSim`, or local mode's page,
when it sends an interaction) and checked here when the bot uses them.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from abc import ABC, abstractmethod
from typing import Any

from bot.local.slack.block_kit import block_problems
from bot.local.slack.feed import ChangeKind
from bot.local.slack.identity import RESPONSE_URL_TTL, RESPONSE_URL_USES, TRIGGER_TTL
from bot.local.slack.records import Records
from bot.local.slack.wire import HttpAnswer, SlackError, decode_json_values, json_answer

__all__ = ["Tickets"]


class Tickets(Records, ABC):
    """Issuing and honouring trigger_ids and response_urls."""

    @property
    @abstractmethod
    def base_url(self) -> str:
        """``http://HOST:PORT`` (no trailing slash): where response_urls point. The server
        (`LocalSlack`) knows it; this class only builds URLs on it."""

    def response_url(self, name: str) -> str:
        """A response_url whose POSTs are recorded in `responses` under ``_url_name``.

        Issued (its 30 minutes start) the first time `name` is asked for."""
        with self._lock:
            self._response_urls.setdefault(name, [self.now(), 0])
        return f"{self.base_url}/respond/{name}"

    def issue_response_url(self, prefix: str) -> tuple[str, str]:
        """A new response_url, issued now, and its name (``<prefix>-<n>-<random>``): unique
        on this workspace, as Slack's are, however many SlackSims share it, and as
        unguessable as Slack's, so nobody but the app it was sent to can post through it."""
        name = f"{prefix}-{next(self._response_url_counter)}-{secrets.token_urlsafe(12)}"
        return name, self.response_url(name)

    def issue_trigger_id(self) -> str:
        """A fresh trigger_id in Slack's shape, issued now: it can open one view within
        `TRIGGER_TTL` seconds."""
        trigger_id = f"{next(self._id_counter)}.{int(time.time())}.{uuid.uuid4().hex[:20]}"
        with self._lock:
            self._triggers[trigger_id] = self.now()
        return trigger_id

    def _consume_trigger(self, params: dict[str, Any]) -> None:
        trigger_id = params.get("trigger_id")
        if not trigger_id:
            raise SlackError("invalid_arguments", ["missing required field: trigger_id"])
        issued = self._triggers.get(trigger_id)
        if issued is None:
            raise SlackError("invalid_arguments", ["invalid `trigger_id`"])
        # Slack lets each trigger_id open exactly one view, within 3 s of the interaction.
        if trigger_id in self._used_trigger_ids:
            raise SlackError("exchanged_trigger_id")
        if self.now() - issued > TRIGGER_TTL:
            raise SlackError("expired_trigger_id")

    def _handle_response_url(self, name: str, body: bytes) -> HttpAnswer:
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = None
        with self._changed:
            refusal = self._refuse_response(name, payload)
            if refusal is not None:
                status, code, messages = refusal
                # Every refusal here is the bot's mistake: a body Slack cannot take, or a
                # URL it no longer takes (unknown, used five times, older than 30 minutes).
                self._malformed.append(
                    {"method": f"response_url:{name}", "error": code, "messages": messages}
                )
                self._changed.notify_all()
                # Slack's webhook endpoints answer errors as plain text.
                return HttpAnswer(status, code.encode(), {"Content-Type": "text/plain"})
            self._response_urls[name][1] += 1
            self._responses.append({**payload, "_url_name": name})
            self._publish(ChangeKind.RESPONSE_POSTED, {"name": name, "body": payload})
            self._changed.notify_all()
        return json_answer(200, {"ok": True})

    def _refuse_response(self, name: str, payload: Any) -> tuple[int, str, list[str]] | None:
        """Why Slack would refuse this response_url post, or None."""
        issued = self._response_urls.get(name)
        if issued is None:
            return 404, "no_service", []
        if self.now() - issued[0] > RESPONSE_URL_TTL:
            return 404, "expired_url", []
        if issued[1] >= RESPONSE_URL_USES:
            return 404, "used_url", []
        if not isinstance(payload, dict):
            return 400, "invalid_payload", []
        decode_json_values(payload)
        if "blocks" in payload:
            problems = block_problems(payload["blocks"])
            if problems:
                return 400, "invalid_blocks", problems
        elif not payload.get("text") and not payload.get("delete_original"):
            return 400, "no_text", []
        return None
