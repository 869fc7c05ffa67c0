"""(5) Throughput: complete lifecycles per second, all through Slack.

Each lifecycle is what people do: the requester sends ``/jit request`` for a role that
needs one approval; once the approver's DM is posted the approver clicks Approve; once
the requester's "Access granted" DM is posted the requester clicks End access now; the
lifecycle is complete when the requester's "has ended" DM is posted, which the bot only
writes in the transaction that marks the request ``revoked``. Several workers run
lifecycles side by side, each with its own requester; the provider answers at once.

Under that load, two waits people feel are taken from the fake Slack's own call log (the
time it received the post) against the time the client sent the command or the click:
``/jit request`` → the approver's DM posted, and Approve → the requester's "Access
granted" DM posted. The bot's CPU time over the run shows how busy it was.

The load is a closed loop: each worker starts its next lifecycle when one ends. So the
waits follow from the rate (Little's law: a lifecycle takes workers ÷ lifecycles/s), and
the rate is bounded by the machine: its cores over the CPU a lifecycle costs, the bot's,
this process's (the workers, the fake Slack and the provider, which share the machine)
and the database server's. The last rows show them, so a target that no bot could meet
on this machine is seen as such.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from typing import NamedTuple

from bench import server_cpu
from bench.harness import (
    APPROVAL_ENV,
    APPROVER,
    REQUEST_ID,
    ROLE,
    KeepAliveSim,
    Row,
    Stack,
    approver_message,
    ms,
    percentile,
    run_threads,
    secs,
    stack,
)
from bot.slack.blocks import APPROVE, END_ACCESS

# tiny: enough to produce every figure, for tests/bench (not a measurement).
SIZES = {"tiny": (2, 2), "small": (20, 10), "full": (200, 20)}  # lifecycles, workers
NAME = "throughput"
APPROVER_DM = "D" + APPROVER[1:]


class Lifecycle(NamedTuple):
    """How long one lifecycle took, and the two waits people feel in it (seconds)."""

    took: float
    request_to_dm: float  # /jit request sent → approver's DM posted
    approve_to_dm: float  # Approve clicked → requester's "Access granted" DM posted


def run(size: str, db: str) -> list[Row]:
    lifecycles, workers = SIZES[size]
    done: list[Lifecycle] = []
    lock = threading.Lock()
    with stack(db) as bench:
        users = bench.add_users(workers)
        sim = bench.sim()
        counter = itertools.count()

        def worker(w: int) -> None:
            while (n := next(counter)) < lifecycles:
                measured = lifecycle(bench, sim, users[w], n)
                with lock:
                    done.append(measured)

        assert bench.bot is not None
        cpu_before = bench.bot.cpu_seconds()
        harness_before = time.process_time()  # every thread of this process
        server_before = server_cpu.snapshot() if db == "postgresql" else {}
        started = time.monotonic()
        errors = run_threads(workers, worker)
        elapsed = time.monotonic() - started
        cpu = bench.bot.cpu_seconds() - cpu_before
        harness = time.process_time() - harness_before
        server = server_cpu.spent(server_before, server_cpu.snapshot()) if server_before else 0.0
        if errors:
            raise errors[0]
        statuses = bench.statuses()
    rate = lifecycles / elapsed
    durations = [d.took for d in done]
    return [
        Row(
            NAME,
            f"lifecycles/s, {db}",
            f"{lifecycles} by {workers} workers",
            f"{rate:.1f} /s ({secs(elapsed)})",
            statuses == {"revoked": lifecycles},
        ),
        Row(
            NAME,
            f"one lifecycle p50 / p95, {db}",
            "",
            f"{secs(percentile(durations, 50))} / {secs(percentile(durations, 95))}",
            None,
        ),
        _latency(f"/jit request → approver DM p50 / p99, {db}", [d.request_to_dm for d in done]),
        _latency(f'Approve → "Access granted" DM p50 / p99, {db}', [d.approve_to_dm for d in done]),
        Row(
            NAME,
            f"bot CPU per lifecycle, {db}",
            "",
            f"{ms(cpu / lifecycles)} ({cpu / elapsed:.0%} of one core)",
            None,
        ),
        Row(
            NAME,
            f"load generator, fake Slack and provider CPU per lifecycle, {db}",
            "",
            f"{ms(harness / lifecycles)} ({harness / elapsed:.0%} of one core)",
            None,
        ),
        Row(
            NAME,
            f"database server CPU per lifecycle, {db}",
            "",
            _server_cpu(db, server_before, server / lifecycles, server / elapsed),
            None,
        ),
        _ceiling(db, workers, bot=cpu / lifecycles, load=(harness + server) / lifecycles),
    ]


def _latency(figure: str, waits: list[float]) -> Row:
    p50, p99 = percentile(waits, 50), percentile(waits, 99)
    return Row(
        NAME,
        figure,
        "< 100 ms / < 300 ms",
        f"{ms(p50)} / {ms(p99)}",
        p50 < 0.1 and p99 < 0.3,
    )


def _server_cpu(db: str, seen: dict[int, float], per_lifecycle: float, share: float) -> str:
    if db != "postgresql":
        return "0 ms apart: SQLite runs in the bot's process"
    if not seen:  # JIT_BENCH_POSTGRES_URL names a server on another machine
        return "not counted: no PostgreSQL server process on this machine"
    return f"{ms(per_lifecycle)} ({share:.0%} of one core)"


def _ceiling(db: str, workers: int, *, bot: float, load: float) -> Row:
    """The most lifecycles per second at the CPU a lifecycle cost here (``bot``, and
    ``load``: this process's and the database server's; seconds): the machine's cores
    over both, and one bot process's interpreter (one core at a time) over the bot's. A
    closed loop of ``workers`` at that rate takes workers ÷ rate per lifecycle at the
    least, and the waits people feel are parts of it."""
    cores = os.cpu_count() or 1
    machine, one_process = cores / (bot + load), 1 / bot
    most = min(machine, one_process)
    return Row(
        NAME,
        f"ceiling: lifecycles/s on all cores, in one bot process; a lifecycle then, {db}",
        "",
        f"{cores} cores: {machine:.1f} /s; 1 process: {one_process:.1f} /s; "
        f"≥ {secs(workers / most)}",
        None,
    )


def lifecycle(bench: Stack, sim: KeepAliveSim, user: str, n: int) -> Lifecycle:
    started = time.monotonic()
    sent = time.time()  # the fake Slack stamps what it receives with time.time()
    slack = bench.slack
    reply = sim.command(user, f"request {ROLE} {APPROVAL_ENV} 1h throughput {n}")
    assert reply.status == 200 and reply.response_url_name, reply
    found = REQUEST_ID.findall(slack.wait_reply(reply.response_url_name).text)
    assert found, f"no request id in the reply to {n}"
    rid = found[0]
    dm = slack.wait_news(rid, lambda m: m.method == "chat.postMessage" and m.channel == APPROVER_DM)
    clicked = time.time()
    reply = sim.block_action(APPROVER, APPROVE, rid, message=approver_message(dm))
    assert reply.status == 200, reply
    granted = slack.wait_news(
        rid, lambda m: m.method == "chat.postMessage" and m.text.startswith("Access granted")
    )
    reply = sim.block_action(user, END_ACCESS, rid, message=approver_message(granted))
    assert reply.status == 200, reply
    slack.wait_news(rid, lambda m: m.method == "chat.postMessage" and "has ended" in m.text)
    return Lifecycle(time.monotonic() - started, dm.at - sent, granted.at - clicked)
