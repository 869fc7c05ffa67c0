"""Growth: how each cost grows with the size of what the bot holds (issue 23, point 4).

    .venv/bin/python -m bench.growth [--base 10000] [--db sqlite|postgresql|both]

At 1×, 10× and 100× a base size, on a fresh database each time:

- **recovery**: a bot started on base/10 active grants, half of them overdue, until
  every overdue one is revoked (as ``bench.recovery`` measures it, on its own filling);
- **/jit list** and **a sweeper tick with nothing due**, p50, on a history of base
  finished requests and 5 × base audit events (``bench.history_fill``), as
  ``bench.history`` measures them;
- **audit verify** and **audit export** of that trail, each a ``python -m bot audit``
  process of its own: time and peak RSS.

Each figure is printed with its growth exponent: log(cost at 100×) − log(cost at 1×) over
log(100), so 0 is a cost that does not grow, 1 one that grows as the work does. The work
itself grows as 1 for recovery and the audit commands (each grant, each event, is work)
and as 0 for a list or a sweep (what is live does not grow with history); a cost whose
exponent is above the work's by more than 0.25 fails.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.harness import APPROVER, AUDIT_KEY, Row, Stack, machine, percentile, stack, table
from bench.history import _lists, _on_disk, _ticks
from bench.history_fill import fill, person
from bench.recovery import fill as fill_grants
from bot.storage.models import Status
from tests.fakes.processes import clean_env

NAME = "growth"
# The base size (finished requests at 1×); tiny: enough to produce every figure.
SIZES = {"tiny": 40, "small": 1_000, "full": 10_000}
SCALES = (1, 10, 100)
RECOVERY_TIMEOUT = 900.0


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str  # "ms" | "s" | "MB"
    work: float  # the work's own exponent
    values: tuple[float, ...]  # at each scale

    @property
    def exponent(self) -> float:
        first, last = self.values[0], self.values[-1]
        if first <= 0 or last <= 0:
            return math.nan
        return math.log(last / first) / math.log(SCALES[-1] / SCALES[0])

    def shown(self) -> str:
        values = " · ".join(
            f"{scale}×: {_amount(value, self.unit)}"
            for scale, value in zip(SCALES, self.values, strict=True)
        )
        return f"{values}; exponent {self.exponent:.2f} (work {self.work:g})"


def _amount(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value * 1000:.1f} ms"
    if unit == "MB":
        return f"{value:.0f} MB"
    return f"{value:.2f} s"


def run(size: str, db: str) -> list[Row]:
    samples = 5 if size == "tiny" else 50
    return _rows(_collect(SIZES[size], db, samples), SIZES[size], db)


def _collect(base: int, db: str, samples: int) -> dict[str, list[float]]:
    """Every figure at 1×, 10× and 100× ``base``."""
    measured: dict[str, list[float]] = {}
    for scale in SCALES:
        print(f"   growth {scale}× ({db}) ...", file=sys.stderr, flush=True)
        found = _measure(base * scale, db, samples)
        print(f"   {found}", file=sys.stderr, flush=True)
        for name, value in found.items():
            measured.setdefault(name, []).append(value)
    return measured


def _rows(measured: dict[str, list[float]], base: int, db: str) -> list[Row]:
    note = "" if db == "sqlite" else f" ({db})"
    rows = [Row(NAME, f"sizes{note}", "", _sizes(base), None)]
    for figure in _figures(measured):
        ceiling = figure.work + 0.25
        target, ok = f"exponent ≤ {ceiling:g}", figure.exponent <= ceiling
        rows.append(Row(NAME, figure.name, target, figure.shown(), ok))
    return rows


def _sizes(base: int) -> str:
    return " · ".join(
        f"{scale}×: {base * scale // 10} grants, {base * scale} requests, {5 * base * scale} events"
        for scale in SCALES
    )


# name, unit, the work's exponent, the key measured
_FIGURES = (
    ("recovery: overdue grants revoked", "s", 1, "recovery"),
    ("/jit list p50", "ms", 0, "list"),
    ("sweeper tick, nothing due, p50", "ms", 0, "tick"),
    ("audit verify: time", "s", 1, "verify"),
    ("audit verify: peak RSS", "MB", 0, "verify_rss"),
    ("audit export: time", "s", 1, "export"),
    ("audit export: peak RSS", "MB", 0, "export_rss"),
)


def _figures(measured: dict[str, list[float]]) -> list[Figure]:
    return [
        Figure(name, unit, work, tuple(measured[key]))
        for name, unit, work, key in _FIGURES
        if key in measured
    ]


def _measure(requests: int, db: str, samples: int) -> dict[str, float]:
    found = {"recovery": _recovery(max(requests // 10, 4), db)}
    people = min(2_000, max(requests // 50, 10))
    with stack(db, start=False) as bench:
        fill(bench.database_url, requests=requests, events=5 * requests, people=people)
        _on_disk(bench, db)
        for command in ("verify", "export"):
            found[command], found[f"{command}_rss"] = _audit(bench, command)
        bench.start_bot().wait_healthy(timeout=600)
        listers = [person(0), APPROVER, *(person(i) for i in range(1, min(people, 20)))]
        found["list"] = percentile(_lists(bench, samples, listers), 50)
        found["tick"] = percentile(_ticks(bench, samples)[0], 50)
    return found


def _recovery(grants: int, db: str) -> float:
    """Seconds from starting a bot on ``grants`` active grants, half overdue, until every
    overdue one is revoked (``bench.recovery``'s figure, on its own filling)."""
    overdue = grants // 2
    with stack(db, start=False) as bench:
        fill_grants(bench, grants)
        bot = bench.start_bot()
        started = time.monotonic()
        while time.monotonic() - started < RECOVERY_TIMEOUT:
            revoked = bench.provider.distinct("revoke") >= overdue
            if revoked and bench.statuses().get(Status.REVOKED, 0) >= overdue:
                return time.monotonic() - started
            if bot.popen.poll() is not None:
                raise RuntimeError(bot.tail())
            time.sleep(0.05)
    return math.nan


def _audit(bench: Stack, command: str) -> tuple[float, float]:
    """``python -m bot audit COMMAND`` on the bench database: seconds and peak RSS (MB).
    The peak is the process's own VmHWM, read while it runs (a child's ru_maxrss would
    count the benchmark's own memory, which it shares until it execs)."""
    env = clean_env(DATABASE_URL=bench.database_url, JIT_AUDIT_KEY=AUDIT_KEY)
    started = time.monotonic()
    with (bench.workdir / f"audit-{command}.err").open("wb") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "audit", command],
            env=env,
            cwd=bench.workdir,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        peak = 0
        while process.poll() is None:
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{process.pid}/status").read_text()
                if found := re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE):
                    peak = max(peak, int(found.group(1)))
            time.sleep(0.02)
    took = time.monotonic() - started
    if process.returncode != 0:
        error = (bench.workdir / f"audit-{command}.err").read_text(errors="replace")
        raise RuntimeError(f"audit {command} failed: {error[-2000:]}")
    return took, peak / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.growth", description=__doc__)
    parser.add_argument("--base", type=int, default=SIZES["full"], help="requests at 1×")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--samples", type=int, default=50, help="lists and ticks timed")
    args = parser.parse_args(argv)
    header = machine()
    print(header, file=sys.stderr)
    rows: list[Row] = []
    for db in ("sqlite", "postgresql") if args.db == "both" else (args.db,):
        rows += _rows(_collect(args.base, db, args.samples), args.base, db)
    print(f"{header}\n\n{table(rows)}")
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
