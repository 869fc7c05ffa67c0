"""What a person does on the local page, done the way Slack does it: a signed slash
command, button click, select change or modal submission sent to the bot's
``/slack/events``, and the answers Slack shows only to that person remembered for them.

Slack knows who each trigger_id and response_url was issued to; so does this module,
because it is the one issuing them (through ``SlackSim``). That is how a modal the bot
opens lands in front of the right person.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from bot.local.sim import Reply, SlackSim, select_value, text_value
from bot.local.slack import LocalSlack

COMMAND = "/jit"


class NotAllowed(Exception):
    """What the page asked for is not something this person can do in Slack."""


@dataclass(frozen=True)
class Said:
    """An answer only ``user`` sees, in ``channel``: the text of a command's HTTP answer or
    of a response_url post, as Slack shows them ("Only visible to you")."""

    user: str
    channel: str
    text: str
    at: float  # when it was first seen, in unix seconds


@dataclass
class _Memory:
    triggers: dict[str, str] = field(default_factory=dict)  # trigger_id -> user
    response_urls: dict[str, tuple[str, str]] = field(default_factory=dict)  # -> (user, ch)
    said: list[Said] = field(default_factory=list)
    closed: set[str] = field(default_factory=set)  # view ids
    errors: dict[str, dict[str, str]] = field(default_factory=dict)  # view id -> block errors
    version: int = 0
    # When each response_url post was first seen: Slack shows them in time order.
    seen_at: dict[int, float] = field(default_factory=dict)


class Interactions:
    """The Slack client side of the page: one instance per local workspace."""

    def __init__(self, slack: LocalSlack, people: set[str], channels: set[str]) -> None:
        """``channels``: the channels everyone is in (besides each person's DM)."""
        self._slack = slack
        self._people = people
        self._channels = channels
        self._sim: SlackSim | None = None
        self._lock = threading.Lock()
        self._memory = _Memory()

    def connect(self, app_url: str, signing_secret: str) -> None:
        """Where the bot listens, known once its server is bound."""
        self._sim = SlackSim(app_url, signing_secret, self._slack)

    @property
    def version(self) -> int:
        """Grows with every change only this module knows of (answers, closed modals)."""
        with self._lock:
            return self._memory.version

    # ------------------------------------------------------------------ doing

    def command(self, user: str, text: str, channel: str) -> None:
        """``/jit …`` typed by ``user`` in ``channel``."""
        self._check_person(user)
        self._check_channel(user, channel)
        words = text.strip()
        if words != COMMAND and not words.startswith(COMMAND + " "):
            raise NotAllowed(f"only {COMMAND} commands reach the bot here, e.g. {COMMAND} help")
        reply = self._sim_().command(user, words[len(COMMAND) :].strip(), channel_id=channel)
        self._issued(user, channel, reply)
        answer = reply.json or {}
        if isinstance(answer.get("text"), str) and answer["text"]:
            self._say(user, channel, answer["text"])
        elif not reply.ok:
            self._say(user, channel, f'{COMMAND} failed with the error "http_{reply.status}"')

    def click(self, user: str, channel: str, ts: str, action: dict[str, str]) -> None:
        """A button on a message in ``channel`` clicked by ``user``."""
        self._check_person(user)
        self._check_channel(user, channel)
        try:
            message = self._slack.message(channel, ts)
        except KeyError:
            raise NotAllowed("that message is gone") from None
        # Slack sends what the button holds, never what a client says it holds.
        block_id, button = _button(message, action["action_id"])
        value = str(button.get("value", ""))
        reply = self._sim_().block_action(
            user, button["action_id"], value, block_id=block_id, message=message
        )
        self._issued(user, channel, reply)

    def choose(self, user: str, view_id: str, action: dict[str, str], values: Any) -> None:
        """A select with ``dispatch_action`` changed inside an open modal."""
        view = self._with_state(self.open_view(user, view_id), values)
        reply = self._sim_().select_action(
            user, action["action_id"], action["value"], view=view, block_id=action["block_id"]
        )
        self._issued(user, "", reply)

    def submit(self, user: str, view_id: str, values: Any) -> dict[str, str]:
        """Submit an open modal; the errors the bot answered, by block id (none: closed)."""
        view = self._with_state(self.open_view(user, view_id), values)
        reply = self._sim_().submit_view(user, view, view["state"]["values"])
        self._issued(user, "", reply)
        answer = reply.json or {}
        errors = answer.get("errors") if answer.get("response_action") == "errors" else None
        with self._lock:
            self._memory.version += 1
            if isinstance(errors, dict):
                self._memory.errors[view_id] = {str(k): str(v) for k, v in errors.items()}
                return dict(self._memory.errors[view_id])
            self._memory.errors.pop(view_id, None)
        if not reply.ok:
            raise NotAllowed(f"the app answered HTTP {reply.status}")
        self._close(view_id)
        return {}

    def close(self, user: str, view_id: str) -> None:
        """The modal's close button (or X)."""
        view = self.open_view(user, view_id)
        if view.get("notify_on_close"):
            self._sim_().close_view(user, view)
        self._close(view_id)

    # ------------------------------------------------------------------ reading

    def open_view(self, user: str, view_id: str | None = None) -> dict[str, Any]:
        """The modal open in front of ``user`` (the one named, or the newest), or
        NotAllowed."""
        self._check_person(user)
        with self._lock:
            triggers = dict(self._memory.triggers)
            closed = set(self._memory.closed)
        opened = [
            call.response["view"]["id"]
            for call in self._slack.calls
            if call.ok
            and call.method in ("views.open", "views.push")
            and triggers.get(str(call.params.get("trigger_id"))) == user
        ]
        mine = [v for v in opened if v not in closed and (view_id is None or v == view_id)]
        if not mine:
            raise NotAllowed("no such modal is open")
        return self._slack.view(mine[-1])

    def errors_of(self, view_id: str) -> dict[str, str]:
        with self._lock:
            return dict(self._memory.errors.get(view_id, {}))

    def said_to(self, user: str) -> list[Said]:
        """What only ``user`` was shown: command answers and response_url posts."""
        with self._lock:
            said = [s for s in self._memory.said if s.user == user]
            urls = dict(self._memory.response_urls)
        for index, body in enumerate(self._slack.responses):
            owner = urls.get(str(body.get("_url_name")))
            if owner is not None and owner[0] == user and isinstance(body.get("text"), str):
                with self._lock:
                    at = self._memory.seen_at.setdefault(index, time.time())
                said.append(Said(user, owner[1], body["text"], at))
        return said

    # ------------------------------------------------------------------ plumbing

    def _sim_(self) -> SlackSim:
        if self._sim is None:
            raise NotAllowed("the bot is not listening yet")
        return self._sim

    def _check_person(self, user: str) -> None:
        if user not in self._people:
            raise NotAllowed("no such person in this workspace")

    def _check_channel(self, user: str, channel: str) -> None:
        if channel != "D" + user[1:] and channel not in self._channels:
            raise NotAllowed("that conversation is someone else's DM, or no conversation here")

    def _issued(self, user: str, channel: str, reply: Reply) -> None:
        with self._lock:
            self._memory.version += 1
            if reply.trigger_id:
                self._memory.triggers[reply.trigger_id] = user
            if reply.response_url_name:
                self._memory.response_urls[reply.response_url_name] = (user, channel)

    def _say(self, user: str, channel: str, text: str) -> None:
        with self._lock:
            self._memory.version += 1
            self._memory.said.append(Said(user, channel, text, time.time()))

    def _close(self, view_id: str) -> None:
        self._slack.close_view(view_id)
        with self._lock:
            self._memory.closed.add(view_id)
            self._memory.version += 1

    @staticmethod
    def _with_state(view: dict[str, Any], values: Any) -> dict[str, Any]:
        """``view`` carrying the values typed into its inputs, shaped as Slack puts them in
        ``view.state.values``: each by its element's type, a select's option with its text."""
        typed = values if isinstance(values, dict) else {}
        state: dict[str, dict[str, Any]] = {}
        for block in view.get("blocks") or ():
            element = block.get("element") if block.get("type") == "input" else None
            if not isinstance(element, dict):
                continue
            entered = typed.get(block.get("block_id"), {})
            value = entered.get(element.get("action_id")) if isinstance(entered, dict) else None
            value = value if isinstance(value, str) else None
            state[block["block_id"]] = {element["action_id"]: _state_value(element, value)}
        return {**view, "state": {"values": state}}


def _state_value(element: dict[str, Any], value: str | None) -> dict[str, Any]:
    if element.get("type") == "static_select":
        if not value:
            return {"type": "static_select", "selected_option": None}
        label = next(
            (o["text"]["text"] for o in element.get("options") or () if o.get("value") == value),
            value,
        )
        return select_value(value, label)
    if value is None or value == "":
        return {"type": element.get("type", "plain_text_input"), "value": None}
    return text_value(value)


def _button(message: dict[str, Any], action_id: str) -> tuple[str, dict[str, Any]]:
    """The block id and button ``action_id`` names on ``message``."""
    for block in message.get("blocks") or ():
        if block.get("type") != "actions":
            continue
        for element in block.get("elements") or ():
            if element.get("type") == "button" and element.get("action_id") == action_id:
                return str(block.get("block_id", "")), element
    raise NotAllowed("that message has no such button")
