"""What every operation works with: the bot's dependencies and this process's claims on
the requests it is granting or revoking, as one object built once by ``AccessService``
and passed to each operation. No globals: two services in one process (the tests run
several replicas) each have their own."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.config import JitConfig
from bot.directory import Directory
from bot.notify import Notifier
from bot.revoker import Revoker
from bot.session_ends import SessionEnds
from providers.base import Provider


class ExpiryScheduler:
    """Where the service asks for a revocation at a given instant (APScheduler in the
    runtime). The database stays the truth: the sweeper catches anything missed."""

    def schedule(self, request_id: str, at: datetime) -> None:  # pragma: no cover
        raise NotImplementedError

    def cancel(self, request_id: str) -> None:  # pragma: no cover
        raise NotImplementedError


#: How long this process's claim on a request it is granting or revoking lasts unless
#: renewed: short enough that another replica takes over soon after a crash.
LEASE = timedelta(seconds=8)


@dataclass(frozen=True)
class Backlog:
    """A backlog of overdue grants the sweeper is working off: when it was found, and
    when its last batch was done."""

    since: datetime
    progress: datetime | None = None


@dataclass(eq=False)
class Context:
    config: JitConfig
    sessions: sessionmaker[Session]
    directory: Directory
    providers: Mapping[str, Provider]
    clock: Clock
    notify: Notifier
    expiry: ExpiryScheduler
    background: Callable[[Callable[[], None]], None]
    # Revoke calls run there, per provider endpoint, each revocation within a deadline.
    revoker: Revoker
    session_ends: SessionEnds
    # How long a claim on a request lasts without a heartbeat (see leases).
    lease: timedelta = LEASE
    # The requests a thread of this process is granting or revoking (see leases.claim).
    busy: set[str] = field(default_factory=set)
    # request id → (its version when this process took it, when that was last
    # confirmed): a thread that lost its lease to another process stops, see leases.owned.
    fences: dict[str, tuple[int, datetime]] = field(default_factory=dict)
    busy_lock: threading.Lock = field(default_factory=threading.Lock)
    backlog: Backlog | None = None  # the backlog the sweeper is working off
    synced_at: datetime | None = None
    last_holder: str = ""  # where the next sweep's look at who holds access starts

    def now(self) -> datetime:
        return self.clock.now()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self.sessions.begin() as session:
            yield session
