"""Delivers queued Slack calls from the database outbox.

Messages are written in the same transaction as the state change they report. This
worker sends them in order per ordering key (one request's messages never overtake each
other) and different keys side by side (one person's DM does not wait behind another
request's posts), waits out a 429's Retry-After, backs off on 5xx and network errors, and
never drops a message for a transient failure: a Slack outage delays posts and loses none
(``bot.slack.outbox_marks`` records each attempt).
While the bot works off a backlog of revocations (``hold``), posts wait: taking access
away on time matters more than saying so a few seconds sooner.

Some calls are queued as markers and built when they are sent (``builders``): a Home tab's
``views.publish`` shows the database as it is then, and the audit channel's lines go out
several to a post when they come faster than one post. The markers queued after one under
its key are built with it, into one call that stands for as many of them as it says.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from itertools import takewhile
from typing import Any, NamedTuple

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from sqlalchemy import bindparam, func, literal_column, select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlmodel import col

from bot.clock import Clock
from bot.daemon_pool import DaemonPool
from bot.slack.outbox_claims import CLAIM, Call, Claims
from bot.slack.outbox_marks import Marks
from bot.storage.lists import among
from bot.storage.models import OutboxMessage, OutboxStatus, SlackMessage, table_of

log = logging.getLogger(__name__)

# How long the worker waits before looking again while it is told to hold.
_HOLD_WAIT = 0.05
# How many batches one look reads at most, looking past keys it cannot hand over.
_PAGES = 10
# Core statements on the table: the worker's updates need none of the ORM's bookkeeping.
_OUTBOX = table_of(OutboxMessage)
# "Pending" as a constant in the looks for pending messages, not a parameter: the index
# of the pending messages (migration 0016) is partial, and a plan made for any status (a
# prepared statement's generic plan) could not use it. Statements that name their rows'
# ids keep it a parameter: the primary key finds them, however many are pending.
_PENDING = _OUTBOX.c.status == literal_column(f"'{OutboxStatus.PENDING}'")


class Built(NamedTuple):
    """The call a builder made of markers: its method and payload (None: nothing to send),
    and how many of the markers it stands for (the first ``used`` of those it was given)."""

    method: str
    payload: dict[str, Any] | None
    used: int


#: Builds one call, when it is sent, from the markers queued under one key with one method:
#: the first is the one due, the rest were queued after it (see ``OutboxWorker.builders``).
Builder = Callable[[Sequence[dict[str, Any]]], Built]


@dataclass(eq=False)
class OutboxWorker:
    """Sends what the outbox holds, in order per key, retrying what Slack refuses for
    now. One thread looks for due messages, woken when a transaction that queued
    something commits; up to ``senders`` threads send them, one key each at a time."""

    sessions: sessionmaker[Session]
    client: WebClient
    clock: Clock
    _: KW_ONLY
    batch: int = 200
    idle_wait: float = 1.0
    senders: int = 8
    hold: Callable[[], bool] = lambda: False
    #: Calls queued as markers and built when sent (the marker's method → its builder).
    #: A builder that raises is retried like a 5xx.
    builders: Mapping[str, Builder] = field(default_factory=dict)
    _wake: threading.Event = field(default_factory=threading.Event, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _pass_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)
    _pool: DaemonPool | None = field(default=None, init=False)
    # key → the newest message handed over with it: the keys a sender has now, which no
    # other sender touches.
    _sending: dict[str, int] = field(default_factory=dict, init=False)
    # Keys given newer due messages while a sender had them: looked at again after it.
    _missed: set[str] = field(default_factory=set, init=False)
    _sent: threading.Condition = field(default_factory=threading.Condition, init=False)

    def __post_init__(self) -> None:
        # Built once: the look for due messages runs after every commit that queued one.
        self._scan = (
            select(_OUTBOX.c.id, _OUTBOX.c.ordering_key, _OUTBOX.c.next_attempt_at)
            .where(_PENDING, _OUTBOX.c.id > bindparam("after"))
            .order_by(_OUTBOX.c.id)
            .limit(self.batch)
        )
        self._marks = Marks(self.sessions, self.clock)
        self._claims = Claims(self.sessions, self.clock, frozenset(self.builders))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="jit-outbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)
        if self._pool is not None:  # senders stop after the message at hand
            self._pool.shutdown()

    def wake(self) -> None:
        self._wake.set()

    def pending(self) -> int:
        with self.sessions.begin() as session:
            count = session.scalar(select(func.count()).select_from(OutboxMessage).where(_PENDING))
        return int(count or 0)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.hold():
                # Revoking a backlog of access comes first; the posts wait a little.
                self._stop.wait(_HOLD_WAIT)
                continue
            # Cleared before looking: a commit (or a sender finishing) from now on wakes it.
            self._wake.clear()
            try:
                with self._pass_lock:
                    look = self._dispatch()
            except Exception:  # keep the worker alive; the message stays queued
                log.exception("outbox pass failed")
                look = _Look([], more=False)
            # At once only if this look handed keys over and read a full batch: there may
            # be more due behind it. Otherwise a commit that queues something, or a sender
            # done with a key that got more meanwhile, wakes it.
            if not (look.sending and look.more):
                self._wake.wait(self.idle_wait)

    def deliver_due(self) -> int:
        """One pass over due messages, once the senders are idle; returns how many were
        delivered by it."""
        with self._pass_lock:
            with self._sent:  # a sender's call ends within its claim
                self._sent.wait_for(lambda: not self._sending, CLAIM.total_seconds())
            return sum(sending.result() for sending in self._dispatch().sending)

    def _dispatch(self) -> _Look:
        """Hand each key with due messages that no sender has now to a sender, its first
        message claimed; the senders' futures tell how many each delivered. Looked for
        often (after every commit that queued something), so the look is light: ids and
        keys first, whole rows only for the messages handed over."""
        now = self.clock.now()
        keys: list[str] = []
        try:
            with self.sessions.begin() as session:
                pending, more = self._read_pending(session, now)
                due = _due_by_key(pending, now)
                keys = self._hand_over(due)
                if not keys:
                    return _Look([], more)
                ids = [message_id for key in keys for message_id in due[key]]
                messages = session.scalars(
                    select(OutboxMessage)
                    .where(among(session, col(OutboxMessage.id), ids))
                    .order_by(col(OutboxMessage.id))
                ).all()
                # Judged due again as loaded: another replica may have claimed a message
                # since it was listed.
                by_key: dict[str, list[OutboxMessage]] = {key: [] for key in keys}
                late: set[str] = set()
                for message in messages:
                    if message.ordering_key in late or message.next_attempt_at > now:
                        late.add(message.ordering_key)
                    else:
                        by_key[message.ordering_key].append(message)
                heads = self._claims.first(session, [run[0] for run in by_key.values() if run], now)
        except BaseException:  # no sender got them: the next look hands them over again
            self._give_back(keys)
            raise
        if self._pool is None:
            self._pool = DaemonPool(self.senders, "jit-outbox-send")
        # A key whose first message is not claimed is left to whoever has it (or to wait).
        sending = [
            self._pool.submit(self._send_in_order, key, run, heads.get(run[0].id) if run else None)
            for key, run in by_key.items()
        ]
        return _Look(sending, more)

    def _read_pending(self, session: Session, now: datetime) -> tuple[list[Any], bool]:
        """The pending messages (id, key, when due) in order, a batch at a time, and
        whether the last batch was full (more may be pending behind it). Past the first
        batch only while every key read so far is a sender's now or waits: a backlog
        under one key (a rate-limited channel's lines) must not hide the messages of
        other keys queued behind it. At most ``_PAGES`` batches."""
        rows: list[Any] = []
        after = 0
        for _ in range(_PAGES):
            page = session.execute(self._scan, {"after": after}).all()
            rows.extend(page)
            if len(page) < self.batch:
                return rows, False
            with self._sent:
                if any(key not in self._sending for key in _due_by_key(rows, now)):
                    break
            after = page[-1].id
        return rows, True

    def _hand_over(self, due: Mapping[str, list[int]]) -> list[str]:
        """The keys with due messages that no sender has now, marked as had."""
        with self._sent:
            keys = [key for key in due if key not in self._sending]
            self._sending.update((key, due[key][-1]) for key in keys)
            # Keys with due messages a sender has now: looked at again when it is done.
            # (Not the messages handed over already, which are still pending while they
            # are sent: looking again for those would look once per message.)
            self._missed.update(
                key
                for key, ids in due.items()
                if key in self._sending and key not in keys and ids[-1] > self._sending[key]
            )
        return keys

    def _give_back(self, keys: Sequence[str]) -> None:
        with self._sent:
            for key in keys:
                self._sending.pop(key, None)
            self._sent.notify_all()

    def _send_in_order(
        self, key: str, messages: Sequence[OutboxMessage], first: Call | None
    ) -> int:
        """Send one key's messages in order, up to the first that has to wait: the first as
        the dispatcher claimed it (None: it did not), each of the others claimed in the
        transaction that marks the one before it sent."""
        sent = 0
        call = first  # the message at hand, claimed and ready to send
        built: set[int | None] = set()  # sent already, as part of a call built with another
        try:
            if call is not None and (self.hold() or self._stop.is_set()):
                self._claims.release(messages[0], call)  # posts are to wait: this one too
                call = None
            for index, message in enumerate(messages):
                if message.id in built:
                    continue
                if call is None and index > 0:  # not claimed as the one before was marked
                    with self.sessions.begin() as session:
                        call = self._take(session, message)
                if call is None:  # to wait, or another worker's (the key is blocked)
                    break
                build = self.builders.get(message.method)
                if build is not None:
                    later = _same_method_after(messages, index)
                    delivered, with_it = self._deliver_built(message, build, later)
                    built.update(with_it)
                    call = None
                else:
                    following = messages[index + 1] if index + 1 < len(messages) else None
                    delivered, call = self._deliver(message, call, following)
                if not delivered:
                    break
                sent += 1
        except Exception:  # the message stays queued and is tried again
            log.exception("sending the outbox's %s messages failed", key)
        finally:
            with self._sent:
                self._sending.pop(key, None)
                missed = key in self._missed
                self._missed.discard(key)
                self._sent.notify_all()
            if missed:  # more was queued under this key meanwhile
                self._wake.set()
        return sent

    def _take(self, session: Session, message: OutboxMessage | None) -> Call | None:
        """Claim the message in the caller's transaction (see ``Claims.next``). None if
        there is no message, posts are to wait, or another worker has it."""
        if message is None or self.hold() or self._stop.is_set():
            return None
        return self._claims.next(session, message)

    def _deliver(
        self, message: OutboxMessage, call: Call, following: OutboxMessage | None
    ) -> tuple[bool, Call | None]:
        """Send the claimed message: whether it is done with (sent, or refused for good) and,
        if sent, ``following`` claimed as it was marked (see ``_take``)."""
        if call.payload is None:
            self._marks.finish(message, OutboxStatus.DEAD, "the message to update was never posted")
            return True, None
        try:
            response = self.client.api_call(message.method, json=call.payload)
        except SlackApiError as exc:
            return self._marks.failed(message, exc), None
        except (SlackRequestError, OSError) as exc:
            self._marks.retry(message, f"network: {exc}", None)
            return False, None
        with self.sessions.begin() as session:
            if message.method == "chat.postMessage" and message.message_ref:
                session.merge(
                    SlackMessage(
                        ref=message.message_ref,
                        channel=str(response["channel"]),
                        ts=str(response["ts"]),
                    )
                )
                session.flush()  # the next message may update this one: it reads the row
            self._marks.mark(session, message, OutboxStatus.SENT, None)
            return True, self._take(session, following)

    def _deliver_built(
        self,
        message: OutboxMessage,
        build: Builder,
        later: Sequence[OutboxMessage],
    ) -> tuple[bool, list[int | None]]:
        """Build the call from the marker and the markers of its method queued right after it
        under its key (as the look found them), and send it: whether it is done with, and
        the ids of the later markers it stood for, marked sent with it."""
        try:
            call = build([message.payload, *(other.payload for other in later)])
        except Exception as exc:  # the database or a lookup failed: try again later
            log.exception("building %s #%s failed", message.method, message.id)
            self._marks.retry(message, f"build: {exc}", None)
            return False, []
        if call.payload is not None:
            try:
                self.client.api_call(call.method, json=call.payload)
            except SlackApiError as exc:
                return self._marks.failed(message, exc), []
            except (SlackRequestError, OSError) as exc:
                self._marks.retry(message, f"network: {exc}", None)
                return False, []
        with_it = [other.id for other in later[: max(call.used - 1, 0)]]
        with self.sessions.begin() as session:
            self._marks.mark(session, message, OutboxStatus.SENT, None)
            if with_it:
                session.execute(
                    update(_OUTBOX)
                    .where(
                        among(session, _OUTBOX.c.id, with_it),
                        _OUTBOX.c.status == OutboxStatus.PENDING,
                    )
                    .values(status=OutboxStatus.SENT, sent_at=self.clock.now())
                )
        return True, with_it


class _Look(NamedTuple):
    """What a look for due messages started: a sender per key handed over (each one's
    future tells how many it delivered), and whether it read a full batch (``more``)."""

    sending: list[Future[int]]
    more: bool


def _due_by_key(queued: Sequence[Any], now: datetime) -> dict[str, list[int]]:
    """key → the ids of its messages due now, in order, up to the first that is not
    (its later messages wait for it)."""
    due: dict[str, list[int]] = {}
    blocked: set[str] = set()
    for message_id, key, next_attempt_at in queued:
        if key in blocked:
            continue
        if next_attempt_at > now:
            blocked.add(key)
            continue
        due.setdefault(key, []).append(message_id)
    return due


def _same_method_after(messages: Sequence[OutboxMessage], index: int) -> list[OutboxMessage]:
    """The messages right after the one at ``index`` queued with its method."""
    method = messages[index].method
    return list(takewhile(lambda message: message.method == method, messages[index + 1 :]))
