"""The cyclic garbage collector, set for a long-running bot.

Start-up builds what lives as long as the process: every module, the SQLAlchemy
mappings, the configuration, the Slack app. Left where they are, each full collection
walks all of them again, and a bot catching up on a backlog, which makes and drops
thousands of ORM rows and message payloads a second, runs one every few hundred
milliseconds: an eighth of its CPU, measured on 10,000 grants (bench/recovery.py).
Frozen, they are never walked again; young garbage is collected less often, in larger
and so fewer sweeps. Nothing frozen is ever freed by the collector, so freeze once,
after start-up and before any work.
"""

from __future__ import annotations

import gc

#: Allocations (minus deallocations) between two collections of the youngest generation;
#: Python's default, 700, collects ORM rows that reference counting frees anyway.
YOUNG_THRESHOLD = 10_000


def settle_after_start_up() -> None:
    """Freeze what start-up built and collect young garbage in larger sweeps."""
    # No collection first: start-up leaves a handful of garbage objects (20, measured),
    # not worth the 50 ms a full collection of everything it built takes.
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
