"""Shared fixtures: databases (SQLite always, PostgreSQL when JIT_TEST_DATABASE_URL is set),
the fake Slack Web API, and a running bot reached over real HTTP; the cloud fakes'
fixtures come from tests/kit/clouds.py and the workspace's configuration from
tests/kit/configs.py."""

from __future__ import annotations

import os
import shutil
import tempfile
import textwrap
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from bot.app import Runtime, build_runtime
from bot.clock import FakeClock
from bot.server import HttpServer
from bot.settings import Settings
from bot.slack import audit_posts
from bot.storage.db import make_engine, upgrade
from providers.base import Provider
from providers.fake import FakeProvider
from tests import explore
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_client import SlackSim
from tests.kit.configs import APPROVERS_YAML, ROLES_YAML

SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test"
AUDIT_CHANNEL = "C0AUDIT"
AUDIT_KEY = "test-audit-key-0123456789abcdef"

# For every module: the cloud fakes' fixtures (moto, aws, azure_server, empty_azure,
# google_server, empty_google), the bot processes' (launcher, fake_slack, receiver) and
# local mode's (local_mode).
pytest_plugins = ("tests.kit.clouds", "tests.kit.processes", "tests.kit.local")

# The people of the test workspace.
ALICE = "UALICE"  # engineer, in @engineering: may request prod-support
BOB = "UBOB"  # in @sre-leads
CAROL = "UCAROL"  # in @sre-leads
SEC1 = "USEC1"  # security, named by id
SEC2 = "USEC2"  # security, named by email
MALLORY = "UMALLORY"  # in no group at all


def _database_params() -> list[object]:
    params: list[object] = [pytest.param("sqlite", id="sqlite")]
    if os.environ.get("JIT_TEST_DATABASE_URL"):
        params.append(pytest.param("postgresql", id="postgresql"))
    else:
        params.append(
            pytest.param(
                "postgresql",
                id="postgresql",
                marks=pytest.mark.skip(reason="JIT_TEST_DATABASE_URL is not set"),
            )
        )
    return params


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of our own on the PostgreSQL server named by JIT_TEST_DATABASE_URL, so
    concurrent test runs on one server do not reset each other's tables."""
    base = make_url(os.environ["JIT_TEST_DATABASE_URL"])
    name = f"jit_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield base.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# Where the SQLite databases live: in memory-backed /dev/shm when the machine has one.
# On disk, every commit waits for fsync (WAL with synchronous=FULL), and the outbox
# commits twice per Slack post: a third to half of a busy SQLite test's time went there.
# What the tests check does not depend on the file surviving a power cut.
SHM = Path("/dev/shm")


@pytest.fixture(scope="session")
def sqlite_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """This worker's directory for SQLite databases, removed when the run ends."""
    if not (SHM.is_dir() and os.access(SHM, os.W_OK)):
        yield tmp_path_factory.mktemp("sqlite")
        return
    directory = Path(tempfile.mkdtemp(prefix="jit-test-", dir=SHM))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(autouse=True)
def _sqlite_databases_removed(sqlite_dir: Path) -> Iterator[None]:
    """A test's SQLite databases are removed after it, once everything that used them has
    stopped (bot processes too): set up before every other fixture, this is torn down
    after them all."""
    yield
    for directory in sqlite_dir.glob("test-*"):
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(params=_database_params())
def database_url(request: pytest.FixtureRequest, sqlite_dir: Path) -> str:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        # A directory of its own: SQLite and the bot keep files beside the database.
        directory = Path(tempfile.mkdtemp(prefix="test-", dir=sqlite_dir))
        return f"sqlite:///{directory / 'jit.db'}"
    url: str = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def migrated_sqlite(sqlite_dir: Path) -> Path:
    """A SQLite database at the latest schema, migrated once per worker. A bot started on
    a copy finds its schema current, as on every restart, instead of running every
    migration again at each test; migrating an empty database is test_migrations' job
    (and every bot process's that the tests start)."""
    path = Path(tempfile.mkdtemp(prefix="migrated-", dir=sqlite_dir)) / "jit.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    # Closing the last connection checkpointed the log into the file: the file is all.
    assert not path.with_name("jit.db-wal").exists()
    return path


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    # Slack's clock is frozen here: trigger_ids and response_urls expire only when a test
    # moves it (slack.advance, or a bot given sleep=slack.advance), never because a loaded
    # machine ran slowly.
    fake = FakeSlack(token=BOT_TOKEN, clock=lambda: 0.0).start()
    fake.add_channel(AUDIT_CHANNEL)
    fake.add_channel("C0GENERAL")  # where SlackSim's commands come from
    fake.add_user(ALICE, "alice@example.com", "alice")
    fake.add_user(BOB, "bob@example.com", "bob")
    fake.add_user(CAROL, "carol@example.com", "carol")
    fake.add_user(SEC1, "sec1@example.com", "sec1")
    fake.add_user(SEC2, "sec2@example.com", "sec2")
    fake.add_user(MALLORY, "mallory@example.com", "mallory")
    fake.add_usergroup("SENG", "engineering", [ALICE, BOB, CAROL])
    fake.add_usergroup("SSRE", "sre-leads", [BOB, CAROL])
    yield fake
    # The bot never has a reason to send what Slack could not accept.
    fake.assert_clean()
    fake.stop()


@dataclass
class Bot:
    """A running bot and everything around it, as a test sees it."""

    runtime: Runtime
    server: HttpServer
    sim: SlackSim
    slack: FakeSlack
    clock: FakeClock
    provider: FakeProvider
    settings: Settings

    @property
    def service(self):  # type: ignore[no-untyped-def]
        return self.runtime.service

    def settle(self) -> None:
        # A wait for the bot to be idle, not a measure of speed: generous, so a loaded
        # machine's slowness does not read as a bot that never settles.
        self.runtime.settle(timeout=60)

    def command(self, user: str, text: str) -> dict:  # type: ignore[type-arg]
        """Send ``/jit <text>`` and return what the bot answered through response_url."""
        reply = self.sim.command(user, text)
        assert reply.status == 200, reply
        return self.slack.wait_for_response(name=reply.response_url_name)

    def dms_to(self, user: str) -> list[dict]:  # type: ignore[type-arg]
        """The DMs ``user`` got, oldest first; replies in their threads (an approver's
        reminders) are ``replies_to``'s."""
        self.settle()
        return [m for m in self.slack.messages_in(user) if not m.get("thread_ts")]

    def replies_to(self, user: str) -> list[dict]:  # type: ignore[type-arg]
        """Replies posted in the threads of ``user``'s DMs, oldest first."""
        self.settle()
        return [m for m in self.slack.messages_in(user) if m.get("thread_ts")]

    def audit_posts(self) -> list[str]:
        """The audit channel's lines, one per event, oldest first."""
        self.settle()
        return audit_lines(self.slack)


def audit_lines(slack: FakeSlack, channel: str = AUDIT_CHANNEL) -> list[str]:
    """The event lines the bot posted to the audit channel, oldest first, as Slack has
    them now: one per event, whether it was posted alone or with others."""
    return [line for m in slack.messages_in(channel) for line in audit_posts.lines_of(m)]


@pytest.fixture
def config_files(tmp_path: Path) -> Callable[..., tuple[str, str]]:
    def write(roles: str = ROLES_YAML, approvers: str = APPROVERS_YAML) -> tuple[str, str]:
        roles_path = tmp_path / "roles.yaml"
        approvers_path = tmp_path / "approvers.yaml"
        roles_path.write_text(textwrap.dedent(roles))
        approvers_path.write_text(textwrap.dedent(approvers))
        return str(roles_path), str(approvers_path)

    return write


@pytest.fixture
def make_bot(
    request: pytest.FixtureRequest,
    database_url: str,
    slack: FakeSlack,
    config_files: Callable[..., tuple[str, str]],
) -> Iterator[Callable[..., Bot]]:
    """Start bots (several in a row share the database, like restarts do)."""
    if database_url.startswith("sqlite:///"):
        database = Path(database_url.removeprefix("sqlite:///"))
        if not database.exists():  # nothing has been stored yet: start from the schema
            shutil.copyfile(request.getfixturevalue("migrated_sqlite"), database)
    started: list[Bot] = []
    clock = FakeClock()
    provider = FakeProvider()

    def start(
        roles: str = ROLES_YAML,
        approvers: str = APPROVERS_YAML,
        providers: dict[str, Provider] | None = None,
        sleep: Callable[[float], None] = lambda _: None,  # retries back off in fake time
        security_channel: str | None = None,
        audit_channel: str | None = AUDIT_CHANNEL,
    ) -> Bot:
        roles_file, approvers_file = config_files(roles, approvers)
        settings = Settings(
            bot_token=BOT_TOKEN,
            signing_secret=SIGNING_SECRET,
            api_url=slack.api_url,
            audit_channel=audit_channel,
            security_channel=security_channel,
            database_url=database_url,
            roles_file=roles_file,
            approvers_file=approvers_file,
            port=0,
            audit_key=AUDIT_KEY,
        )
        runtime = build_runtime(
            settings,
            clock=clock,
            providers=providers or {"fake": provider},
            environ={},
            sleep=sleep,
        )
        runtime.start()
        server = HttpServer(runtime, "127.0.0.1", 0).start_in_background()
        sim = SlackSim(f"http://127.0.0.1:{server.port}", SIGNING_SECRET, slack)
        bot = Bot(runtime, server, sim, slack, clock, provider, settings)
        started.append(bot)
        bot.settle()
        return bot

    yield start
    for bot in started:
        stop(bot)


def stop(bot: Bot) -> None:
    """Stop a bot as a crash would: no revocation, no goodbye."""
    if getattr(bot, "_stopped", False):
        return
    bot._stopped = True  # type: ignore[attr-defined]
    bot.server.close()
    bot.runtime.stop()


@pytest.fixture
def bot(make_bot: Callable[..., Bot]) -> Bot:
    return make_bot()


# ------------------------------------------------------ property tests: --full (explore.py)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--full",
        action="store_true",
        help="property tests explore: 10x the examples, at random, from a printed seed",
    )


def pytest_configure(config: pytest.Config) -> None:
    explore.configure(config)


# The tests that take minutes, not seconds, each (see the durations in docs/development.md).
# They are handed out first: started last, one of them keeps a worker busy long after the
# others have finished, and the run waits for it.
LONGEST_FIRST = (
    "tests/security/test_tampered_clicks.py",
    "tests/e2e/test_make_run.py",
    "tests/reliability/test_state_machine.py",
    "tests/reliability/test_faults.py",
    "tests/reliability/test_provider_faults_wire.py",
    "tests/reliability/test_crash_safety.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::")[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: every other test keeps its place


def pytest_report_header(config: pytest.Config) -> str | None:
    return explore.describe(config)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    line = explore.describe(config)
    if line:
        terminalreporter.write_line(line)


@pytest.fixture
def exploration(request: pytest.FixtureRequest) -> explore.Exploration:
    """How a property test explores: the CI examples, or --full's."""
    return explore.of(request.config)
