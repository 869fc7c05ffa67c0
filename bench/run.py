"""Run the benchmarks and print one Markdown table.

    .venv/bin/python -m bench.run [--full | --size tiny|small|full]
                                  [--db sqlite|postgresql|both]
                                  [--only ack,decision,expiry,import_scale,mining,…]

``--size tiny`` runs each benchmark just far enough to produce its figures (seconds):
tests/bench runs it so that a benchmark that breaks fails the suite.

Without ``--db``, throughput runs on SQLite and PostgreSQL (when the server of
JIT_BENCH_POSTGRES_URL answers) and everything else on SQLite; with it, every benchmark
runs on the database(s) named.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from pathlib import Path

from bench.harness import Row, machine, postgres_available, table

BENCHMARKS = (
    "ack",
    "decision",
    "expiry",
    "growth",
    "history",
    "import_scale",
    "mining",
    "recovery",
    "throughput",
)
SIZES = ("tiny", "small", "full")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--full", action="store_true", help="the sizes of issue #7")
    parser.add_argument("--size", choices=SIZES, help="small unless --full")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"])
    parser.add_argument("--only", help="comma-separated: " + ",".join(BENCHMARKS))
    parser.add_argument("--output", type=Path, help="also write the table to this file")
    parser.add_argument(
        "--profile",
        type=Path,
        help="sample every bot process with py-spy (if installed) into this directory",
    )
    args = parser.parse_args(argv)
    if args.profile:
        os.environ["JIT_BENCH_PROFILE"] = str(args.profile.resolve())
    chosen = [b.strip() for b in args.only.split(",")] if args.only else list(BENCHMARKS)
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    if args.full and args.size not in (None, "full"):
        parser.error("--full and --size say different sizes")
    size = args.size or ("full" if args.full else "small")
    header = machine()
    print(header, file=sys.stderr)

    rows: list[Row] = []
    postgres = None
    for name in chosen:
        for db in _databases(name, args.db):
            if db == "postgresql":
                postgres = postgres_available() if postgres is None else postgres
                if not postgres:
                    rows.append(Row(name, "PostgreSQL", "", "server not reachable; skipped", None))
                    continue
            print(f"== {name} ({size}, {db}) ...", file=sys.stderr, flush=True)
            started = time.monotonic()
            module = importlib.import_module(f"bench.{name}")
            try:
                found = module.run(size, db)
            except Exception as exc:
                traceback.print_exc()
                found = [Row(name, f"run on {db}", "", f"error: {exc}"[:200], False)]
            took = time.monotonic() - started
            print(f"   {name} took {took:.0f} s", file=sys.stderr, flush=True)
            print(table(found), file=sys.stderr, flush=True)
            rows += found

    report = f"{header}\nSize: {size}.\n\n{table(rows)}\n"
    print(report)
    if args.output:
        args.output.write_text(report)
    return 0 if all(r.ok is not False for r in rows) else 1


def _databases(name: str, choice: str | None) -> list[str]:
    if choice == "both":
        return ["sqlite", "postgresql"]
    if choice:
        return [choice]
    return ["sqlite", "postgresql"] if name == "throughput" else ["sqlite"]


if __name__ == "__main__":
    sys.exit(main())
