"""Request templates: a finished request as the start of a new one ("Request again").

Pure decisions, like ``bot.policy``: whose finished request may be asked for again, and
what the request form opens with, from the config as it is now and the person's place
in it. Nothing here decides the new request: the form is submitted, and checked, as any
other. Reading the request is ``bot.operations.requesting_again``.

The form opens with the request's role, environment, duration and reason, except where
the config has moved on since:

- a role that is gone, or that the person may no longer request, is left out: the form
  opens with the first role they may request, as ``/jit request`` does, and that role's
  first environment and default duration;
- an environment the role no longer has, or where no rule covers the person now, is left
  unchosen;
- a duration past the role's maximum now is cut to the maximum.

Each is a ``Note``, for the form to say why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from bot.config import JitConfig
from bot.errors import NotAllowed, NotEligible, WrongState
from bot.storage.models import TERMINAL, AccessRequest

Covered = Callable[[str, str], bool]
"""Whether a rule of approvers.yaml covers the person for this role and environment."""


class Note(StrEnum):
    """Why the form differs from the request it was filled in from."""

    ROLE_GONE = "role_gone"  # roles.yaml no longer has the role
    ROLE_NOT_YOURS = "role_not_yours"  # the person may no longer request it
    ENVIRONMENT_GONE = "environment_gone"  # the role no longer has the environment
    ENVIRONMENT_NOT_COVERED = "environment_not_covered"  # no rule covers the person there
    DURATION_CAPPED = "duration_capped"  # longer than the role's maximum now


@dataclass(frozen=True)
class RequestTemplate:
    """What the request form opens with, filled in from ``source``."""

    source: AccessRequest
    role: str
    #: None: the environment asked for is not offered now; the person chooses one.
    environment: str | None
    duration: timedelta
    reason: str
    notes: tuple[Note, ...]


def check_repeatable(request: AccessRequest, user_id: str) -> None:
    """Raise unless ``user_id`` may ask again for what ``request`` asked: their own
    request, finished, and not an extension (which asked for more time, not for access)."""
    if request.requester_id != user_id:
        raise NotAllowed(
            f"{request.id} is someone else's request: only the person who asked for it can "
            "request it again. Nothing was opened."
        )
    if request.extends is not None:
        raise WrongState(
            f"{request.id} asked to extend {request.extends}; request again from "
            f"{request.extends} instead."
        )
    if request.status not in TERMINAL:
        raise WrongState(
            f"{request.id} is {request.status}, not finished: it can be requested again "
            "once it has ended. `/jit list` shows where it stands."
        )


def template_of(
    config: JitConfig, request: AccessRequest, requestable: Sequence[str], covered: Covered
) -> RequestTemplate:
    """The form for asking again for ``request``, given the roles the person may request
    now (in the order the form lists them) and which rules cover them."""
    if request.role not in config.roles or request.role not in requestable:
        if not requestable:
            raise NotEligible(
                "There is no role you may request now. `/jit roles` shows who may request what."
            )
        gone = request.role not in config.roles
        role = requestable[0]
        return RequestTemplate(
            source=request,
            role=role,
            environment=config.environments(role)[0],
            duration=config.roles[role].effective_default,
            reason=request.reason,
            notes=(Note.ROLE_GONE if gone else Note.ROLE_NOT_YOURS,),
        )
    notes: list[Note] = []
    environment: str | None = request.environment
    if environment not in config.environments(request.role):
        environment = None
        notes.append(Note.ENVIRONMENT_GONE)
    elif not covered(request.role, environment):
        environment = None
        notes.append(Note.ENVIRONMENT_NOT_COVERED)
    duration = timedelta(seconds=request.duration_seconds)
    maximum = config.roles[request.role].max_duration
    if duration > maximum:
        duration = maximum
        notes.append(Note.DURATION_CAPPED)
    return RequestTemplate(
        source=request,
        role=request.role,
        environment=environment,
        duration=duration,
        reason=request.reason,
        notes=tuple(notes),
    )
