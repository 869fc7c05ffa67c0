"""auth.test, conversations.open, users.*, usergroups.* and apps.connections.open: who is
in the workspace and how the bot reaches them."""

from __future__ import annotations

import hashlib
from typing import Any

from bot.local.slack.identity import BOT_ID, BOT_USER_ID, BOT_USER_NAME, TEAM_DOMAIN, TEAM_ID
from bot.local.slack.state import WorkspaceState
from bot.local.slack.wire import SlackError, truthy

__all__ = ["DirectoryMethods"]


class DirectoryMethods(WorkspaceState):
    """The directory and identity methods, read from the users and groups added."""

    #: What ``apps.connections.open`` answers; point it at a Socket Mode server.
    socket_url = "ws://127.0.0.1:1/"

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": "JIT Test",
            "user": BOT_USER_NAME,
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("channel"):
            channel_id = self._conversation(params["channel"])
            return {"no_op": True, "already_open": True, "channel": {"id": channel_id}}
        users = params.get("users")
        if isinstance(users, list):
            users = ",".join(users)
        user_ids = [u.strip() for u in (users or "").split(",") if u.strip()]
        if not user_ids:
            raise SlackError("users_list_not_supplied")
        if any(u not in self._users for u in user_ids):
            raise SlackError("user_not_found")
        if len(user_ids) == 1:
            channel_id = self._dm_channel(user_ids[0])
        else:
            digest = hashlib.sha1(",".join(sorted(user_ids)).encode()).hexdigest()
            channel_id = "G" + digest[:10].upper()
            self._channels.add(channel_id)
        return {"no_op": False, "already_open": False, "channel": {"id": channel_id}}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self._users.get(params.get("user") or "")
        if user is None:
            raise SlackError("user_not_found")
        return {"user": _user_payload(user)}

    def _users_lookup_by_email(self, params: dict[str, Any]) -> dict[str, Any]:
        email = (params.get("email") or "").strip().lower()
        if not email:
            raise SlackError("invalid_arguments")
        for user in self._users.values():
            if user["email"].lower() == email:
                return {"user": _user_payload(user)}
        raise SlackError("users_not_found")

    def _usergroups_list(self, params: dict[str, Any]) -> dict[str, Any]:
        include_users = truthy(params.get("include_users", False))
        groups = []
        for group in self._usergroups.values():
            entry: dict[str, Any] = {
                "id": group["id"],
                "team_id": TEAM_ID,
                "is_usergroup": True,
                "name": group["name"],
                "handle": group["handle"],
                "description": group["description"],
                "date_delete": 0,
                "user_count": len(group["users"]),
            }
            if include_users:
                entry["users"] = list(group["users"])
            groups.append(entry)
        return {"usergroups": groups}

    def _usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        group_id = params.get("usergroup")
        if not group_id:
            raise SlackError("invalid_arguments")
        group = self._usergroups.get(group_id)
        if group is None:
            raise SlackError("no_such_subteam")
        return {"users": list(group["users"])}

    def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": self.socket_url}


def _user_payload(user: dict[str, Any]) -> dict[str, Any]:
    """A directory entry as users.info and users.lookupByEmail return it."""
    payload: dict[str, Any] = {
        "id": user["id"],
        "team_id": user["team_id"],
        "name": user["name"],
        "real_name": user["real_name"],
        "deleted": user["deleted"],
        "is_email_confirmed": user.get("email_confirmed", True),
        "is_bot": user["is_bot"],
        "is_admin": False,
        "is_restricted": user["is_restricted"],
        "is_ultra_restricted": user["is_ultra_restricted"],
        "tz": "UTC",
        "profile": {
            "email": user["email"],
            "real_name": user["real_name"],
            "real_name_normalized": user["real_name"],
            "display_name": user["name"],
            "display_name_normalized": user["name"],
        },
    }
    if user["is_stranger"]:
        payload["is_stranger"] = True
    if user["enterprise_id"]:
        payload["enterprise_user"] = {
            "id": user["id"],
            "enterprise_id": user["enterprise_id"],
            "teams": [user["team_id"]],
        }
    return payload
