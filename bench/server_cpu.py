"""CPU time a local PostgreSQL server spends, read from ``/proc`` (Linux): every process
of the server (its backends and its writers), so a benchmark can count the database's
CPU beside the bot's where the two share the machine.

A snapshot maps each server process to the CPU seconds it has used; the CPU spent
between two snapshots counts processes that started in between in full, and misses those
that ended in between (the bot's pooled connections live as long as the bot)."""

from __future__ import annotations

import os
from pathlib import Path

_PROC = Path("/proc")


def snapshot() -> dict[int, float]:
    """pid → user + system CPU seconds, for each process of a PostgreSQL server here."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "cmdline").read_bytes().startswith(b"postgres"):
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile, or not ours to read
            continue
        found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the server's processes used from ``before`` to ``after``."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())
