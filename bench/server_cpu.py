"""CPU time processes spend, read from ``/proc`` (Linux): one process's (the bot's), or a
local PostgreSQL server's, every process of it (its backends and its writers), so a
benchmark can count the database's CPU beside the bot's where the two share the machine.

A snapshot maps each server process to the CPU seconds it has used; the CPU spent
between two snapshots counts processes that started in between in full, and misses those
that ended in between (the bot's pooled connections live as long as the bot)."""

from __future__ import annotations

import os
from pathlib import Path

_PROC = Path("/proc")


def snapshot() -> dict[int, float]:
    """pid → user + system CPU seconds, for each process of a PostgreSQL server here."""
    found: dict[int, float] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "cmdline").read_bytes().startswith(b"postgres"):
                continue
            found[int(entry.name)] = process_cpu(int(entry.name))
        except OSError:  # ended meanwhile, or not ours to read
            continue
    return found


def process_cpu(pid: int) -> float:
    """User + system CPU seconds the process has used so far (OSError once it is gone)."""
    # The name in (…) may hold spaces: the fields are counted after its closing one.
    fields = (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the server's processes used from ``before`` to ``after``."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())
