"""The /jit command: a table from subcommand to the function that answers it.

A subcommand given arguments it does not take, or a word that is no subcommand, is
answered with what was not understood and the help. Help's text for each subcommand is
``blocks.COMMAND_HELP``, under the same names as ``SUBCOMMANDS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from slack_bolt import App, Respond
from slack_sdk import WebClient

from bot.clock import Clock
from bot.errors import ReasonTooLong
from bot.names import Decision
from bot.service import AccessService
from bot.slack import blocks
from bot.slack.listeners.common import (
    ephemeral,
    ephemeral_blocks,
    just_ack,
    origin,
    parse_request_id,
    reply_errors,
    request_form,
)
from bot.slack.loading import LoadingModal


@dataclass(frozen=True)
class Invocation:
    """One /jit command: who typed it, the words after the subcommand, how to answer."""

    service: AccessService
    clock: Clock
    command: dict[str, Any]
    client: WebClient
    user: str
    args: list[str]
    tell: Callable[[str], Any]
    show: Callable[[str, list[dict[str, Any]]], Any]  # answers with blocks, text the fallback


def _request(jit: Invocation) -> None:
    if jit.args:
        _inline_request(jit)
        return
    # Opened before the lookups, which may outlast the trigger_id's 3 s.
    modal = LoadingModal.open(jit.client, jit.command["trigger_id"], blocks.REQUEST_TITLE)
    with reply_errors(modal.say):
        roles = jit.service.requestable(jit.user)
        if not roles:
            modal.say(blocks.NOTHING_TO_REQUEST)
            return
        modal.show(request_form(jit.service, roles, roles[0][0], jit.user))


def _inline_request(jit: Invocation) -> None:
    role, environment, duration = [*jit.args, "", "", ""][:3]
    reason = " ".join(jit.args[3:])
    checked = jit.service.check(jit.user, role, environment, duration, reason)
    request = jit.service.submit(jit.user, checked, origin=origin(jit.command.get("trigger_id")))
    jit.tell(blocks.request_sent(request))


def _break_glass(jit: Invocation) -> None:
    role, environment, duration, incident = [*jit.args, "", "", "", ""][:4]
    reason = " ".join(jit.args[4:])
    checked = jit.service.check_break_glass(jit.user, role, environment, duration, incident, reason)
    origin_ = origin(jit.command.get("trigger_id"))
    request = jit.service.break_glass(jit.user, checked, origin=origin_)
    jit.tell(blocks.break_glass_sent(request))


def _extend(jit: Invocation) -> None:
    request_id, duration = [*jit.args, "", ""][:2]
    reason = " ".join(jit.args[2:])
    checked = jit.service.check_extension(jit.user, parse_request_id(request_id), duration, reason)
    origin_ = origin(jit.command.get("trigger_id"))
    jit.tell(blocks.extension_sent(jit.service.extend(jit.user, checked, origin=origin_)))


def _list(jit: Invocation) -> None:
    listed, now = jit.service.listing(jit.user), jit.clock.now()
    mine, awaiting, finished = listed.mine, listed.awaiting, listed.finished
    jit.show(
        blocks.list_text(mine, awaiting, now, finished),
        blocks.list_blocks(mine, awaiting, now, finished),
    )


def _roles(jit: Invocation) -> None:
    service, user = jit.service, jit.user
    roles = [
        blocks.RequestableRole(
            name,
            description,
            service.config.roles[name].max_duration,
            [
                (env, service.approvers_for(name, env, user))
                for env in service.config.environments(name)
            ],
        )
        for name, description in service.requestable(user)
    ]
    jit.tell(blocks.roles_text(roles))


def _revoke(jit: Invocation) -> None:
    request = jit.service.end_early(parse_request_id(jit.args[0]), jit.user)
    jit.tell(blocks.ending_access(request.id))


def _approve(jit: Invocation) -> None:
    result = jit.service.vote(parse_request_id(jit.args[0]), jit.user, Decision.APPROVE)
    jit.tell(blocks.approval_recorded(result.request, result.outcome, result.approvals))


# As long as the Deny form's reason may be.
DENY_REASON_MAX = 500


def _deny(jit: Invocation) -> None:
    reason = " ".join(jit.args[1:]) or None
    if reason is not None and len(reason) > DENY_REASON_MAX:
        raise ReasonTooLong(
            f"The reason is {len(reason)} characters long; say it in at most "
            f"{DENY_REASON_MAX}. Nothing was denied."
        )
    result = jit.service.vote(parse_request_id(jit.args[0]), jit.user, Decision.DENY, reason)
    jit.tell(blocks.denied(result.request.id))


def _cancel(jit: Invocation) -> None:
    request = jit.service.cancel(parse_request_id(jit.args[0]), jit.user)
    jit.tell(blocks.cancelled(request.id))


def _sync(jit: Invocation) -> None:
    jit.service.sync(jit.user)
    jit.tell(blocks.SYNCED)


def _help(jit: Invocation) -> None:
    jit.tell(blocks.HELP)


def _any(args: list[str]) -> bool:
    return True


def _none(args: list[str]) -> bool:
    return not args


def _some(args: list[str]) -> bool:
    return bool(args)


def _one(args: list[str]) -> bool:
    return len(args) == 1


class Subcommand(NamedTuple):
    takes: Callable[[list[str]], bool]  # which argument lists it answers
    run: Callable[[Invocation], None]


SUBCOMMANDS = {
    "request": Subcommand(_any, _request),  # no arguments: the form; else one line
    "breakglass": Subcommand(_any, _break_glass),
    "extend": Subcommand(_some, _extend),
    "list": Subcommand(_any, _list),
    "roles": Subcommand(_any, _roles),
    "approve": Subcommand(_one, _approve),
    "deny": Subcommand(_some, _deny),  # the request id, then an optional reason
    "revoke": Subcommand(_one, _revoke),
    "cancel": Subcommand(_one, _cancel),
    "sync": Subcommand(_none, _sync),
    "help": Subcommand(_any, _help),
}


def register(app: App, service: AccessService, clock: Clock) -> None:
    def jit_command(command: dict[str, Any], respond: Respond, client: WebClient) -> None:
        user = command["user_id"]
        words = (command.get("text") or "").split()
        sub, args = (words[0].lower(), words[1:]) if words else ("help", [])
        tell = ephemeral(respond)
        with reply_errors(tell):
            subcommand = SUBCOMMANDS.get(sub)
            if subcommand is None or not subcommand.takes(args):
                tell(blocks.unknown_command(words))
                return
            show = ephemeral_blocks(respond)
            subcommand.run(Invocation(service, clock, command, client, user, args, tell, show))

    app.command("/jit")(ack=just_ack, lazy=[jit_command])
