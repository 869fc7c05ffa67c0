"""Bolt listeners: acknowledge, parse, call the domain, render. Nothing else.

The App runs with ``process_before_response=True``: each listener is an ``ack`` function,
run on the request thread and answered at once, and a lazy function that does the work
on Bolt's executor afterwards, so nothing that may be slow (Slack lookups, the database,
providers) ever stands between Slack and its acknowledgement. Domain errors (JitError)
become an ephemeral message saying what was wrong; anything unexpected is logged with an
id the user can quote.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.clock import Clock
from bot.errors import JitError, RequestNotFound
from bot.service import AccessService
from bot.slack import blocks
from bot.slack.loading import LoadingModal
from bot.slack.mrkdwn import clip, defuse, escape, inline
from bot.slack.replay import ReplayGuard

log = logging.getLogger(__name__)

REQUEST_ID = re.compile(r"^R-[0-9A-Z]{8}$")


@contextmanager
def reply_errors(tell: Callable[[str], Any]) -> Iterator[None]:
    """The one place domain errors and surprises are turned into words for the user."""
    try:
        yield
    except JitError as exc:
        # Errors echo what was typed ("no role `X`") and what a cloud or Slack answered.
        tell(f":warning: {escape(str(exc))}")
    except Exception:
        incident = uuid.uuid4().hex[:8]
        log.exception("unexpected error (incident %s)", incident)
        tell(f":boom: Something went wrong on our side (incident `{incident}`); nothing changed.")


def _request_id(value: str) -> str:
    value = (value or "").strip()
    if not REQUEST_ID.match(value):
        # Escaped with the rest of the message by reply_errors.
        raise RequestNotFound(f"There is no request `{defuse(' '.join(value.split()))[:40]}`.")
    return value


def register(app: App, service: AccessService, clock: Clock) -> None:
    app.middleware(ReplayGuard().middleware)

    def ephemeral(respond: Respond) -> Callable[[str], Any]:
        return lambda text: respond(text=text, response_type="ephemeral", replace_original=False)

    def just_ack(ack: Ack) -> None:
        ack()

    def jit_command(command: dict[str, Any], respond: Respond, client: WebClient) -> None:
        user = command["user_id"]
        words = (command.get("text") or "").split()
        sub, args = (words[0].lower(), words[1:]) if words else ("help", [])
        tell = ephemeral(respond)
        with reply_errors(tell):
            if sub == "request" and not args:
                # Opened before the lookups, which may outlast the trigger_id's 3 s.
                modal = LoadingModal.open(client, command["trigger_id"], blocks.REQUEST_TITLE)
                with reply_errors(modal.say):
                    _fill_request_modal(modal, service, user)
            elif sub == "request":
                _inline_request(service, user, args, tell, command.get("trigger_id"))
            elif sub == "list":
                tell(blocks.list_text(service.mine(user), service.awaiting(user), clock.now()))
            elif sub == "roles":
                tell(_roles_text(service, user))
            elif sub == "revoke" and len(args) == 1:
                request = service.end_early(_request_id(args[0]), user)
                tell(f"Ending access for {request.id} now.")
            elif sub == "cancel" and len(args) == 1:
                request = service.cancel(_request_id(args[0]), user)
                tell(f"Cancelled {request.id}.")
            elif sub == "sync" and not args:
                service.sync(user)
                tell("Caches refreshed: users, groups, accounts and names are read afresh.")
            elif sub == "help":
                tell(blocks.HELP)
            else:
                tell(f"I don't know `/jit {inline(' '.join(words), 60)}`.\n{blocks.HELP}")

    def role_chosen(body: dict[str, Any], client: WebClient) -> None:
        user = body["user"]["id"]
        view = body["view"]
        role = body["actions"][0]["selected_option"]["value"]
        roles = service.requestable(user)
        if role not in dict(roles):
            return
        client.views_update(
            view_id=view["id"], hash=view.get("hash"), view=_modal(service, roles, role)
        )

    def check_request(ack: Ack, view: dict[str, Any]) -> None:
        # The modal's answer carries its field errors, so the checks that need no lookup
        # are part of the ack; eligibility is checked again, fully, afterwards.
        values = view["state"]["values"]
        try:
            service.check_form(*_submitted(values))
        except JitError as exc:
            error = clip(escape(str(exc)), 150)
            ack(response_action="errors", errors={exc.field or "reason": error})
            return
        ack()

    def request_submitted(body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        user = body["user"]["id"]

        def tell(text: str) -> None:
            client.chat_postMessage(channel=user, text=text)

        with reply_errors(tell):
            checked = service.check(user, *_submitted(view["state"]["values"]))
            service.submit(user, checked, origin=_origin(body.get("trigger_id")))

    def approve(body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        tell = ephemeral(respond)
        with reply_errors(tell):
            result = service.vote(
                _request_id(action.get("value", "")), body["user"]["id"], "approve"
            )
            if result.outcome == "approved":
                tell(f"Approved {result.request.id}; granting access now.")
            else:
                tell(
                    f"Your approval of {result.request.id} is recorded "
                    f"({result.approvals} of {result.request.required_approvals})."
                )

    def deny(
        body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        tell = ephemeral(respond)
        with reply_errors(tell):
            request_id = _request_id(action.get("value", ""))
            # Opened before the checks, whose lookups may outlast the trigger_id's 3 s.
            modal = LoadingModal.open(client, body["trigger_id"], blocks.DENY_TITLE)

            def refuse(text: str) -> None:
                # In the modal, where the approver looks, and in the conversation, where
                # the answers to the other buttons are.
                tell(text)
                modal.say(text)

            with reply_errors(refuse):
                service.can_decide(request_id, body["user"]["id"])
                modal.show(blocks.deny_modal(request_id))

    def deny_submitted(body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        user = body["user"]["id"]
        reason = _text(view["state"]["values"], "reason") or None

        def tell(text: str) -> None:
            client.chat_postMessage(channel=user, text=text)

        with reply_errors(tell):
            result = service.vote(
                _request_id(view.get("private_metadata", "")), user, "deny", reason
            )
            tell(f"You denied {result.request.id}.")

    def end_access(body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        tell = ephemeral(respond)
        with reply_errors(tell):
            request = service.end_early(_request_id(action.get("value", "")), body["user"]["id"])
            tell(f"Ending access for {request.id} now.")

    app.command("/jit")(ack=just_ack, lazy=[jit_command])
    app.action(blocks.ROLE_SELECT)(ack=just_ack, lazy=[role_chosen])
    app.view(blocks.REQUEST_MODAL)(ack=check_request, lazy=[request_submitted])
    app.action(blocks.APPROVE)(ack=just_ack, lazy=[approve])
    app.action(blocks.DENY)(ack=just_ack, lazy=[deny])
    app.view(blocks.DENY_MODAL)(ack=just_ack, lazy=[deny_submitted])
    app.action(blocks.END_ACCESS)(ack=just_ack, lazy=[end_access])


def _submitted(values: dict[str, Any]) -> tuple[str, str, str, str]:
    """Role, environment, duration and reason as the request modal submitted them."""
    return (
        _selected(values, "role", blocks.ROLE_SELECT),
        _selected(values, "environment", "environment"),
        _text(values, "duration"),
        _text(values, "reason"),
    )


def _fill_request_modal(modal: LoadingModal, service: AccessService, user: str) -> None:
    roles = service.requestable(user)
    if not roles:
        modal.say("There is no role you may request. `/jit roles` shows who may request what.")
        return
    modal.show(_modal(service, roles, roles[0][0]))


def _modal(service: AccessService, roles: list[tuple[str, str]], role: str) -> dict[str, Any]:
    spec = service.config.roles[role]
    return blocks.request_modal(
        roles,
        role,
        service.config.environments(role),
        spec.effective_default,
        spec.max_duration,
    )


def _origin(trigger_id: str | None) -> str | None:
    """What makes one Slack interaction one request: a trigger_id is issued once per
    command or submission, and comes back unchanged when the same one is delivered again."""
    return f"slack:{trigger_id}" if trigger_id else None


def _inline_request(
    service: AccessService,
    user: str,
    args: list[str],
    tell: Callable[[str], Any],
    trigger_id: str | None,
) -> None:
    role, environment, duration = [*args, "", "", ""][:3]
    reason = " ".join(args[3:])
    checked = service.check(user, role, environment, duration, reason)
    request = service.submit(user, checked, origin=_origin(trigger_id))
    if request.auto_approve:
        tell(
            f"{request.id}: approved by rule; granting `{request.role}` in "
            f"`{request.environment}` now."
        )
    else:
        names = blocks.mentions(request.approvers)
        tell(f"{request.id} sent to {names}. I'll DM you when it is decided.")


def _roles_text(service: AccessService, user: str) -> str:
    roles = service.requestable(user)
    if not roles:
        return "There is no role you may request."
    lines = ["*Roles you may request*"]
    for name, description in roles:
        spec = service.config.roles[name]
        lines.append(f"*{name}*{': ' + escape(description) if description else ''}")
        for env in service.config.environments(name):
            rule = service.approvers_for(name, env, user)
            if rule is None:
                approval = "no rule covers you here"
            elif rule.auto_approve:
                approval = "approved automatically"
            else:
                approval = f"{rule.required_approvals} approval(s) from " + ", ".join(
                    escape(a) for a in rule.approvers
                )
            lines.append(f"• `{env}`: up to {_fmt(spec.max_duration)}, {approval}")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    from bot.durations import format_duration

    return format_duration(value)


def _selected(values: dict[str, Any], block: str, action: str) -> str:
    option = (values.get(block, {}).get(action) or {}).get("selected_option") or {}
    return str(option.get("value") or "")


def _text(values: dict[str, Any], block: str) -> str:
    return str((values.get(block, {}).get(block) or {}).get("value") or "")
