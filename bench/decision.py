"""(2) Decision overhead: from an approver's click to the provider's grant call.

Requests for a role that needs one approval are sent through Slack, and each one's
approval DM is awaited. Then the approver clicks Approve on them one after another (the
next click once the previous grant call has arrived, while the bot is still posting the
news of the previous one). The figure is the provider endpoint's arrival time of the
grant call minus the time the click was sent, both ``time.time()`` on this machine.
"""

from __future__ import annotations

import time

from bench.harness import (
    APPROVAL_ENV,
    APPROVER,
    REQUEST_ID,
    ROLE,
    Row,
    approver_message,
    ms,
    percentile,
    run_threads,
    stack,
)
from bot.slack.blocks import APPROVE

# tiny: enough to produce every figure, for tests/bench (not a measurement).
SIZES = {"tiny": 2, "small": 20, "full": 200}
NAME = "decision"
APPROVER_DM = "D" + APPROVER[1:]


def run(size: str, db: str) -> list[Row]:
    count = SIZES[size]
    with stack(db) as bench:
        users = bench.add_users(count)
        sim = bench.sim()
        request_ids: list[str] = [""] * count

        def ask(i: int) -> None:
            for n in range(i, count, 10):
                reply = sim.command(users[n], f"request {ROLE} {APPROVAL_ENV} 1h decision {n}")
                assert reply.status == 200 and reply.response_url_name, reply
                answer = bench.slack.wait_reply(reply.response_url_name)
                found = REQUEST_ID.findall(answer.text)
                assert found, answer.text
                request_ids[n] = found[0]

        errors = run_threads(10, ask)
        if errors:
            raise errors[0]
        dms = [
            bench.slack.wait_news(
                rid, lambda n: n.method == "chat.postMessage" and n.channel == APPROVER_DM
            )
            for rid in request_ids
        ]
        time.sleep(1.0)  # let the outbox finish the requesters' and audit posts

        overheads: list[float] = []
        acks: list[float] = []
        for rid, dm in zip(request_ids, dms, strict=True):
            clicked = time.time()
            reply = sim.block_action(APPROVER, APPROVE, rid, message=approver_message(dm))
            acks.append(sim.last_elapsed())
            assert reply.status == 200, reply
            overheads.append(bench.provider.wait_arrival("grant", rid) - clicked)
    note = "" if db == "sqlite" else f" ({db})"
    p95 = percentile(overheads, 95)
    return [
        Row(NAME, f"click → grant call p50{note}", "", ms(percentile(overheads, 50)), None),
        Row(NAME, f"click → grant call p95{note}", "< 50 ms", ms(p95), p95 < 0.050),
        Row(
            NAME,
            "click → grant call p99 / max",
            "",
            f"{ms(percentile(overheads, 99))} / {ms(max(overheads))}",
            None,
        ),
        Row(NAME, "click acknowledged p50", f"{count} clicks", ms(percentile(acks, 50)), None),
    ]
