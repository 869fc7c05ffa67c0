"""(5) Throughput: complete lifecycles per second, all through Slack.

Each lifecycle is what people do: the requester sends ``/jit request`` for a role that
needs one approval; once the approver's DM is posted the approver clicks Approve; once
the requester's "Access granted" DM is posted the requester clicks End access now; the
lifecycle is complete when the requester's "has ended" DM is posted, which the bot only
writes in the transaction that marks the request ``revoked``. Several workers run
lifecycles side by side, each with its own requester; the provider answers at once.
"""

from __future__ import annotations

import itertools
import threading
import time

from bench.harness import (
    APPROVAL_ENV,
    APPROVER,
    REQUEST_ID,
    ROLE,
    KeepAliveSim,
    Row,
    Stack,
    approver_message,
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


def run(size: str, db: str) -> list[Row]:
    lifecycles, workers = SIZES[size]
    durations: list[float] = []
    lock = threading.Lock()
    with stack(db) as bench:
        users = bench.add_users(workers)
        sim = bench.sim()
        counter = itertools.count()

        def worker(w: int) -> None:
            while (n := next(counter)) < lifecycles:
                took = lifecycle(bench, sim, users[w], n)
                with lock:
                    durations.append(took)

        started = time.monotonic()
        errors = run_threads(workers, worker)
        elapsed = time.monotonic() - started
        if errors:
            raise errors[0]
        statuses = bench.statuses()
    rate = lifecycles / elapsed
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
    ]


def lifecycle(bench: Stack, sim: KeepAliveSim, user: str, n: int) -> float:
    started = time.monotonic()
    slack = bench.slack
    reply = sim.command(user, f"request {ROLE} {APPROVAL_ENV} 1h throughput {n}")
    assert reply.status == 200 and reply.response_url_name, reply
    found = REQUEST_ID.findall(slack.wait_reply(reply.response_url_name).text)
    assert found, f"no request id in the reply to {n}"
    rid = found[0]
    dm = slack.wait_news(rid, lambda m: m.method == "chat.postMessage" and m.channel == APPROVER_DM)
    reply = sim.block_action(APPROVER, APPROVE, rid, message=approver_message(dm))
    assert reply.status == 200, reply
    granted = slack.wait_news(
        rid, lambda m: m.method == "chat.postMessage" and m.text.startswith("Access granted")
    )
    reply = sim.block_action(user, END_ACCESS, rid, message=approver_message(granted))
    assert reply.status == 200, reply
    slack.wait_news(rid, lambda m: m.method == "chat.postMessage" and "has ended" in m.text)
    return time.monotonic() - started
