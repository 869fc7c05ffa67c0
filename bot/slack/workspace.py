"""Only the installing workspace is served.

A payload Slack signed is not necessarily from our workspace: the same app installed
elsewhere, or a Slack Connect channel shared with another organisation, delivers payloads
signed with the same secret. Every payload whose workspace (``team_id``) or organisation
(``enterprise_id``) is not the installation's, as ``auth.test`` reported it, is refused
here, before any listener runs, so it never reaches the domain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

from bot.directory import Workspace
from bot.slack import blocks

log = logging.getLogger(__name__)


def _id(value: Any) -> str | None:
    """An id given as ``"T123"`` or as ``{"id": "T123", …}``; Slack's empty string is none."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def payload_ids(body: Mapping[str, Any]) -> tuple[set[str], set[str], set[str]]:
    """(workspace ids, user's workspace ids, organisation ids) named anywhere Slack puts
    them in a slash command, interaction, view submission or event."""
    team, enterprise = body.get("team"), body.get("enterprise")
    user, view = body.get("user"), body.get("view")
    teams = {body.get("team_id"), _id(team)}
    enterprises = {body.get("enterprise_id"), _id(enterprise)}
    if isinstance(team, Mapping):
        enterprises.add(team.get("enterprise_id"))
    if isinstance(view, Mapping):
        teams |= {view.get("team_id"), view.get("app_installed_team_id")}
    user_teams = {user.get("team_id")} if isinstance(user, Mapping) else set()
    for authorization in body.get("authorizations") or ():
        if isinstance(authorization, Mapping):
            teams.add(authorization.get("team_id"))
            enterprises.add(authorization.get("enterprise_id"))

    def named(ids: set[Any]) -> set[str]:
        return {i for i in ids if isinstance(i, str) and i}

    return named(teams), named(user_teams), named(enterprises)


def is_ours(body: Mapping[str, Any], workspace: Workspace) -> bool:
    teams, user_teams, enterprises = payload_ids(body)
    if enterprises - {workspace.enterprise_id}:
        return False  # another organisation, or an organisation where we have none
    if workspace.enterprise_install:
        # Installed org-wide: any workspace of the organisation, which must be named.
        return workspace.enterprise_id in enterprises
    if teams != {workspace.team_id}:
        return False  # another workspace, or none named at all
    # In an Enterprise Grid, a member's home workspace may be another of the organisation.
    return not user_teams - {workspace.team_id} or workspace.enterprise_id in enterprises


class WorkspaceGuard:
    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace

    def middleware(
        self, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
    ) -> BoltResponse:
        # Bolt passes middleware arguments by these names.
        body = req.body if isinstance(req.body, Mapping) else {}
        if is_ours(body, self._workspace):
            return next()
        teams, user_teams, enterprises = payload_ids(body)
        log.warning(
            "refused a %s payload from outside the workspace (team %s, user's team %s, "
            "enterprise %s; installed in %s)",
            body.get("type") or "slash command",
            sorted(teams),
            sorted(user_teams),
            sorted(enterprises),
            self._workspace.team_id,
        )
        if body.get("type") in ("view_submission", "view_closed", "event_callback"):
            return BoltResponse(status=200, body="")  # an empty ack: the modal just closes
        return BoltResponse(
            status=200, body={"response_type": "ephemeral", "text": blocks.OTHER_WORKSPACE}
        )
