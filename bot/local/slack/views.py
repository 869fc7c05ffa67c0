"""views.*: modals the bot opens, pushes and updates, and each user's Home tab."""

from __future__ import annotations

import copy
import time
from typing import Any

from bot.local.slack.block_kit import view_problems
from bot.local.slack.feed import ChangeKind
from bot.local.slack.identity import APP_ID, BOT_ID, TEAM_ID
from bot.local.slack.tickets import Tickets
from bot.local.slack.wire import SlackError

__all__ = ["ViewMethods"]


class ViewMethods(Tickets):
    """views.open, views.push, views.publish and views.update (trigger_ids from `Tickets`)."""

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._open_view(params)

    def _views_push(self, params: dict[str, Any]) -> dict[str, Any]:
        # The workspace cannot tell which modal the trigger came from, so a pushed view is
        # its own root; callers only need it to exist and be updatable.
        return self._open_view(params)

    def _views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        """The user's Home tab; one per user, replaced by each publish."""
        user = params.get("user_id")
        if not user:
            raise SlackError("invalid_arguments", ["missing required field: user_id"])
        if user not in self._users:
            raise SlackError("user_not_found")
        spec = self._view_spec(params, kind="home")
        current = self._views.get(self._homes.get(user, ""))
        if current is not None and params.get("hash") and params["hash"] != current["hash"]:
            raise SlackError("hash_conflict")
        view_id = current["id"] if current else f"V{next(self._id_counter):010d}"
        view = self._render_view(spec, view_id=view_id, root_view_id=view_id, previous=None)
        self._views[view_id] = view
        self._homes[user] = view_id
        self._publish(ChangeKind.VIEW_PUBLISHED, {"user": user, "view": view})
        return {"view": copy.deepcopy(view)}

    def _views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        view_id, external_id = params.get("view_id"), params.get("external_id")
        if not view_id and not external_id:
            raise SlackError("invalid_arguments", ["missing required field: view_id"])
        if view_id:
            current = self._views.get(view_id)
        else:
            current = next(
                (v for v in self._views.values() if v["external_id"] == external_id), None
            )
        if current is None or current["id"] in self._closed_views:
            raise SlackError("not_found")
        spec = self._view_spec(params)
        if params.get("hash") and params["hash"] != current["hash"]:
            raise SlackError("hash_conflict")
        updated = self._render_view(
            {"external_id": current["external_id"], **spec},
            view_id=current["id"],
            root_view_id=current["root_view_id"],
            previous=current["previous_view_id"],
        )
        self._views[current["id"]] = updated
        self._publish(ChangeKind.VIEW_UPDATED, {"view": updated})
        return {"view": copy.deepcopy(updated)}

    def _open_view(self, params: dict[str, Any]) -> dict[str, Any]:
        self._consume_trigger(params)
        spec = self._view_spec(params)
        external_id = spec.get("external_id")
        if external_id and any(v["external_id"] == external_id for v in self._views.values()):
            raise SlackError("duplicate_external_id")
        self._used_trigger_ids.add(params["trigger_id"])
        view_id = f"V{next(self._id_counter):010d}"
        view = self._render_view(spec, view_id=view_id, root_view_id=view_id, previous=None)
        self._views[view_id] = view
        self._publish(ChangeKind.VIEW_OPENED, {"view": view})
        return {"view": copy.deepcopy(view)}

    @staticmethod
    def _view_spec(params: dict[str, Any], *, kind: str = "modal") -> dict[str, Any]:
        spec = params.get("view")
        if isinstance(spec, dict) and spec.get("type") != kind:
            raise SlackError("invalid_arguments", [f"view type must be {kind}"])
        problems = view_problems(spec)
        if problems or not isinstance(spec, dict):
            raise SlackError("invalid_arguments", problems)
        return spec

    def _new_hash(self) -> str:
        return f"{int(time.time())}.{next(self._id_counter):08x}"

    def _render_view(
        self, spec: dict[str, Any], *, view_id: str, root_view_id: str, previous: str | None
    ) -> dict[str, Any]:
        return {
            "id": view_id,
            "team_id": TEAM_ID,
            "type": spec["type"],
            "title": copy.deepcopy(spec.get("title")),
            "submit": copy.deepcopy(spec.get("submit")),
            "close": copy.deepcopy(spec.get("close")),
            "blocks": copy.deepcopy(spec.get("blocks", [])),
            "private_metadata": spec.get("private_metadata", ""),
            "callback_id": spec.get("callback_id", ""),
            "external_id": spec.get("external_id", ""),
            "state": {"values": {}},
            "hash": self._new_hash(),
            "clear_on_close": bool(spec.get("clear_on_close", False)),
            "notify_on_close": bool(spec.get("notify_on_close", False)),
            "root_view_id": root_view_id,
            "previous_view_id": previous,
            "app_id": APP_ID,
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
        }
