"""(3) Expiry precision: how late revocations start when many grants end at once.

Auto-approved grants (one requester each, so no grant shares access with another) are
requested through Slack with durations in seconds chosen so that their expiry times are
spread evenly over one window (60 s at full size) that starts once they have all been
granted. The bot revokes each one with its APScheduler date job (or the sweeper). The
figure is, per grant, the provider endpoint's arrival time of the revoke call minus the
``expires_at`` stored in the database.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from datetime import datetime

import sqlalchemy as sa

from bench.harness import (
    AUTO_ENV,
    REQUEST_ID,
    ROLE,
    Row,
    ms,
    percentile,
    run_threads,
    secs,
    stack,
    to_epoch,
)
from bot.storage.models import AccessRequest

# grants, the window their expiries spread over, and the lead: seconds before the first
# expiry, room to create them all (about 25/s, each creator waiting for its grant call,
# so that no grant queue pushes expiries later).
# tiny: enough to produce every figure, for tests/bench (not a measurement).
SIZES = {"tiny": (2, 1.0, 2.0), "small": (100, 10.0, 8.0), "full": (1000, 60.0, 8.0)}
CREATORS = 20
NAME = "expiry"


def run(size: str, db: str) -> list[Row]:
    grants, window, lead = SIZES[size]
    with stack(db) as bench:
        users = bench.add_users(grants)
        sim = bench.sim()
        first_expiry = time.time() + lead + grants / 25
        due = [first_expiry + window * i / grants for i in range(grants)]
        names: list[str] = [""] * grants
        next_index = itertools.count()
        lock = threading.Lock()

        def create(_: int) -> None:
            while True:
                with lock:
                    i = next(next_index)
                if i >= grants:
                    return
                seconds = max(1, math.ceil(due[i] - time.time()))
                reply = sim.command(users[i], f"request {ROLE} {AUTO_ENV} {seconds}s expiry {i}")
                assert reply.status == 200 and reply.response_url_name, reply
                names[i] = reply.response_url_name
                found = REQUEST_ID.findall(bench.slack.wait_reply(names[i]).text)
                assert found, names[i]
                bench.provider.wait_arrival("grant", found[0])

        errors = run_threads(CREATORS, create)
        if errors:
            raise errors[0]
        created_by = time.time()
        ids = []
        for name in names:
            found = REQUEST_ID.findall(bench.slack.wait_reply(name).text)
            assert found, name
            ids.append(found[0])
        # Every revocation should have started a little after the last expiry.
        deadline = max(due) + 15 - time.time()
        bench.provider.wait_distinct("revoke", grants, timeout=max(deadline, 1))
        expires = _expiries(bench.db(), ids)
        revoked = bench.provider.arrivals("revoke")
    lags = [revoked[rid] - to_epoch(expires[rid]) for rid in ids if rid in revoked]
    missing = grants - len(lags)
    spread = max(expires.values()) - min(expires.values())
    p99 = percentile(lags, 99) if not missing else math.inf
    note = "" if db == "sqlite" else f" ({db})"
    early = sum(1 for lag in lags if lag < 0)
    return [
        Row(
            NAME,
            "grants / expiry spread",
            f"{grants} in {window:.0f} s",
            f"{len(ids)} expiring within {secs(spread.total_seconds())}; the last was "
            f"granted {secs(first_expiry - created_by)} before the first was due",
            len(ids) == grants and spread.total_seconds() <= window * 1.1,
        ),
        Row(NAME, f"revoke start − expires_at p50{note}", "", ms(percentile(lags, 50)), None),
        Row(
            NAME,
            f"revoke start − expires_at p99{note}",
            "< 1 s",
            ms(percentile(lags, 99)) + (f" ({missing} never revoked)" if missing else ""),
            p99 < 1.0,
        ),
        Row(
            NAME,
            "max / revoked early",
            "",
            f"{ms(max(lags, default=math.nan))} / {early}",
            early == 0,
        ),
    ]


def _expiries(engine: sa.Engine, ids: list[str]) -> dict[str, datetime]:
    table = AccessRequest.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(table.c.id, table.c.expires_at).where(table.c.id.in_(ids))
        )
        return {row.id: row.expires_at for row in rows}
