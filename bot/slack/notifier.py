"""The Notifier that tells people through Slack, by way of the database outbox."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import timedelta

from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.names import Verdict
from bot.notify import RequesterNews, RequestState, asked
from bot.slack import audit_posts, blocks
from bot.slack.queueing import THREAD_OF, enqueue
from bot.storage.models import AccessRequest, AuditEvent, BreakGlassReview

#: One Web API call for the outbox: the method, its arguments, and the reference under
#: which later calls (chat.update) find the message it posts.
_Call = tuple[str, Mapping[str, object], str | None]


class SlackNotifier:
    def __init__(
        self,
        clock: Clock,
        audit_channel: str | None,
        on_enqueue: Callable[[], None],
        *,
        security_channel: str | None = None,
    ) -> None:
        self._clock = clock
        self._audit_channel = audit_channel
        self._on_enqueue = on_enqueue
        # Where break-glass is announced besides the rule's approvers (JIT_SECURITY_CHANNEL,
        # else the audit channel).
        self._security_channel = security_channel or audit_channel

    def ask_approvers(self, session: Session, state: RequestState) -> None:
        request = state.request
        text, body = blocks.approver_message(request, state.targets, [], state.original)
        calls: list[_Call] = [
            (
                "chat.postMessage",
                {"channel": approver, "text": text, "blocks": body},
                _approver_ref(request.id, approver),
            )
            for approver in asked(request.approvers, request.quiet_approvers)
        ]
        if request.watchers:
            text, body = blocks.approver_message(
                request, state.targets, [], state.original, heading=blocks.WATCHING, buttons=False
            )
            calls += [
                (
                    "chat.postMessage",
                    {"channel": watcher, "text": text, "blocks": body},
                    _watcher_ref(request.id, watcher),
                )
                for watcher in request.watchers
            ]
        self._send(session, request.id, *calls)

    def remind_approvers(
        self, session: Session, request: AccessRequest, approvers: Sequence[str], waited: timedelta
    ) -> None:
        text = blocks.reminder_text(request, waited)
        self._send(
            session,
            request.id,
            *(_reply(_approver_ref(request.id, a), a, text) for a in approvers),
        )

    def escalate(
        self,
        session: Session,
        state: RequestState,
        group: str,
        added: Sequence[str],
        *,
        informed: Sequence[str],
    ) -> None:
        request = state.request
        waited = self._clock.now() - request.created_at
        heading = blocks.escalation_heading(group, waited)
        text, body = blocks.approver_message(
            request, state.targets, state.votes, state.original, heading=heading
        )
        calls: list[_Call] = [
            (
                "chat.postMessage",
                {"channel": a, "text": text, "blocks": body},
                _approver_ref(request.id, a),
            )
            for a in added
        ]
        told = blocks.escalated_text(request, group, added, waited)
        calls += [
            _reply(_approver_ref(request.id, a), a, told)
            for a in asked(informed, request.quiet_approvers)
        ]
        self._send(session, request.id, *calls)

    def announces_break_glass(self) -> bool:
        return bool(self._security_channel)

    def alert_break_glass(self, session: Session, state: RequestState) -> None:
        request = state.request
        text, body, bar = blocks.break_glass_alert(request, state.targets)
        alert = {"text": text, "blocks": body, "attachments": bar}
        calls: list[_Call] = []
        if self._security_channel:  # first: one slow DM must not hold the channel back
            post = {"channel": self._security_channel, **alert}
            calls.append(("chat.postMessage", post, _security_ref(request.id)))
        calls += [
            ("chat.postMessage", {"channel": a, **alert}, _approver_ref(request.id, a))
            for a in request.approvers
        ]
        self._send(session, request.id, *calls)

    def ask_reviewers(
        self, session: Session, request: AccessRequest, reviewers: Sequence[str], *, reminder: bool
    ) -> None:
        text, body = blocks.review_message(request, None, reminder=reminder)
        # The first DM is updated once reviewed; a reminder's buttons are answered at
        # click time like any other.
        self._send(
            session,
            request.id,
            *(
                (
                    "chat.postMessage",
                    {"channel": reviewer, "text": text, "blocks": body},
                    None if reminder else _review_ref(request.id, reviewer),
                )
                for reviewer in reviewers
            ),
        )

    def tell_reviewed(
        self,
        session: Session,
        request: AccessRequest,
        review: BreakGlassReview,
        reviewers: Sequence[str],
    ) -> None:
        text, body = blocks.review_message(request, review, reminder=False)
        update = {"text": text, "blocks": body}
        calls: list[_Call] = [
            ("chat.update", update, _review_ref(request.id, r)) for r in reviewers
        ]
        if review.verdict == Verdict.NOT_JUSTIFIED and self._security_channel:
            text, body = blocks.not_justified_alert(request, review)
            post = {"channel": self._security_channel, "text": text, "blocks": body}
            calls.insert(0, ("chat.postMessage", post, None))
        self._send(session, request.id, *calls)

    def refresh_approver_messages(self, session: Session, state: RequestState) -> None:
        request = state.request
        if request.break_glass:
            self._refresh_alert(session, state)
            return
        if not request.approvers:  # auto-approved: nobody was asked
            return
        text, body = blocks.approver_message(request, state.targets, state.votes, state.original)
        update = {"text": text, "blocks": body}
        calls: list[_Call] = [
            ("chat.update", update, _approver_ref(request.id, a))
            for a in asked(request.approvers, request.quiet_approvers)
        ]
        if request.watchers:
            text, body = blocks.approver_message(
                request,
                state.targets,
                state.votes,
                state.original,
                heading=blocks.WATCHING,
                buttons=False,
            )
            shown = {"text": text, "blocks": body}
            calls += [("chat.update", shown, _watcher_ref(request.id, w)) for w in request.watchers]
        self._send(session, request.id, *calls)

    def _refresh_alert(self, session: Session, state: RequestState) -> None:
        """A break-glass alert, wherever it was posted, shows the request as it is now."""
        request = state.request
        text, body, bar = blocks.break_glass_alert(request, state.targets)
        update = {"text": text, "blocks": body, "attachments": bar}
        refs = [_approver_ref(request.id, a) for a in request.approvers]
        if self._security_channel:
            refs.append(_security_ref(request.id))
        self._send(session, request.id, *(("chat.update", update, ref) for ref in refs))

    def tell_requester(self, session: Session, state: RequestState, news: RequesterNews) -> None:
        request = state.request
        text, body = blocks.requester_message(
            request, state.targets, state.votes, news, state.original
        )
        granted_ref = f"granted:{request.id}"
        calls: list[_Call] = []
        if news == RequesterNews.EXTENDED and state.original is not None:
            # The message that announced the grant shows the new end.
            original = state.original
            shown, shown_body = blocks.requester_message(
                original, state.targets, [], RequesterNews.GRANTED
            )
            update = {"text": shown, "blocks": shown_body}
            calls.append(("chat.update", update, f"granted:{original.id}"))
        if news == RequesterNews.ENDED:
            # Take the "End access now" button off the message that announced the grant.
            calls.append(("chat.update", {"text": text, "blocks": body}, granted_ref))
        post = {"channel": request.requester_id, "text": text, "blocks": body}
        calls.append(
            ("chat.postMessage", post, granted_ref if news == RequesterNews.GRANTED else None)
        )
        self._send(session, request.id, *calls)

    def nudge_requester(self, session: Session, state: RequestState, left: timedelta) -> None:
        request = state.request
        text, body = blocks.nudge_message(request, left)
        post = {"channel": request.requester_id, "text": text, "blocks": body}
        self._send(session, request.id, ("chat.postMessage", post, None))

    def post_audit(self, session: Session, event: AuditEvent) -> None:
        if not self._audit_channel:
            return
        # Under the channel's own key: people's DMs never wait behind its posts, and the
        # lines queued while one post is on its way go out together in the next.
        line = audit_posts.marker(self._audit_channel, blocks.audit_line(event))
        self._send(session, audit_posts.KEY, (audit_posts.METHOD, line, None))

    def refresh_homes(self, session: Session, users: Collection[str]) -> None:
        for user in users:
            # A marker, not a view: the outbox builds the Home when it sends it, from the
            # database as it is then (bot/slack/home.py), one person's in order.
            self._send(session, f"home:{user}", ("views.publish", {"user_id": user}, None))

    def _send(self, session: Session, key: str, *calls: _Call) -> None:
        """Queue ``calls`` in order under ``key`` in the caller's transaction."""
        if not calls:
            return
        for method, payload, ref in calls:
            enqueue(
                session, self._clock, key=key, method=method, payload=dict(payload), message_ref=ref
            )
        # Wake the worker once this transaction has committed, not before (one wake for
        # all the calls the transaction queues).
        callbacks = session.info.setdefault("after_commit", [])
        if self._on_enqueue not in callbacks:
            callbacks.append(self._on_enqueue)


def _approver_ref(request_id: str, approver: str) -> str:
    return f"approver:{request_id}:{approver}"


def _watcher_ref(request_id: str, watcher: str) -> str:
    return f"watcher:{request_id}:{watcher}"


def _reply(ref: str, user: str, text: str) -> _Call:
    """A threaded reply to the message posted under ``ref`` (a new DM to ``user`` if that
    one was never posted)."""
    return ("chat.postMessage", {"channel": user, "text": text, THREAD_OF: ref}, None)


def _review_ref(request_id: str, reviewer: str) -> str:
    return f"review:{request_id}:{reviewer}"


def _security_ref(request_id: str) -> str:
    return f"security:{request_id}"
