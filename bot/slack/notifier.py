"""The Notifier that tells people through Slack, by way of the database outbox."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.notify import RequesterNews
from bot.slack import blocks
from bot.slack.outbox import enqueue
from bot.storage.models import AccessRequest, AuditEvent, RequestTarget, Vote


class SlackNotifier:
    def __init__(
        self, clock: Clock, audit_channel: str | None, on_enqueue: Callable[[], None]
    ) -> None:
        self._clock = clock
        self._audit_channel = audit_channel
        self._on_enqueue = on_enqueue

    def ask_approvers(
        self, session: Session, request: AccessRequest, targets: Sequence[RequestTarget]
    ) -> None:
        text, body = blocks.approver_message(request, targets, [])
        for approver in request.approvers:
            self._send(
                session,
                request.id,
                "chat.postMessage",
                {"channel": approver, "text": text, "blocks": body},
                ref=_approver_ref(request.id, approver),
            )

    def refresh_approver_messages(
        self,
        session: Session,
        request: AccessRequest,
        targets: Sequence[RequestTarget],
        votes: Sequence[Vote],
    ) -> None:
        if not request.approvers:  # auto-approved: nobody was asked
            return
        text, body = blocks.approver_message(request, targets, votes)
        for approver in request.approvers:
            self._send(
                session,
                request.id,
                "chat.update",
                {"text": text, "blocks": body},
                ref=_approver_ref(request.id, approver),
            )

    def tell_requester(
        self,
        session: Session,
        request: AccessRequest,
        targets: Sequence[RequestTarget],
        votes: Sequence[Vote],
        news: RequesterNews,
    ) -> None:
        text, body = blocks.requester_message(request, targets, votes, news)
        granted_ref = f"granted:{request.id}"
        if news == RequesterNews.ENDED:
            # Take the "End access now" button off the message that announced the grant.
            self._send(
                session, request.id, "chat.update", {"text": text, "blocks": body}, granted_ref
            )
        self._send(
            session,
            request.id,
            "chat.postMessage",
            {"channel": request.requester_id, "text": text, "blocks": body},
            ref=granted_ref if news == RequesterNews.GRANTED else None,
        )

    def post_audit(self, session: Session, event: AuditEvent) -> None:
        if not self._audit_channel:
            return
        self._send(
            session,
            event.request_id or "audit",
            "chat.postMessage",
            {"channel": self._audit_channel, "text": blocks.audit_line(event)},
        )

    def _send(
        self,
        session: Session,
        key: str,
        method: str,
        payload: dict[str, object],
        ref: str | None = None,
    ) -> None:
        enqueue(session, self._clock, key=key, method=method, payload=payload, message_ref=ref)
        # Wake the worker once this transaction has committed, not before.
        session.info.setdefault("after_commit", []).append(self._on_enqueue)


def _approver_ref(request_id: str, approver: str) -> str:
    return f"approver:{request_id}:{approver}"
