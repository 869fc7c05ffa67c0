"""``jit-bot import aws`` at scale (issue 18 point 7): an estate of 500 permission sets ×
60 accounts × 3,000 people × 40,000 assignments imported and mined in under 60 s.

The estate comes from tests/fakes/aws_scale.py (seeded, the same on every run), put
straight into moto's backends in this process; then the command runs as operators run
it, ``python -m bot import aws --output DIR`` in a process of its own, reading over HTTP
from the moto server. The server records every request, which splits the command's
time into start-up (until its first AWS call), reading (first to last call) and the rest
(normalising, mining, writing the drafts). The drafts are checked to reproduce every
assignment of the estate before any figure is reported.

Then what ``--max-overgrant N`` trades on the same estate: the exact roles relaxed, in
this process, with the cells given beyond today counted.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from bench.harness import REPO, Row, secs
from bot.importer.aws.convert import imported
from bot.importer.aws.environments import environments
from bot.importer.holdings import held_today
from bot.importer.mining import mine
from bot.importer.overgrant import relax
from tests.fakes.aws import MotoAws
from tests.fakes.aws_scale import FULL, ScaleEstate, Shape, as_estate, generate, seed_scale
from tests.fakes.processes import clean_env

NAME = "import_scale"
TARGET = 60.0  # seconds, for the full estate
OVERGRANT = (1, 2, 5)  # the --max-overgrant limits shown
SIZES = {
    "tiny": Shape(permission_sets=40, accounts=8, people=150, groups=12, assignments=1_200),
    "small": Shape(permission_sets=200, accounts=24, people=1_000, groups=60, assignments=12_000),
    "full": FULL,
}
_FOUND = re.compile(r"the mining found (\d+) roles \(lower bound (\d+)")


def run(size: str, db: str) -> list[Row]:
    shape = SIZES[size]
    moto = MotoAws().start()
    try:
        seeded = seed_scale(moto, generate(shape))
        requests = moto.record_requests()
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out"
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "bot", "import", "aws", "--output", str(out)],
                cwd=REPO,
                env=clean_env(**moto.environ()),
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            ended = time.monotonic()
            if done.returncode != 0:
                raise RuntimeError(f"jit-bot import aws failed: {done.stderr[-2000:]}")
            reproduced = _reproduces(seeded.estate, out)
            roles, bound = _found(out)
    finally:
        moto.stop()
    first, last = min(r[0] for r in requests), max(r[1] for r in requests)
    total = ended - started
    calls = Counter(target.rsplit(".", 1)[-1] for _, _, target in requests)
    return [
        Row(NAME, "estate", "", _shape(seeded.estate), None),
        Row(NAME, "start-up (until the first AWS call)", "", secs(first - started), None),
        Row(NAME, "read (first to last AWS call)", "", secs(last - first), None),
        Row(NAME, "normalise, mine, write drafts", "", secs(ended - last), None),
        Row(
            NAME,
            "total, `jit-bot import aws`",
            f"< {TARGET:.0f} s" if size == "full" else "",
            secs(total),
            total < TARGET if size == "full" else None,
        ),
        Row(
            NAME,
            "roles / lower bound, every assignment reproduced",
            "reproduced",
            f"{roles} / {bound}, {'yes' if reproduced else 'NO'}",
            reproduced,
        ),
        Row(NAME, "AWS calls", "", _calls(calls), None),
        *_overgrant_rows(seeded.estate),
    ]


def _shape(estate: ScaleEstate) -> str:
    by = Counter(g.principal_type for g in estate.grants)
    return (
        f"{len(estate.sets)} permission sets ({len(estate.dead)} dead) × "
        f"{len(estate.accounts)} accounts, {len(estate.people)} people in "
        f"{len(estate.groups)} groups, {len(estate.grants)} assignments "
        f"({by['GROUP']} to groups, {by['USER']} to users)"
    )


def _calls(calls: Counter[str]) -> str:
    top = ", ".join(f"{name} {n}" for name, n in calls.most_common(3))
    return f"{sum(calls.values())} ({top}, …)"


def _found(out: Path) -> tuple[int, int]:
    match = _FOUND.search((out / "report.md").read_text())
    if match is None:
        raise RuntimeError("report.md no longer says how many roles were found")
    return int(match.group(1)), int(match.group(2))


def _reproduces(estate: ScaleEstate, out: Path) -> bool:
    """mapping.csv puts every (person, permission set, account) held today under a role
    that grants exactly that, and nothing held today is missing."""
    held: set[tuple[str, str, str]] = set()
    for g in estate.grants:
        people = estate.groups[g.principal] if g.principal_type == "GROUP" else (g.principal,)
        held.update((f"{p}@example.com", g.permission_set, estate.ids[g.account]) for p in people)
    roles: dict[str, Any] = yaml.safe_load((out / "roles.yaml").read_text())["roles"]
    mapped = set()
    with (out / "mapping.csv").open(newline="") as rows:
        for row in csv.DictReader(rows):
            targets = roles[row["role"]]["environments"][row["environment"]]
            grants = {(t["permission_set"], a) for t in targets for a in t["accounts"]}
            if (row["permission_set"], row["account_id"]) not in grants:
                return False
            mapped.add((row["person"], row["permission_set"], row["account_id"]))
    return mapped == held


def _overgrant_rows(estate: ScaleEstate) -> list[Row]:
    """What ``--max-overgrant N`` trades on this estate: the exact roles mined in this
    process (the import's own cells, people × (capability, account)), then relaxed."""
    values = as_estate(estate)
    held = held_today(imported(values, environments("ou", values.accounts)))
    import ortools.sat.python.cp_model  # noqa: F401  (loading the solver is start-up)

    exact = mine(held.pairs)
    rows = []
    for limit in OVERGRANT:
        started = time.monotonic()
        relaxed = relax(exact, held.pairs, limit)
        took = time.monotonic() - started
        cells = sum(len(extra) for extra in relaxed.overgrant.values())
        rows.append(
            Row(
                NAME,
                f"--max-overgrant {limit}: roles",
                "",
                f"{len(relaxed.roles)} (exact {len(exact.roles)}), {cells} cells more for "
                f"{len(relaxed.overgrant)} people, in {secs(took)}",
                None,
            )
        )
    return rows
