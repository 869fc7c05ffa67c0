"""What the page shows one person: their conversations (the DM with the bot, the audit
channel), the modal open in front of them, and what the webhook receiver was sent.

A thin reader over what the embedded Slack and the receiver recorded; ``version`` grows
whenever any of it changes, so the page asks again only then.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from bot.local.assembly import AUDIT_CHANNEL, AUDIT_CHANNEL_NAME
from bot.local.interactions import Interactions, NotAllowed
from bot.local.people import People
from bot.local.receiver import WebhookReceiver
from bot.local.slack import BOT_USER_ID, BOT_USER_NAME, LocalSlack

_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class About:
    """What the page says about this local workspace (where its config came from)."""

    config: str
    database: str
    receiver_url: str


class Feed:
    """Builds the page's JSON for one person, and waits for changes."""

    def __init__(
        self,
        slack: LocalSlack,
        receiver: WebhookReceiver,
        interactions: Interactions,
        people: People,
        about: About,
    ) -> None:
        self._slack = slack
        self._receiver = receiver
        self._interactions = interactions
        self._people = people
        self._about = about

    def version(self) -> int:
        """A number that grows with every recorded call, answer or receiver request (the
        lists it counts only grow)."""
        return (
            len(self._slack.calls)
            + len(self._slack.responses)
            + len(self._receiver.requests)
            + self._interactions.version
        )

    def wait(self, since: int, timeout: float, stopping: threading.Event) -> int:
        """The version, once it differs from ``since`` or ``timeout`` seconds passed."""
        deadline = time.monotonic() + timeout
        current = self.version()
        while current == since and time.monotonic() < deadline and not stopping.is_set():
            stopping.wait(_POLL_SECONDS)
            current = self.version()
        return current

    def state(self, user: str) -> dict[str, Any]:
        """Everything the page shows ``user``."""
        version = self.version()
        return {
            "mode": "local",
            "version": version,
            "me": user,
            "people": [
                {"id": p.id, "name": p.name, "real_name": p.real_name, "title": p.title}
                for p in self._people
            ],
            "names": self._names(),
            "conversations": self._conversations(user) if user in self._people.ids() else [],
            "modal": self._modal(user),
            "receiver": self._received(),
            "about": {
                "config": self._about.config,
                "database": self._about.database,
                "receiver_url": self._about.receiver_url,
            },
        }

    def _names(self) -> dict[str, str]:
        names = {p.id: p.real_name for p in self._people}
        names[BOT_USER_ID] = BOT_USER_NAME
        return names

    def _conversations(self, user: str) -> list[dict[str, Any]]:
        posted_at = self._posted_at()
        dm = "D" + user[1:]
        said = self._interactions.said_to(user)
        ephemerals = [e for e in self._slack.ephemerals if e["user"] == user]
        result = []
        for channel, name, kind in (
            (dm, BOT_USER_NAME, "dm"),
            (AUDIT_CHANNEL, AUDIT_CHANNEL_NAME, "channel"),
        ):
            items = [
                _item(m, posted_at.get(m["ts"], 0.0), ephemeral=False)
                for m in self._slack.messages_in(channel)
            ]
            items += [
                _item(e, posted_at.get(e["ts"], 0.0), ephemeral=True)
                for e in ephemerals
                if e["channel"] == channel
            ]
            items += [
                {
                    "ts": "",
                    "at": s.at,
                    "text": s.text,
                    "blocks": [],
                    "ephemeral": True,
                    "edited": False,
                }
                for s in said
                if s.channel == channel
            ]
            items.sort(key=lambda i: i["at"])
            result.append({"id": channel, "name": name, "kind": kind, "messages": items})
        return result

    def _posted_at(self) -> dict[str, float]:
        """When each message and ephemeral message was posted, by ts."""
        found: dict[str, float] = {}
        for call in self._slack.calls:
            if call.ok and call.method == "chat.postMessage":
                found[str(call.response.get("ts"))] = call.at
            elif call.ok and call.method == "chat.postEphemeral":
                found[str(call.response.get("message_ts"))] = call.at
        return found

    def _modal(self, user: str) -> dict[str, Any] | None:
        try:
            view = self._interactions.open_view(user)
        except NotAllowed:
            return None
        return {
            "id": view["id"],
            "title": view.get("title"),
            "submit": view.get("submit"),
            "close": view.get("close"),
            "blocks": view.get("blocks") or [],
            "errors": self._interactions.errors_of(view["id"]),
        }

    def _received(self) -> list[dict[str, Any]]:
        calls = []
        for request in self._receiver.requests:
            try:
                payload: Any = json.loads(request.body)
            except ValueError:
                payload = request.body.decode("utf-8", errors="replace")
            event = payload if isinstance(payload, dict) else {}
            calls.append(
                {
                    "event": str(event.get("event", "?")),
                    "status": request.status,
                    # The receiver answers 2xx only once the HMAC over its URL, the
                    # timestamp and the body checked out.
                    "verified": 200 <= request.status < 300,
                    "signature": request.headers.get("x-jit-signature", ""),
                    "timestamp": request.headers.get("x-jit-timestamp", ""),
                    "payload": payload,
                }
            )
        return calls


def _item(message: dict[str, Any], at: float, *, ephemeral: bool) -> dict[str, Any]:
    return {
        "ts": message["ts"],
        "at": at,
        "text": message.get("text") or "",
        "blocks": message.get("blocks") or [],
        "ephemeral": ephemeral,
        "edited": bool(message.get("updates")),
    }
