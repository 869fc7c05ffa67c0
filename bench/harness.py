"""What every benchmark shares: the fakes, a real ``python -m bot serve`` process,
databases, a keep-alive signed-request client, percentiles and the results table.

The fakes come from the test kit (``tests.fakes``) and are only extended here: Slack
gains an index of what the bot posted per request id (so fifty waiting threads do not
each copy every message), and the webhook receiver gains a delay per grant (a slow
cloud) and the arrival time of every grant and revoke call.
"""

from __future__ import annotations

import compileall
import contextlib
import http.client
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

import sqlalchemy as sa

from bench.server_cpu import process_cpu
from bot.local import receiver as webhook_receiver
from bot.local.slack.wire import ApiServer
from tests.fakes.processes import clean_env, free_port, wait_healthy
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_client import Reply, SlackSim
from tests.fakes.webhook_receiver import WebhookReceiver

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]
SIGNING_SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-bench"
WEBHOOK_SECRET = "bench-webhook-hmac-key"
AUDIT_CHANNEL = "C0AUDIT"
AUDIT_KEY = "bench-audit-key-0123456789abcdef"
APPROVER = "UAPPROVER"
ROLE = "ops"
AUTO_ENV = "bench"  # auto-approved by rule
APPROVAL_ENV = "prod"  # one approval from APPROVER
TARGET = "bench-target"
START_TIMEOUT = 60.0
POSTGRES_URL = os.environ.get(
    "JIT_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUEST_ID = re.compile(r"R-[0-9A-Z]{8}")

# Both environments grant the same webhook target: one auto-approved, one approved.
ROLES_YAML = """\
roles:
  {role}:
    description: Benchmark role
    max_duration: 4h
    default_duration: 1h
    environments:
      {auto}:{webhook}
      {approval}:{webhook}
"""
WEBHOOK_TARGET = """
        - provider: webhook
          name: {target}
          url: {url}
          allow_insecure: true  # the receiver is plain http on 127.0.0.1
          secret_env: JIT_WEBHOOK_SECRET
          timeout_seconds: 30"""

APPROVERS_YAML = """\
groups:
  approvers: [{approver}]
rules:
  - environments: [{auto}]
    roles: ["*"]
    auto_approve: true
  - roles: [{role}]
    environments: [{approval}]
    approvers: [approvers]
    required_approvals: 1
settings:
  pending_ttl: 1h
  # A benchmark's few users make thousands of requests: lift the per-person quotas.
  max_pending_per_person: 1000
  max_requests_per_person_per_hour: 10000
  allowed_email_domains: [example.com]
"""


def _deepen_listen_backlogs() -> None:
    """The fakes are stdlib servers that listen with a backlog of 5. A burst of parallel
    calls from the bot then overflows the accept queue and Linux drops the SYN: the
    client retries a second later, which would show up as a one-second revocation delay
    that is the fake's doing, not the bot's."""
    for server in (ApiServer, webhook_receiver._Server):
        server.request_queue_size = 256


# ---------------------------------------------------------------------------- fakes


class News(NamedTuple):
    """One thing the bot told Slack about a request."""

    at: float  # time.time() when the fake received it
    method: str  # chat.postMessage | chat.update | response_url
    channel: str
    ts: str
    text: str


class BenchSlack(FakeSlack):
    """The test kit's fake Slack, plus an index of posts, updates and response_url
    answers by the request ids their text names, and by response_url name."""

    def __init__(self) -> None:
        super().__init__(token=BOT_TOKEN)
        self._news: dict[str, list[News]] = defaultdict(list)
        self._replies: dict[str, News] = {}

    def _chat_post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        result = super()._chat_post_message(params)
        self._index("chat.postMessage", result["channel"], result["ts"], params)
        return result

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        result = super()._chat_update(params)
        self._index("chat.update", result["channel"], result["ts"], params)
        return result

    def _index(self, method: str, channel: str, ts: str, params: dict[str, Any]) -> None:
        # Called by FakeSlack with its lock held; it notifies waiters afterwards.
        text = str(params.get("text") or "")
        news = News(time.time(), method, channel, ts, text)
        for request_id in set(REQUEST_ID.findall(text)):
            self._news[request_id].append(news)

    def _handle_response_url(self, name: str, body: bytes) -> Any:
        # The acknowledgement benchmark's clients run in a process of their own and cannot
        # ask this fake to issue the response_urls they send: issue each as it is first
        # used (Slack's limits, five uses in 30 minutes, still hold from then on).
        self.response_url(name)
        answer = super()._handle_response_url(name, body)
        try:
            text = str(json.loads(body or b"{}").get("text") or "")
        except (ValueError, AttributeError):
            text = ""
        news = News(time.time(), "response_url", "", "", text)
        with self._changed:
            self._replies[name] = news
            for request_id in set(REQUEST_ID.findall(text)):
                self._news[request_id].append(news)
            self._changed.notify_all()
        return answer

    def reply(self, name: str) -> News | None:
        with self._lock:
            return self._replies.get(name)

    def news(self, request_id: str) -> list[News]:
        with self._lock:
            return list(self._news.get(request_id, ()))

    def wait_news(
        self, request_id: str, match: Callable[[News], bool], timeout: float = 60.0
    ) -> News:
        """The first news about ``request_id`` that ``match`` accepts, waiting for it."""
        return self._wait_locked(
            lambda: next((n for n in self._news.get(request_id, ()) if match(n)), None),
            timeout,
            f"news about {request_id}",
        )

    def wait_reply(self, name: str, timeout: float = 60.0) -> News:
        """What the bot POSTed to the response_url named ``name``."""
        return self._wait_locked(lambda: self._replies.get(name), timeout, f"a reply to {name}")

    def _wait_locked(self, probe: Callable[[], T | None], timeout: float, what: str) -> T:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = probe()
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
                self._changed.wait(min(remaining, 0.2))


class ProviderEndpoint(WebhookReceiver):
    """The test kit's webhook receiver as a slow cloud: every grant takes ``grant_delay``
    seconds to answer (revokes answer at once), and the arrival time (time.time()) of
    the first grant and revoke call for each request is kept."""

    def __init__(self, grant_delay: float = 0.0) -> None:
        super().__init__(WEBHOOK_SECRET)
        self.grant_delay = grant_delay
        self._arrived: dict[tuple[str, str], float] = {}
        self._counts: dict[str, int] = defaultdict(int)
        # Requests with a call of each kind, kept as calls arrive: a benchmark polling
        # for "every grant revoked" must not walk every arrival under the lock the
        # receiving threads need (at 50,000 calls that held up the bot's own calls).
        self._distinct: dict[str, int] = defaultdict(int)
        self._arrival = threading.Condition()

    def _handle(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        arrived = time.time()
        try:
            event = json.loads(body)
            kind, request_id = str(event["event"]), str(event["request_id"])
        except (ValueError, KeyError, TypeError):
            kind = request_id = ""
        if kind:
            with self._arrival:
                if (kind, request_id) not in self._arrived:
                    self._arrived[(kind, request_id)] = arrived
                    self._distinct[kind] += 1
                self._counts[kind] += 1
                self._arrival.notify_all()
        if kind == "grant" and self.grant_delay:
            time.sleep(self.grant_delay)
        return super()._handle(path, headers, body)

    def arrival(self, kind: str, request_id: str) -> float | None:
        with self._arrival:
            return self._arrived.get((kind, request_id))

    def arrivals(self, kind: str) -> dict[str, float]:
        with self._arrival:
            return {rid: at for (k, rid), at in self._arrived.items() if k == kind}

    def distinct(self, kind: str) -> int:
        """Requests that have had a ``kind`` call."""
        with self._arrival:
            return self._distinct[kind]

    def count(self, kind: str) -> int:
        """Calls received, repeats included."""
        with self._arrival:
            return self._counts[kind]

    def wait_arrival(self, kind: str, request_id: str, timeout: float = 60.0) -> float:
        deadline = time.monotonic() + timeout
        with self._arrival:
            while (kind, request_id) not in self._arrived:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {kind} call for {request_id} within {timeout:.0f}s")
                self._arrival.wait(min(remaining, 0.2))
            return self._arrived[(kind, request_id)]

    def wait_distinct(self, kind: str, count: int, timeout: float) -> bool:
        """Wait until ``count`` distinct requests have had a ``kind`` call."""
        deadline = time.monotonic() + timeout
        with self._arrival:
            while self._distinct[kind] < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._arrival.wait(min(remaining, 0.2))
        return True


# ---------------------------------------------------------------------------- client


class KeepAliveSim(SlackSim):
    """The test kit's signed-request client over one persistent HTTP/1.1 connection per
    thread, as a load generator holds them; ``last_elapsed()`` is the time from sending
    the request to having read the whole answer, on this thread's last call."""

    def __init__(self, app_url: str, slack: FakeSlack, timeout: float = 30.0) -> None:
        super().__init__(app_url, SIGNING_SECRET, slack, timeout=timeout)
        parts = urlsplit(self.url)
        self._host, self._port, self._path = parts.hostname or "", parts.port or 80, parts.path
        self._local = threading.local()

    def raw(self, body: bytes | str, headers: Mapping[str, str]) -> Reply:
        data = body.encode("utf-8") if isinstance(body, str) else body
        for attempt in (1, 2):
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=self.timeout
                )
                self._local.connection = connection
            try:
                started = time.perf_counter()
                connection.request("POST", self._path, body=data, headers=dict(headers))
                response = connection.getresponse()
                payload = response.read()
                self._local.elapsed = time.perf_counter() - started
            except (OSError, http.client.HTTPException):
                # The server closed an idle keep-alive connection: reconnect once.
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    raise
                continue
            if response.will_close:
                connection.close()
                self._local.connection = None
            return self._reply(response.status, payload, response.msg)
        raise AssertionError("unreachable")

    def last_elapsed(self) -> float:
        return float(self._local.elapsed)

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


def approver_message(news: News) -> dict[str, Any]:
    """The part of a posted message a click payload carries."""
    return {"channel": news.channel, "ts": news.ts, "text": news.text, "blocks": []}


# ---------------------------------------------------------------------------- processes


class Process:
    """A Python process (``python -m MODULE ARGS``) with its output in ``workdir``."""

    def __init__(
        self, name: str, module: str, args: list[str], env: dict[str, str], workdir: Path
    ) -> None:
        self.name = name
        self.port = int(env["PORT"])
        self.stdout = workdir / f"{name}.stdout"
        self.stderr = workdir / f"{name}.stderr"
        self.started_at = time.monotonic()
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                env=env,
                cwd=workdir,
                stdout=out,
                stderr=err,
            )

        self._profiler = _attach_profiler(name, self.popen.pid, workdir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> float:
        """Poll /healthz until it answers 200; returns seconds since the process started."""
        # Polled often: the recovery benchmark reports this time.
        wait_healthy(self.name, self.popen, self.url, self.tail, timeout, poll=0.02)
        return time.monotonic() - self.started_at

    def status(self, field_name: str) -> int:
        """A ``/proc/<pid>/status`` size field in kB (VmRSS, VmHWM …)."""
        text = Path(f"/proc/{self.popen.pid}/status").read_text()
        match = re.search(rf"^{field_name}:\s+(\d+) kB", text, re.MULTILINE)
        return int(match.group(1)) if match else 0

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far."""
        return process_cpu(self.popen.pid)

    def peak_rss_mb(self) -> float:
        return self.status("VmHWM") / 1024

    def tail(self, lines: int = 30) -> str:
        text = self.stderr.read_text(errors="replace") if self.stderr.exists() else ""
        return f"--- {self.name} stderr (last {lines} lines) ---\n" + "\n".join(
            text.splitlines()[-lines:]
        )

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        if self._profiler is not None:
            self._profiler.wait(timeout=30)  # py-spy writes its file once the target exits


def _attach_profiler(name: str, pid: int, workdir: Path) -> subprocess.Popen[bytes] | None:
    """With JIT_BENCH_PROFILE=<dir> (``run.py --profile``), sample the process with py-spy
    (all threads, idle ones included; with JIT_BENCH_PROFILE_CPU=1 only threads holding
    the GIL, i.e. where the CPU goes) into <dir>/<name>-<pid>.txt, collapsed stacks."""
    out_dir = os.environ.get("JIT_BENCH_PROFILE")
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not out_dir or not Path(py_spy).exists():
        return None
    output = Path(out_dir) / f"{name}-{pid}.txt"
    output.parent.mkdir(parents=True, exist_ok=True)
    with (workdir / f"{name}.py-spy").open("wb") as log:
        idle = ["--gil"] if os.environ.get("JIT_BENCH_PROFILE_CPU") == "1" else ["--idle"]
        options = ["--rate", "250", *idle, "--threads", "--format", "raw"]
        return subprocess.Popen(
            [py_spy, "record", "--pid", str(pid), *options, "--output", str(output)],
            stdout=log,
            stderr=log,
        )


# ---------------------------------------------------------------------------- databases


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file in ``workdir``, or a PostgreSQL database of
    our own on the server of JIT_BENCH_POSTGRES_URL, dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    if kind != "postgresql":
        raise ValueError(f"unknown database kind {kind!r}")
    base = sa.make_url(POSTGRES_URL)
    name = f"jit_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def postgres_available() -> bool:
    engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except Exception:
        return False
    finally:
        engine.dispose()
    return True


# ---------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    """Fake Slack, a provider endpoint, a database and a bot process wired together."""

    workdir: Path
    slack: BenchSlack
    provider: ProviderEndpoint
    database_url: str
    roles_file: Path
    approvers_file: Path
    bot: Process | None = None
    engine: sa.Engine | None = None
    _sims: list[KeepAliveSim] = field(default_factory=list)

    def env(self, port: int, **extra: str) -> dict[str, str]:
        return clean_env(
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=self.slack.api_url,
            JIT_AUDIT_CHANNEL=AUDIT_CHANNEL,
            DATABASE_URL=self.database_url,
            JIT_ROLES_FILE=str(self.roles_file),
            JIT_APPROVERS_FILE=str(self.approvers_file),
            JIT_WEBHOOK_SECRET=WEBHOOK_SECRET,
            JIT_AUDIT_KEY=AUDIT_KEY,
            PORT=str(port),
            **extra,
        )

    def start_bot(self, name: str = "bot") -> Process:
        self.bot = Process(name, "bot", ["serve"], self.env(free_port()), self.workdir)
        return self.bot

    def sim(self, process: Process | None = None) -> KeepAliveSim:
        target = process or self.bot
        assert target is not None
        sim = KeepAliveSim(target.url, self.slack)
        self._sims.append(sim)
        return sim

    def add_users(self, count: int, prefix: str = "UREQ") -> list[str]:
        users = [f"{prefix}{i:05d}" for i in range(count)]
        for user in users:
            self.slack.add_user(user, f"{user.lower()}@example.com", user.lower())
        return users

    def db(self) -> sa.Engine:
        if self.engine is None:
            self.engine = sa.create_engine(self.database_url)
        return self.engine

    def statuses(self) -> dict[str, int]:
        with self.db().connect() as connection:
            rows = connection.execute(
                sa.text("SELECT status, count(*) FROM access_request GROUP BY status")
            )
            return {str(status): int(count) for status, count in rows}


@contextlib.contextmanager
def stack(db_kind: str, *, grant_delay: float = 0.0, start: bool = True) -> Iterator[Stack]:
    """Everything a benchmark needs, torn down afterwards; the bot's last log lines are
    printed if the benchmark fails."""
    _deepen_listen_backlogs()  # here, not at import: importing bench changes no fake
    _byte_compile()
    workdir = Path(tempfile.mkdtemp(prefix="jit-bench-"))
    slack = BenchSlack().start()
    slack.add_channel(AUDIT_CHANNEL)  # as in production: the audit posts land
    slack.add_user(APPROVER, "approver@example.com", "approver")
    provider = ProviderEndpoint(grant_delay).start()
    roles = workdir / "roles.yaml"
    approvers = workdir / "approvers.yaml"
    names = {"role": ROLE, "auto": AUTO_ENV, "approval": APPROVAL_ENV}
    webhook = WEBHOOK_TARGET.format(target=TARGET, url=provider.url)
    roles.write_text(ROLES_YAML.format(webhook=webhook, **names))
    approvers.write_text(APPROVERS_YAML.format(approver=APPROVER, **names))
    failed = False
    try:
        with database(db_kind, workdir) as url:
            running = Stack(workdir, slack, provider, url, roles, approvers)
            try:
                if start:
                    running.start_bot().wait_healthy()
                yield running
            except BaseException:
                failed = True
                raise
            finally:
                for sim in running._sims:
                    sim.close()
                if running.bot is not None:
                    if failed:
                        print(running.bot.tail(), file=sys.stderr)
                    running.bot.stop()
                if running.engine is not None:
                    running.engine.dispose()
    finally:
        provider.stop()
        slack.stop()
        if not os.environ.get("JIT_BENCH_KEEP"):
            shutil.rmtree(workdir, ignore_errors=True)


def _byte_compile() -> None:
    """Byte-compile the bot's own modules, as installing a package does (pip compiles what
    it installs): a bot started from this checkout would otherwise compile them at every
    start where PYTHONDONTWRITEBYTECODE is set, as it is on this machine, and its start-up
    would be measured with a cost no installed bot has."""
    for package in ("bot", "providers"):
        compileall.compile_dir(REPO / package, quiet=1)


def run_threads(count: int, work: Callable[[int], None]) -> list[BaseException]:
    """Run ``work(i)`` for i in range(count) on their own threads; return what they raised."""
    errors: list[BaseException] = []
    lock = threading.Lock()

    def guarded(i: int) -> None:
        try:
            work(i)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def jitter(seed: int) -> random.Random:
    return random.Random(seed)


def to_epoch(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


# ---------------------------------------------------------------------------- figures


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), interpolated between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.1f} ms"


def secs(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds:.2f} s"


@dataclass(frozen=True)
class Row:
    benchmark: str
    figure: str
    target: str
    measured: str
    ok: bool | None  # None: reported, no target

    @property
    def verdict(self) -> str:
        return {True: "pass", False: "**FAIL**", None: "—"}[self.ok]


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| benchmark | figure | target | measured | result |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r.benchmark} | {r.figure} | {r.target} | {r.measured} | {r.verdict} |" for r in rows
    ]
    return "\n".join(lines)


def machine() -> str:
    """One paragraph naming the machine the figures came from."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = "?"
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    commit = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return textwrap.dedent(
        f"""\
        Machine: {os.cpu_count()} CPUs (nproc), {cpu}, {memory} RAM, Linux {platform.release()};
        Python {platform.python_version()}; commit {commit}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC;
        load average at start {load}."""
    )
