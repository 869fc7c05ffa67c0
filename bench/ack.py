"""(1) Acknowledgement: how long Slack waits for the HTTP answer to ``/jit request …``.

Fifty clients, each with a persistent connection, send signed ``/jit request`` commands
with a random pause between them (uniform 0–2 s: about 40 requests/s together, in
bursts). Every request is auto-approved, so each one also starts a grant that the
provider takes 2 s to answer. The same load, with the same random schedule, goes to a
bare Bolt app that only acknowledges, on the same server stack (bench/bare_app.py): once
with Bolt's defaults (the target's baseline), once acking on the request thread
(``process_before_response=True``); then to the bot. The figure is the client-side time
from sending the request to having read the whole answer; the clients run in a process
of their own (bench/loadgen.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import NamedTuple

from bench.harness import (
    REQUEST_ID,
    Process,
    Row,
    Stack,
    ms,
    percentile,
    secs,
    stack,
)
from bench.loadgen import Load
from tests.fakes.processes import clean_env, free_port


class Size(NamedTuple):
    clients: int
    per_client: int  # requests by each
    pause: float  # mean seconds between a client's requests
    grant_delay: float  # seconds the provider takes to answer a grant


# tiny: enough to produce every figure, for tests/bench (not a measurement).
SIZES = {
    "tiny": Size(2, 1, pause=0.1, grant_delay=0.2),
    "small": Size(50, 4, pause=1.0, grant_delay=2.0),
    "full": Size(50, 20, pause=1.0, grant_delay=2.0),
}
NAME = "ack"


def generate(
    bench: Stack, app: Process, users: list[str], per_client: int, tag: str, pause: float
) -> Load:
    """Run the clients against ``app`` and note the CPU time ``app`` used meanwhile."""
    cpu = app.cpu_seconds()
    command = [sys.executable, "-m", "bench.loadgen", app.url, bench.slack.base_url]
    done = subprocess.run(
        [*command, ",".join(users), str(per_client), tag, str(pause)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"the load generator failed:\n{done.stderr[-3000:]}")
    load = Load(**json.loads(done.stdout))
    load.cpu = app.cpu_seconds() - cpu
    return load


def run(size: str, db: str) -> list[Row]:
    clients, per_client, pause, grant_delay = SIZES[size]
    with stack(db, grant_delay=grant_delay) as bench:
        users = bench.add_users(clients)
        bot = bench.bot
        assert bot is not None
        bare = Process("bare", "bench.bare_app", [], bench.env(free_port()), bench.workdir)
        quick = Process(
            "bare-quick",
            "bench.bare_app",
            ["--on-request-thread"],
            bench.env(free_port()),
            bench.workdir,
        )
        try:
            bare.wait_healthy()
            quick.wait_healthy()
            # Warm up all three (connections, Bolt's auth.test, the bot's user cache), then
            # let the bot's warm-up grants finish so they do not overlap the baselines.
            for app in (bare, quick, bot):
                generate(bench, app, users, 1, "warm", pause)
            bench.provider.wait_distinct("grant", clients, timeout=60)
            _settle(bench)
            base = generate(bench, bare, users, per_client, "bare", pause)
            fast = generate(bench, quick, users, per_client, "quick", pause)
            load = generate(bench, bot, users, per_client, "bot", pause)
            backlog = _grant_backlog(bench, load)
        finally:
            bare.stop()
            quick.stop()
    note = "" if db == "sqlite" else f" ({db})"
    bot_p99, bare_p99 = percentile(load.latencies, 99), percentile(base.latencies, 99)
    ratio = bot_p99 / bare_p99 if bare_p99 else float("inf")
    errors = len(load.errors) + len(base.errors) + len(fast.errors)
    return [
        Row(NAME, f"bot p50{note}", "", ms(percentile(load.latencies, 50)), None),
        Row(NAME, f"bot p99{note}", "< 100 ms", ms(bot_p99), bot_p99 < 0.100),
        Row(NAME, "bare Bolt p50", "", ms(percentile(base.latencies, 50)), None),
        Row(NAME, "bare Bolt p99", "", ms(bare_p99), None),
        Row(NAME, "bot p99 / bare p99", "≤ 1.2×", f"{ratio:.2f}×", ratio <= 1.2),
        Row(
            NAME,
            "bare Bolt acking on the request thread, p50 / p99",
            "",
            f"{ms(percentile(fast.latencies, 50))} / {ms(percentile(fast.latencies, 99))}",
            None,
        ),
        Row(
            NAME,
            "load",
            f"{clients} clients × {per_client}",
            f"bot {load.rate:.0f} req/s, bare {base.rate:.0f} req/s, {errors} errors",
            errors == 0,
        ),
        Row(
            NAME,
            "server CPU busy during the run",
            "",
            f"bot {load.cpu / load.seconds:.0%}, bare {base.cpu / base.seconds:.0%} of one core",
            None,
        ),
        Row(NAME, "command → grant call, p50 / max", "", backlog, None),
    ]


def _settle(bench: Stack, quiet: float = 1.0, timeout: float = 30.0) -> None:
    """Wait until the bot has stopped posting to Slack for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    last = len(bench.slack.calls)
    calm_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = len(bench.slack.calls)
        if now != last:
            last, calm_since = now, time.monotonic()
        elif time.monotonic() - calm_since >= quiet:
            return


def _grant_backlog(bench: Stack, load: Load, wait: float = 10.0) -> str:
    """How long after its command each grant call started, for the grants that started
    within ``wait`` seconds of the run's end (the rest are still queued)."""
    deadline = time.monotonic() + wait
    while True:
        delays = []
        for name, sent in load.sent.items():
            reply = bench.slack.reply(name)
            request_ids = REQUEST_ID.findall(reply.text) if reply else []
            arrived = bench.provider.arrival("grant", request_ids[0]) if request_ids else None
            if arrived is not None:
                delays.append(arrived - sent)
        if len(delays) == len(load.sent) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return (
        f"{secs(percentile(delays, 50))} / {secs(max(delays, default=float('nan')))} "
        f"({len(delays)} of {len(load.sent)} started ≤ {wait:.0f} s after the run)"
    )
