"""The composition root: read settings, build every client, wire everything, in one place.

Nothing else in the bot builds a client or reads the environment.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from bot import audit
from bot.audit_key import AuditKey
from bot.audit_key import for_bot as audit_key_for_bot
from bot.clock import Clock, SystemClock
from bot.config import ConfigError, ConfigIssue, JitConfig, Loc, line_in, load_config
from bot.drift import DriftChecker
from bot.google_groups import GoogleGroups
from bot.operations import escalating, nudging, reminding, reviewing
from bot.operations.context import Context
from bot.revoker import Revoker
from bot.scheduler import HORIZON, LOOK_AHEAD_EVERY, Periodic, Timers
from bot.service import AccessService
from bot.session_ends import SessionEnds
from bot.settings import Settings
from bot.slack import audit_posts, handlers, outbox_retention
from bot.slack.directory import SlackDirectory
from bot.slack.edge import keep_request_bodies_out_of_logs
from bot.slack.home import HomeTab
from bot.slack.notifier import SlackNotifier
from bot.slack.outbox import OutboxWorker
from bot.slack.outbox_retention import OutboxRetention
from bot.slack.workspace import WorkspaceGuard
from bot.storage.db import make_engine, upgrade
from providers.aws import AwsClients, AwsProvider
from providers.azure import AzureClients, AzureProvider
from providers.base import Provider, ProviderError
from providers.gcp import GcpProvider
from providers.kubernetes import KubernetesProvider
from providers.mysql import MysqlProvider
from providers.postgresql import PostgresProvider
from providers.webhook import WebhookProvider

log = logging.getLogger(__name__)


class TrackedExecutor(ThreadPoolExecutor):
    """A thread pool that knows how much work is in flight, so tests (and shutdown) can
    wait for the bot to be idle instead of sleeping."""

    def __init__(self, max_workers: int, name: str) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix=name)
        self._in_flight = 0
        self._idle = threading.Condition()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._idle:
            self._in_flight += 1
        try:
            return super().submit(self._tracked, fn, *args, **kwargs)
        except BaseException:
            self._done()
            raise

    def _tracked(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception:
            log.exception("background task failed")
            raise
        finally:
            self._done()

    def _done(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)


class TrackedJob:
    """A periodic job that says when it has run and whether it is running, so settle()
    can wait for the start-up sweep (whatever expired while the bot was down is handled
    before the bot counts as settled) and for a sweep in progress."""

    def __init__(self, job: Callable[[], object]) -> None:
        self._job = job
        self._runs = 0
        self._running = False
        self._idle = threading.Condition()

    def __call__(self) -> None:
        with self._idle:
            self._running = True
        try:
            self._job()
        finally:
            with self._idle:
                self._running = False
                self._runs += 1
                self._idle.notify_all()

    @property
    def runs(self) -> int:
        """How many runs have finished."""
        with self._idle:
            return self._runs

    def wait_ran(self, timeout: float) -> bool:
        """Wait until it has run at least once and is not running."""
        with self._idle:
            return self._idle.wait_for(lambda: self._runs > 0 and not self._running, timeout)


def default_providers(environ: Mapping[str, str]) -> dict[str, Provider]:
    """The real providers, built with their clients. Cloud providers join here."""
    return {
        "webhook": WebhookProvider(environ),
        "aws": AwsProvider(AwsClients.from_environ(environ)),
        "gcp": GcpProvider.from_environ(environ),
        "azure": AzureProvider(AzureClients.from_environ(environ)),
        "postgresql": PostgresProvider(environ),
        "mysql": MysqlProvider(environ),
        "kubernetes": KubernetesProvider.from_environ(environ),
    }


def load_checked_config(
    settings: Settings, providers: Mapping[str, Provider], *, live: bool = False
) -> tuple[JitConfig, list[str]]:
    """Load both files and let every provider check its targets; return warnings."""
    models = {name: p.target_model for name, p in providers.items()}
    config = load_config(settings.roles_file, settings.approvers_file, models)
    issues: list[ConfigIssue] = []
    warnings: list[str] = []
    file = config.roles_file
    for (role, env), targets in config.targets.items():
        for i, target in enumerate(targets):
            loc: Loc = ("roles", role, "environments", env, i)
            try:
                found = providers[target.provider].validate(target, live=live)
            except ProviderError as exc:
                issues.append(ConfigIssue(file, loc, str(exc), line_in(file, loc)))
                continue
            warnings += [str(ConfigIssue(file, loc, w, line_in(file, loc))) for w in found]
    if issues:
        raise ConfigError(issues)
    return config, warnings


@dataclass
class Runtime:
    """Everything a running bot is made of."""

    settings: Settings
    engine: Engine
    service: AccessService
    bolt: App
    outbox: OutboxWorker
    timers: Timers
    drift: DriftChecker
    listeners: TrackedExecutor
    work: TrackedExecutor
    revoker: Revoker
    config_warnings: list[str] = field(default_factory=list)
    # In Socket Mode: "connected" or "connecting", reported by /healthz (set by serve).
    slack_connection: Callable[[], str] | None = None

    def __post_init__(self) -> None:
        self.sweeper = TrackedJob(self.service.sweep)

    def start(self) -> None:
        """Start the outbox worker and the timers (which sweep at once)."""
        self.outbox.start()
        settings = self.service.config.settings
        # The first sweep runs at once: anything that expired while we were down goes now.
        periodic = [
            Periodic("sweeper", self.sweeper, settings.sweep_interval, at_start=True),
            Periodic("heartbeat", self.service.heartbeat, self.service.lease / 3),
            Periodic("reconcile", self.drift.run, settings.reconcile_interval),
            Periodic("review_reminders", self.service.remind_reviews, reviewing.CHECK_EVERY),
            Periodic("nudges", self.service.nudge, nudging.CHECK_EVERY),
            Periodic("reminders", self.service.remind_approvers, reminding.CHECK_EVERY),
            Periodic("escalations", self.service.escalate, escalating.CHECK_EVERY),
            Periodic("look_ahead", self.look_ahead, LOOK_AHEAD_EVERY, at_start=True),
            Periodic("outbox_retention", self.prune_outbox, outbox_retention.EVERY),
        ]
        self.timers.start(periodic)

    def prune_outbox(self) -> int:
        """Delete the messages the outbox is done with, at the age configured now."""
        keep = self.service.config.settings.keep_sent_messages
        return OutboxRetention(self.outbox.sessions, self.outbox.clock, keep).prune()

    def look_ahead(self) -> None:
        """Give the grants ending within the timers' horizon their expiry jobs."""
        self.timers.look_ahead(self.service.upcoming_expiries(HORIZON))

    def stop(self) -> None:
        self.timers.stop()
        self.listeners.shutdown(wait=True, cancel_futures=False)
        self.work.shutdown(wait=True, cancel_futures=False)
        # Deadlines are watched until the work above has drained: a revocation started
        # during the drain still ends by its deadline instead of holding up the exit.
        self.revoker.stop()
        self.outbox.stop()
        self.engine.dispose()

    def healthy(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception:
            log.exception("health check: database unreachable")
            return False
        return True

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until listeners and background work are done and every due Slack message
        has been attempted, the start-up sweep included. For tests and graceful shutdown."""
        if not self.sweeper.wait_ran(timeout):
            raise TimeoutError("the start-up sweep did not finish")
        for _ in range(20):
            # A periodic sweep may start at any moment; it is waited for like the rest.
            sweeps_idle = self.sweeper.wait_ran(timeout)
            listeners_idle = self.listeners.wait_idle(timeout)
            work_idle = self.work.wait_idle(timeout)
            revocations_idle = self.revoker.wait_idle(timeout)
            if not (sweeps_idle and listeners_idle and work_idle and revocations_idle):
                raise TimeoutError("the bot did not become idle")
            if (
                not self.outbox.deliver_due()
                and self.sweeper.wait_ran(0)
                and self.listeners.wait_idle(0)
                and self.work.wait_idle(0)
                and self.revoker.wait_idle(0)
            ):
                return
        raise TimeoutError("the bot kept itself busy")


def build_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    providers: Mapping[str, Provider] | None = None,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Runtime:
    """Wire a bot. Migrates the database to the latest schema first."""
    # The audit key is checked first: a bad one stops the bot before anything else starts.
    audit_key = audit_key_for_bot(
        settings.audit_key, settings.audit_key_file, settings.database_url
    )
    clock = clock or SystemClock()
    env = environ if environ is not None else os.environ
    providers = dict(providers if providers is not None else default_providers(env))
    config, warnings = load_checked_config(settings, providers)
    for warning in warnings:
        log.warning("%s", warning)

    engine, sessions = _database(settings, audit_key)
    client = _slack_client(settings)
    outbox = _outbox(sessions, client, clock, lambda: service)
    notifier = SlackNotifier(
        clock, settings.audit_channel, outbox.wake, security_channel=settings.security_channel
    )
    with sessions.begin() as session:
        audit.adopt_key(session, clock, notifier)
    # google:… entries (Google groups) ask for Google credentials only when first read.
    google_groups = GoogleGroups.from_environ(env, clock)
    directory = SlackDirectory(client, clock, groups=google_groups, sleep=sleep)
    work = TrackedExecutor(16, "jit-work")
    revoker = _revoker(config, clock)
    listeners = TrackedExecutor(32, "jit-listener")

    # The timers call into the service and the service schedules timers; the lambdas
    # resolve ``service`` when they run, after it exists.
    drift = DriftChecker(
        config=config, sessions=sessions, providers=providers, clock=clock, notifier=notifier
    )
    timers = Timers(expire=lambda rid: service.expire(rid), clock=clock)
    ends = SessionEnds(sessions=sessions, providers=providers, clock=clock, notifier=notifier)
    service = AccessService(
        Context(
            config=config,
            sessions=sessions,
            directory=directory,
            providers=providers,
            clock=clock,
            notify=notifier,
            expiry=timers,
            background=lambda job: _discard(work.submit(job)),
            revoker=revoker,
            session_ends=ends,
        )
    )
    bolt = _slack_app(settings, client, listeners, directory, service, clock)
    return Runtime(
        settings, engine, service, bolt, outbox, timers, drift, listeners, work, revoker, warnings
    )


def _revoker(config: JitConfig, clock: Clock) -> Revoker:
    """Revocations run per provider endpoint, each within the configured deadline."""
    return Revoker(
        clock,
        per_endpoint=config.settings.revoke_concurrency,
        deadline=config.settings.revoke_deadline,
    )


def _database(settings: Settings, audit_key: AuditKey) -> tuple[Engine, sessionmaker[Session]]:
    """The database, migrated, and its sessions: each signs the audit events it appends
    and runs its ``after_commit`` callbacks once its transaction has committed."""
    engine = make_engine(settings.database_url)
    upgrade(engine)
    sessions = sessionmaker(engine, expire_on_commit=False, info=audit.signing_info(audit_key))

    @event.listens_for(sessions, "after_commit")
    def _after_commit(session: Session) -> None:
        for callback in session.info.pop("after_commit", []):
            callback()

    @event.listens_for(sessions, "after_rollback")
    def _after_rollback(session: Session) -> None:
        session.info.pop("after_commit", None)

    return engine, sessions


def _outbox(
    sessions: sessionmaker[Session],
    client: WebClient,
    clock: Clock,
    service: Callable[[], AccessService],
) -> OutboxWorker:
    """The outbox's worker: posts wait while the bot catches up on revocations, and a Home
    tab is built when it is sent, from the database as it is then. ``service`` is asked
    for when it is needed, after it exists."""
    return OutboxWorker(
        sessions,
        client,
        clock,
        hold=lambda: service().catching_up,
        builders={
            "views.publish": lambda markers: HomeTab(service()).build(markers),
            audit_posts.METHOD: audit_posts.build,
        },
    )


def _slack_client(settings: Settings) -> WebClient:
    """The Web API client every call to Slack goes through (SLACK_API_URL, as tests set it)."""
    return WebClient(
        token=settings.bot_token, base_url=settings.api_url or WebClient.BASE_URL, timeout=10
    )


def _slack_app(
    settings: Settings,
    client: WebClient,
    listeners: TrackedExecutor,
    directory: SlackDirectory,
    service: AccessService,
    clock: Clock,
) -> App:
    """The Bolt app: requests from this workspace only, answered by the handlers."""
    bolt = App(
        # Named, or Bolt names the app after its caller's file by reading the whole call
        # stack's source (inspect.stack()): milliseconds at every start, for "app.py".
        name="jit-bot",
        client=client,
        signing_secret=settings.signing_secret,
        process_before_response=True,  # ack on the request thread; work is lazy
        listener_executor=listeners,
        raise_error_for_unhandled_request=False,
    )
    # Bolt asked auth.test too, but keeps its answer to itself; ours is asked once, here.
    bolt.middleware(WorkspaceGuard(directory.workspace()).middleware)
    handlers.register(bolt, service, clock)
    keep_request_bodies_out_of_logs()
    return bolt


def _discard(_: object) -> None:
    """Background jobs report their own failures (TrackedExecutor logs them)."""
