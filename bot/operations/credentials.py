"""Generated database credentials: the holder of active access asks for a password
(the "Show credentials" button) and each target with ``credentials: generated`` sets a
fresh one on their login, valid until the access ends, replacing the one before.

Everything is checked at the click, from the database: the request is the clicker's
own, active and not yet ended. Nothing of the password is kept: the audit trail records
that credentials were shown, to whom and for which targets, and the password goes back
to the Slack edge only, which shows it to that one person."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bot.errors import CredentialsUnavailable, NotAllowed, WrongState
from bot.names import AuditAction
from bot.operations import people, provider_calls, store
from bot.operations.context import Context
from bot.operations.transition import audit
from bot.storage.models import AccessRequest, RequestTarget, Status, TargetStatus
from providers.base import Credentials, ProviderError
from providers.dblogins import GENERATED


@dataclass(frozen=True)
class Shown:
    """One login's fresh credentials, and what the access on it is (the target's line)."""

    description: str
    credentials: Credentials


def show(ctx: Context, request_id: str, user_id: str) -> tuple[AccessRequest, list[Shown]]:
    """Fresh credentials for each login of ``request_id`` with generated passwords, if
    ``user_id`` holds that access now; a JitError saying why not otherwise."""
    with ctx.transaction() as session:
        request = store.load(session, request_id)
        targets = store.snapshot(session, request_id)[0]
    _check(ctx, request, user_id)
    units = [t for t in targets if t.spec.get("credentials") == GENERATED]
    if not units:
        raise WrongState(f"{request.id} has no database login whose password jit-bot makes.")
    shown = [_issue(ctx, request, target) for target in _one_per_login(ctx, units)]
    with ctx.transaction() as session:
        audit(
            ctx,
            session,
            user_id,
            AuditAction.CREDENTIALS_SHOWN,
            request,
            targets=[s.description for s in shown],
            logins=[s.credentials.user for s in shown],
        )
    return request, shown


def _check(ctx: Context, request: AccessRequest, user_id: str) -> None:
    if user_id != request.requester_id:
        raise NotAllowed(f"Only the person who holds {request.id} can see its credentials.")
    if (
        request.status != Status.ACTIVE
        or request.expires_at is None
        or request.expires_at <= ctx.now()
    ):
        raise WrongState(
            f"{request.id} is {request.status}, not active: its credentials ended with it."
        )
    person = ctx.directory.person(user_id)
    people.check_identity(ctx, person, "see credentials")
    if person.email.lower() != request.requester_email.lower():
        raise NotAllowed(
            f"Your Slack email changed since {request.id} was granted to "
            f"{request.requester_email}, so its credentials are not shown."
        )


def _one_per_login(ctx: Context, units: list[RequestTarget]) -> list[RequestTarget]:
    """One unit per login and server: a target split into one unit per role has one
    login, and a second password set on it would undo the first."""
    chosen: dict[tuple[str, str, str | None], RequestTarget] = {}
    for target in units:
        if target.status != TargetStatus.GRANTED:
            raise WrongState(
                f"{target.description} is {target.status}, not granted: no credentials for it."
            )
        provider, spec = provider_calls.spec(ctx, target)
        chosen.setdefault((target.provider, provider.endpoint(spec), target.principal), target)
    return list(chosen.values())


def _issue(ctx: Context, request: AccessRequest, target: RequestTarget) -> Shown:
    provider, spec = provider_calls.spec(ctx, target)
    principal = dataclasses.replace(provider_calls.principal(request), recorded=target.principal)
    try:
        made = provider.issue_credentials(principal, spec, provider_calls.grant_context(request))
    except ProviderError as exc:
        raise CredentialsUnavailable(
            f"No credentials for {target.description} now: {exc}"
            + (" Try again in a minute." if exc.retryable else "")
        ) from None
    if made is None:  # the target's config changed since the grant
        raise WrongState(f"{target.description} no longer has passwords made by jit-bot.")
    return Shown(target.description, made)
