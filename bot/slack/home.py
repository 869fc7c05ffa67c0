"""Building a Home tab when the outbox sends it.

The notifier queues a marker per person (``{"user_id": …}``, method ``views.publish``)
in the transaction of the change; ``HomeTab.build`` turns it into the
``views.publish`` call when it is delivered, from the database as it is then, so a Home
is never older than its last delivery and several queued for one person are sent as one.

The admins' sections are ``ADMIN_SECTIONS``: each reads what it shows and renders it, so
one more section is one more line there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from slack_sdk.models.blocks import Block

from bot.errors import DirectoryUnavailable, JitError
from bot.service import AccessService
from bot.slack import blocks
from bot.slack.outbox import Built

log = logging.getLogger(__name__)

#: One admins' section: (the service, the viewer) → its blocks.
AdminSection = Callable[[AccessService, str], list[Block]]


def _everyone_active(service: AccessService, viewer: str) -> list[Block]:
    return blocks.everyone_active(service.everyone_active())


def _reviews_waiting(service: AccessService, viewer: str) -> list[Block]:
    return blocks.reviews_waiting(service.reviews_waiting(), viewer)


def _week_figures(service: AccessService, viewer: str) -> list[Block]:
    return blocks.week_figures(service.week_figures())


#: The sections only admins see, in order.
ADMIN_SECTIONS: tuple[AdminSection, ...] = (_everyone_active, _reviews_waiting, _week_figures)


class HomeTab:
    """The outbox's builder of ``views.publish`` calls (``OutboxWorker.builders``)."""

    def __init__(self, service: AccessService) -> None:
        self._service = service

    def build(self, markers: Sequence[dict[str, Any]]) -> Built:
        """One call for all the markers: the Home they name, published as it reads now."""
        marker: dict[str, Any] = {}
        for each in markers:  # the later wins
            marker.update(each)
        return Built("views.publish", self._payload(marker), len(markers))

    def _payload(self, marker: dict[str, Any]) -> dict[str, Any] | None:
        """The call that publishes the Home the marker names; None when there is none to
        show (the person is gone)."""
        user = str(marker.get("user_id") or "")
        if not user:
            log.error("a Home marker names nobody: %s", sorted(marker))
            return None
        try:
            view = self.view(user)
        except DirectoryUnavailable:
            raise  # Slack did not answer who is who: the outbox tries again later
        except JitError as exc:
            log.warning("no Home for %s: %s", user, exc)
            return None
        return {"user_id": user, "view": view}

    def view(self, user: str) -> dict[str, Any]:
        home = self._service.home(user)
        sections = ADMIN_SECTIONS if home.admin else ()
        admin = [block for section in sections for block in section(self._service, user)]
        return blocks.home_view(home, admin)
