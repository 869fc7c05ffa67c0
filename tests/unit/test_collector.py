"""The collector as a serving bot sets it (bot/collector.py): what start-up built is
frozen, young garbage is collected in larger sweeps, and garbage made afterwards,
cycles included, is still collected. In a fresh interpreter: freezing this one would
keep every test's garbage alive."""

from __future__ import annotations

from pathlib import Path

from tests.kit.fresh import last_value

_SNIPPET = """
import gc
import weakref

import bot.app  # what a serving bot has imported by then
from bot import collector

collector.settle_after_start_up()
frozen = gc.get_freeze_count()


class Node:
    pass


a, b = Node(), Node()
a.other, b.other = b, a  # a cycle: only the collector frees it
gone = weakref.ref(a)
del a, b
gc.collect()
print(repr((frozen, gc.get_threshold()[0], gone() is None)))
"""


def test_start_up_is_frozen_and_later_cycles_are_still_collected(tmp_path: Path) -> None:
    frozen, young, cycle_freed = last_value(_SNIPPET, tmp_path)
    # Every module, mapping and model of the bot: tens of thousands of objects.
    assert frozen > 50_000
    assert young == 10_000
    assert cycle_freed
