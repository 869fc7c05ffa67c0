"""Every Slack message and modal the bot shows, as pure functions of stored values.

Built with slack_sdk.models so Slack's limits (text lengths, element counts) are checked
by the library rather than discovered in production. One module per kind of thing shown:

- ``common``: the action and callback ids, mentions, times, durations;
- ``requests``: the approvers' DM, the break-glass alert and the requester's news
  about one request;
- ``modals``: the request form (empty, or filled in from a finished request) and the deny
  form, and a modal's loading and notice states;
- ``again``: "Request again": its button, a finished request's line, and what a form
  filled in from one says;
- ``texts``: help, ``/jit list`` (text and blocks) and ``/jit roles``;
- ``replies``: the short answers to commands, clicks and forms, and error texts;
- ``reviews``: the post-incident review of a break-glass use;
- ``credentials``: "Show credentials" for generated database passwords, and its
  ephemeral answer;
- ``extensions``: extending access: what approvers decide it on, the Extend form and
  buttons, and the nudge before access ends;
- ``figures``: the admins' App Home section of the last seven days' figures;
- ``follow_up``: the reminder and escalation notices in an approver's DM thread, and
  the notify-only watchers' heading;
- ``home``: the Home tab, its sections and its own buttons (Cancel, Request again);
- ``audit_trail``: the audit channel's line for an event.

Callers use ``from bot.slack import blocks`` and ``blocks.<name>``; every name is
re-exported here.
"""

from bot.slack.blocks.again import finished_line, request_again_button, template_notes
from bot.slack.blocks.audit_trail import audit_line
from bot.slack.blocks.common import (
    APPROVE,
    DENY,
    DENY_MODAL,
    END_ACCESS,
    EXTEND,
    EXTEND_MODAL,
    REQUEST_AGAIN,
    REQUEST_MODAL,
    REVIEW_JUSTIFIED,
    REVIEW_MODAL,
    REVIEW_NOT_JUSTIFIED,
    ROLE_SELECT,
    mention,
    mentions,
    when,
)
from bot.slack.blocks.credentials import (
    SHOW_CREDENTIALS,
    credentials_button,
    credentials_message,
    offers_credentials,
)
from bot.slack.blocks.extensions import (
    EXTEND_TITLE,
    access_buttons,
    extend_modal,
    extension_line,
    extension_sent,
    nudge_message,
)
from bot.slack.blocks.figures import week_figures
from bot.slack.blocks.follow_up import (
    WATCHING,
    escalated_text,
    escalation_heading,
    reminder_text,
)
from bot.slack.blocks.home import (
    CANCEL_REQUEST,
    everyone_active,
    home_view,
    reviews_waiting,
)
from bot.slack.blocks.modals import (
    BREAK_GLASS_KIND,
    DENY_TITLE,
    REQUEST_KIND,
    REQUEST_TITLE,
    deny_modal,
    loading_modal,
    notice_modal,
    request_modal,
)
from bot.slack.blocks.replies import (
    NOTHING_TO_REQUEST,
    OTHER_WORKSPACE,
    SYNCED,
    approval_recorded,
    break_glass_sent,
    cancelled,
    denied,
    ending_access,
    field_error,
    incident,
    no_such_request,
    refusal,
    request_sent,
    unknown_command,
)
from bot.slack.blocks.requests import (
    approver_message,
    break_glass_alert,
    left_behind,
    requester_message,
)
from bot.slack.blocks.reviews import (
    REVIEW_TITLE,
    already_reviewed,
    not_justified_alert,
    review_message,
    review_modal,
    reviewed,
)
from bot.slack.blocks.texts import (
    COMMAND_HELP,
    HELP,
    RequestableRole,
    list_blocks,
    list_text,
    roles_text,
)

__all__ = [
    "APPROVE",
    "BREAK_GLASS_KIND",
    "CANCEL_REQUEST",
    "COMMAND_HELP",
    "DENY",
    "DENY_MODAL",
    "DENY_TITLE",
    "END_ACCESS",
    "EXTEND",
    "EXTEND_MODAL",
    "EXTEND_TITLE",
    "HELP",
    "NOTHING_TO_REQUEST",
    "OTHER_WORKSPACE",
    "REQUEST_AGAIN",
    "REQUEST_KIND",
    "REQUEST_MODAL",
    "REQUEST_TITLE",
    "REVIEW_JUSTIFIED",
    "REVIEW_MODAL",
    "REVIEW_NOT_JUSTIFIED",
    "REVIEW_TITLE",
    "ROLE_SELECT",
    "SHOW_CREDENTIALS",
    "SYNCED",
    "WATCHING",
    "RequestableRole",
    "access_buttons",
    "already_reviewed",
    "approval_recorded",
    "approver_message",
    "audit_line",
    "break_glass_alert",
    "break_glass_sent",
    "cancelled",
    "credentials_button",
    "credentials_message",
    "denied",
    "deny_modal",
    "ending_access",
    "escalated_text",
    "escalation_heading",
    "everyone_active",
    "extend_modal",
    "extension_line",
    "extension_sent",
    "field_error",
    "finished_line",
    "home_view",
    "incident",
    "left_behind",
    "list_blocks",
    "list_text",
    "loading_modal",
    "mention",
    "mentions",
    "no_such_request",
    "not_justified_alert",
    "notice_modal",
    "nudge_message",
    "offers_credentials",
    "refusal",
    "reminder_text",
    "request_again_button",
    "request_modal",
    "request_sent",
    "requester_message",
    "review_message",
    "review_modal",
    "reviewed",
    "reviews_waiting",
    "roles_text",
    "template_notes",
    "unknown_command",
    "week_figures",
    "when",
]
