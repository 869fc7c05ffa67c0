"""Drive a running Bolt app over HTTP the way Slack's servers do.

`SlackSim` POSTs slash commands, interactivity payloads (button clicks, select changes,
modal submissions) and Events API callbacks (the Home tab opened) to the app's
``/slack/events`` endpoint, signed with the app's signing
secret exactly as Slack signs them, so the app's real request verification, parsing and
routing are exercised end to end. Response URLs in those payloads point at a `LocalSlack`,
which records whatever the app sends back through them.

Typical use::

    sim = SlackSim("http://127.0.0.1:3000", signing_secret, slack)
    reply = sim.command("U1", "request prod-db 1h")
    assert reply.status == 200
    body = slack.wait_for_response(name=reply.response_url_name)

    view = slack.views[-1]
    sim.submit_view("U1", view, {"reason": {"reason": text_value("incident 42")}})

    sim.open_home("U1")  # app_home_opened; then click a button on what was published:
    sim.block_action("U1", "approve", "R-…", view=slack.home("U1"))
"""

from __future__ import annotations

import copy
import itertools
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from bot.local.signing import Reply, SignedTransport
from bot.local.slack import APP_ID, BOT_ID, BOT_USER_ID, TEAM_DOMAIN, TEAM_ID, LocalSlack

__all__ = ["Reply", "SlackSim", "select_value", "text_value"]

# Event ids: unique per event delivered, as Slack's are.
_EVENT_IDS = itertools.count(1)


def text_value(value: str) -> dict[str, Any]:
    """State value of a ``plain_text_input`` as Slack puts it in ``view.state.values``."""
    return {"type": "plain_text_input", "value": value}


def select_value(value: str, text: str | None = None) -> dict[str, Any]:
    """State value of a ``static_select`` with option `value` (displayed as `text`)."""
    return {"type": "static_select", "selected_option": _option(value, text)}


def _option(value: str, text: str | None = None) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text or value, "emoji": True}, "value": value}


class SlackSim(SignedTransport):
    """Sends Slack-signed requests to a Bolt app's HTTP endpoint."""

    #: Also reachable as methods for convenience: ``sim.text_value("x")``.
    text_value = staticmethod(text_value)
    select_value = staticmethod(select_value)

    def __init__(
        self,
        app_url: str,
        signing_secret: str,
        slack: LocalSlack,
        *,
        path: str = "/slack/events",
        timeout: float = 10.0,
        verification_token: str = "legacy-verification-token",
        team_id: str = TEAM_ID,
        enterprise_id: str | None = None,
    ) -> None:
        """`app_url` is the app's base URL (``http://127.0.0.1:PORT``); `path` is appended
        unless `app_url` already ends with it. Payloads come from workspace `team_id` (the
        embedded workspace's, as its auth.test says) of organisation `enterprise_id`
        (none); `as_team` gives a sim that sends them from elsewhere."""
        self.team_id = team_id
        self.enterprise_id = enterprise_id
        base = app_url.rstrip("/")
        self.url = base if base.endswith(path) else base + path
        self.signing_secret = signing_secret
        self.slack = slack
        self.timeout = timeout
        # Slack still sends the deprecated verification token; Bolt ignores it.
        self.verification_token = verification_token
        # Talk to the app directly even if the environment configures an HTTP proxy.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def as_team(self, team_id: str, enterprise_id: str | None = None) -> SlackSim:
        """This sim, sending (still correctly signed) payloads from another workspace or
        organisation, as Slack does for the app installed elsewhere or for Slack Connect."""
        other = copy.copy(self)
        other.team_id, other.enterprise_id = team_id, enterprise_id
        return other

    # ------------------------------------------------------------------ ids

    def new_trigger_id(self) -> str:
        """A fresh trigger_id, issued by the embedded Slack now: it can open a single view, and
        only within 3 s (on its clock) of the interaction that carried it."""
        return self.slack.issue_trigger_id()

    def _new_response_url(self, kind: str) -> tuple[str, str]:
        return self.slack.issue_response_url(kind)

    def _user(self, user_id: str) -> dict[str, Any]:
        known = self.slack.get_user(user_id)
        name = known["name"] if known else user_id.lower()
        return {"id": user_id, "username": name, "name": name, "team_id": self.team_id}

    def _base_payload(self, kind: str, user_id: str, trigger_id: str) -> dict[str, Any]:
        return {
            "type": kind,
            "token": self.verification_token,
            "api_app_id": APP_ID,
            "team": {
                "id": self.team_id,
                "domain": TEAM_DOMAIN,
                "enterprise_id": self.enterprise_id,
            },
            "enterprise": None
            if self.enterprise_id is None
            else {"id": self.enterprise_id, "name": "Enterprise"},
            "is_enterprise_install": False,
            "user": self._user(user_id),
            "trigger_id": trigger_id,
        }

    def _view_for_payload(self, view: Mapping[str, Any]) -> dict[str, Any]:
        """Copy `view` and fill the fields Slack always sends, so hand-built dicts work."""
        full = copy.deepcopy(dict(view))
        full.setdefault("id", "V0000000000")
        full.setdefault("team_id", self.team_id)
        full.setdefault("type", "modal")
        full.setdefault("callback_id", "")
        full.setdefault("private_metadata", "")
        full.setdefault("blocks", [])
        full.setdefault("hash", "1700000000.sim")
        full.setdefault("app_id", APP_ID)
        full.setdefault("bot_id", BOT_ID)
        state = full.get("state")
        if not isinstance(state, dict) or not isinstance(state.get("values"), dict):
            full["state"] = {"values": {}}
        return full

    # ------------------------------------------------------------------ requests

    def command(
        self,
        user_id: str,
        text: str,
        *,
        command: str = "/jit",
        channel_id: str = "C0GENERAL",
        trigger_id: str | None = None,
        channel_name: str | None = None,
    ) -> Reply:
        """Invoke a slash command. The reply carries the response_url name and trigger_id."""
        name, response_url = self._new_response_url("command")
        trigger = trigger_id or self.new_trigger_id()
        user = self._user(user_id)
        if channel_name is None:
            channel_name = "directmessage" if channel_id.startswith("D") else channel_id.lower()
        enterprise = {} if self.enterprise_id is None else {"enterprise_id": self.enterprise_id}
        reply = self.post_form(
            {
                "token": self.verification_token,
                "team_id": self.team_id,
                "team_domain": TEAM_DOMAIN,
                **enterprise,
                "channel_id": channel_id,
                "channel_name": channel_name,
                "user_id": user_id,
                "user_name": user["name"],
                "command": command,
                "text": text,
                "api_app_id": APP_ID,
                "is_enterprise_install": "false",
                "response_url": response_url,
                "trigger_id": trigger,
            }
        )
        return replace(reply, response_url_name=name, trigger_id=trigger)

    def block_action(
        self,
        user_id: str,
        action_id: str,
        value: str,
        *,
        block_id: str = "b",
        container: Mapping[str, Any] | None = None,
        message: Mapping[str, Any] | None = None,
        view: Mapping[str, Any] | None = None,
        channel_id: str | None = None,
        trigger_id: str | None = None,
    ) -> Reply:
        """Click a button.

        For a button on a message pass `message` (e.g. an entry of `LocalSlack.messages`,
        whose ``channel`` is used unless `channel_id` is given); for one inside a modal or
        on a Home tab pass `view` (e.g. `LocalSlack.home(user_id)`). Container and channel
        are derived as Slack fills them unless given.
        """
        payload = self._action_payload(
            user_id,
            trigger_id,
            {
                "type": "button",
                "action_id": action_id,
                "block_id": block_id,
                "value": value,
                "text": {"type": "plain_text", "text": value, "emoji": True},
            },
        )
        return self._send_action(
            payload,
            container=container,
            message=message,
            view=view,
            channel_id=channel_id,
        )

    def select_action(
        self,
        user_id: str,
        action_id: str,
        selected_value: str,
        *,
        view: Mapping[str, Any],
        block_id: str,
        trigger_id: str | None = None,
    ) -> Reply:
        """Pick `selected_value` in a ``static_select`` inside modal `view` (which must be
        marked ``dispatch_action`` or be an actions block for Slack to send this)."""
        payload = self._action_payload(
            user_id,
            trigger_id,
            {
                "type": "static_select",
                "action_id": action_id,
                "block_id": block_id,
                "selected_option": _option(selected_value),
            },
        )
        full_view = self._view_for_payload(view)
        # Slack reports the new selection in the view state as well as in the action.
        values = full_view["state"]["values"]
        values.setdefault(block_id, {})[action_id] = select_value(selected_value)
        return self._send_action(payload, view=full_view)

    def _action_payload(
        self, user_id: str, trigger_id: str | None, action: dict[str, Any]
    ) -> dict[str, Any]:
        """A block_actions payload of ``user_id`` carrying ``action``, stamped now."""
        payload = self._base_payload("block_actions", user_id, trigger_id or self.new_trigger_id())
        payload["actions"] = [{**action, "action_ts": f"{time.time():.6f}"}]
        return payload

    def _send_action(
        self,
        payload: dict[str, Any],
        *,
        container: Mapping[str, Any] | None = None,
        message: Mapping[str, Any] | None = None,
        view: Mapping[str, Any] | None = None,
        channel_id: str | None = None,
    ) -> Reply:
        name: str | None = None
        if view is not None:
            full_view = self._view_for_payload(view)
            payload["view"] = full_view
            payload["container"] = dict(container or {"type": "view", "view_id": full_view["id"]})
            # Slack gives no response_url for actions inside modals.
        else:
            name, payload["response_url"] = self._new_response_url("action")
        if message is not None:
            channel_id = channel_id or message.get("channel")
            payload["message"] = {
                "type": "message",
                "user": BOT_USER_ID,
                "bot_id": BOT_ID,
                "ts": message["ts"],
                "text": message.get("text", ""),
                "blocks": copy.deepcopy(message.get("blocks", [])),
            }
            if container is None and view is None:
                container = {
                    "type": "message",
                    "message_ts": message["ts"],
                    "channel_id": channel_id,
                    "is_ephemeral": False,
                }
        if container is not None and "container" not in payload:
            payload["container"] = dict(container)
        if channel_id is not None:
            channel_name = "directmessage" if channel_id.startswith("D") else channel_id.lower()
            payload["channel"] = {"id": channel_id, "name": channel_name}
        payload.setdefault("state", {"values": {}})
        reply = self.send_payload(payload)
        return replace(reply, response_url_name=name, trigger_id=payload["trigger_id"])

    def submit_view(
        self,
        user_id: str,
        view: Mapping[str, Any],
        values: Mapping[str, Mapping[str, Mapping[str, Any]]],
        *,
        trigger_id: str | None = None,
    ) -> Reply:
        """Submit modal `view` (as opened, e.g. from `LocalSlack.views`) with `values`
        (``{block_id: {action_id: text_value(...) | select_value(...)}}``)."""
        trigger = trigger_id or self.new_trigger_id()
        payload = self._base_payload("view_submission", user_id, trigger)
        full_view = self._view_for_payload(view)
        full_view["state"] = {"values": copy.deepcopy(dict(values))}
        payload["view"] = full_view
        payload["response_urls"] = []
        reply = self.send_payload(payload)
        return replace(reply, trigger_id=trigger)

    def close_view(self, user_id: str, view: Mapping[str, Any]) -> Reply:
        """Close modal `view` with its X/cancel button (a ``view_closed`` payload; Slack only
        sends it when the view was opened with ``notify_on_close``)."""
        payload = self._base_payload("view_closed", user_id, self.new_trigger_id())
        del payload["trigger_id"]  # view_closed carries none
        payload["view"] = self._view_for_payload(view)
        payload["is_cleared"] = False
        return self.send_payload(payload)

    def event(self, user_id: str, event: Mapping[str, Any]) -> Reply:
        """Deliver an Events API event about ``user_id`` (an ``event_callback``, JSON,
        signed), as Slack does to the app's request URL."""
        now = time.time()
        body = {
            "token": self.verification_token,
            "team_id": self.team_id,
            **({"enterprise_id": self.enterprise_id} if self.enterprise_id else {}),
            "api_app_id": APP_ID,
            "event": {"user": user_id, "event_ts": f"{now:.6f}", **event},
            "type": "event_callback",
            "event_id": f"Ev{next(_EVENT_IDS):010d}",
            "event_time": int(now),
            "authorizations": [
                {
                    "enterprise_id": self.enterprise_id,
                    "team_id": self.team_id,
                    "user_id": BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }
        return self.post_json(body)

    def open_home(self, user_id: str) -> Reply:
        """``user_id`` opens the app's Home tab: ``app_home_opened``, carrying the Home
        they see now, if one was published for them."""
        event: dict[str, Any] = {
            "type": "app_home_opened",
            "channel": "D" + user_id[1:],
            "tab": "home",
        }
        home = self.slack.home(user_id)
        if home is not None:
            event["view"] = home
        return self.event(user_id, event)
