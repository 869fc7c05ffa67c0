"""Asking again for what a finished request asked ("Request again"): the person's recent
finished requests, and the request form filled in from one of them, read from the
database when the button is clicked. What may be filled in is ``bot.templates``; the
form, once sent, is checked and submitted as any other (``requesting``)."""

from __future__ import annotations

from bot.operations import people, store
from bot.operations.context import Context
from bot.policy import match_rule, requestable_roles
from bot.storage.models import AccessRequest
from bot.templates import RequestTemplate, check_repeatable, template_of

#: How many finished requests ``/jit list`` offers to request again.
RECENT = 5


def recently_finished(ctx: Context, user_id: str, limit: int = RECENT) -> list[AccessRequest]:
    """The user's last finished requests, newest first (extensions aside)."""
    with ctx.transaction() as session:
        return store.finished_of(session, user_id, limit)


def repeatable(ctx: Context, request_id: str, user_id: str) -> AccessRequest:
    """The request, if ``user_id`` may ask again for what it asked; a JitError saying
    why not otherwise. The database alone answers: no Slack lookup, so it is quick
    enough to come before a modal opens."""
    with ctx.transaction() as session:
        request = store.load(session, request_id)
    check_repeatable(request, user_id)
    return request


def template(ctx: Context, request: AccessRequest, user_id: str) -> RequestTemplate:
    """The request form for asking again for ``request``, as the config and the
    person's groups stand now (Slack lookups)."""
    membership = people.membership(ctx, user_id)
    roles = requestable_roles(ctx.config, membership, standing=people.standing(ctx, user_id))
    return template_of(
        ctx.config,
        request,
        roles,
        lambda role, env: match_rule(ctx.config, role, env, membership) is not None,
    )
