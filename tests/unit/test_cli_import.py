"""``jit-bot import matrix FILE --output DIR`` run as a real process, the way an operator
runs it: it writes roles.csv, assignments.csv and report.md, prints one summary line and
exits 0; or, given a file it cannot use, names the file and line on stderr and exits 2
without a traceback."""

from __future__ import annotations

import csv
import os
import pty
import re
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path

import pytest

from tests.fakes.processes import REPO, clean_env

DATA = REPO / "tests" / "data" / "rolemining"
SUMMARY = re.compile(
    r"^(\d+) users × (\d+) permissions \((\d+) assignments\) → (\d+) roles \(lower bound (\d+)\)$"
)


def jit_bot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=REPO,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_the_healthcare_matrix_becomes_fourteen_roles_that_reproduce_it(tmp_path: Path) -> None:
    done = jit_bot("import", "matrix", str(DATA / "healthcare.txt"), "--output", str(tmp_path))

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "46 users × 46 permissions (1486 assignments) → 14 roles (lower bound 14)"
    ]
    assert done.stderr == ""  # no progress bar when stderr is not a terminal
    roles = read_csv(tmp_path / "roles.csv")
    assignments = read_csv(tmp_path / "assignments.csv")
    assert roles[0] == ["role", "permission"]
    assert assignments[0] == ["user", "role"]
    permissions: dict[str, set[str]] = defaultdict(set)
    for role, permission in roles[1:]:
        permissions[role].add(permission)
    granted: dict[str, set[str]] = defaultdict(set)
    for user, role in assignments[1:]:
        granted[user] |= permissions[role]
    held: dict[str, set[str]] = defaultdict(set)
    for line in (DATA / "healthcare.txt").read_text().splitlines():
        user, permission = line.split()
        held[user].add(permission)
    assert granted == held
    assert sorted(permissions) == sorted(f"role-{n}" for n in range(1, 15))
    report = (tmp_path / "report.md").read_text()
    assert "This is a minimum" in report
    assert "| lower bound | 14 |" in report
    why = report.split("## Why no fewer", 1)[1].split("## Roles")[0]
    witness = re.findall(r"^\| (\d+) \| (\d+) \|$", why, re.M)
    assert len(witness) == 14
    assert all(permission in held[user] for user, permission in witness)


def test_commas_comments_blank_lines_a_header_and_repeats_are_accepted(tmp_path: Path) -> None:
    matrix = tmp_path / "estate.csv"
    matrix.write_text(
        "user,permission\n# exported 2026-12-01\n\nann, s3:Get\nann,s3:Put\n"
        "bob\ts3:Get\nann s3:Get\n"
    )

    done = jit_bot("import", "matrix", str(matrix), "--output", str(tmp_path / "out"))

    assert done.returncode == 0, done.stderr
    assert SUMMARY.match(done.stdout.strip())
    assert done.stdout.strip() == (
        "2 users × 2 permissions (3 assignments) → 2 roles (lower bound 2)"
    )
    assert "1 repeated assignment(s) counted once" in done.stderr


def test_labels_reach_the_report_escaped(tmp_path: Path) -> None:
    matrix = tmp_path / "m.txt"
    matrix.write_text("<script>alert(1)</script> a|b\n[x](javascript:y) *bold*\nann #admin\n")

    done = jit_bot("import", "matrix", str(matrix), "--output", str(tmp_path / "out"))

    assert done.returncode == 0, done.stderr
    report = (tmp_path / "out" / "report.md").read_text()
    assert "<script>" not in report
    assert "a\\|b" in report
    assert "\\*bold\\*" in report
    assert "- \\#admin" in report  # a permission, not a heading
    roles = read_csv(tmp_path / "out" / "roles.csv")
    assert {p for _, p in roles[1:]} == {"a|b", "*bold*", "#admin"}  # the CSV keeps them


def test_out_of_time_the_greedy_cover_is_kept_and_the_gap_reported(tmp_path: Path) -> None:
    # Greedy takes the biggest role, {p0, p1, p4}, and then needs three more; the minimum
    # is three (see test_mining.py).
    rows = {"u0": "p2 p4 p5", "u1": "p0 p1 p3 p4", "u2": "p0 p1 p2 p4", "u3": "p0 p1 p3 p4"}
    matrix = tmp_path / "m.txt"
    matrix.write_text("".join(f"{u} {p}\n" for u, ps in rows.items() for p in ps.split()))

    done = jit_bot(
        "import", "matrix", str(matrix), "--output", str(tmp_path / "out"), "--time-limit", "0"
    )

    assert done.returncode == 0, done.stderr
    assert (
        done.stdout.strip() == "4 users × 6 permissions (15 assignments) → 4 roles (lower bound 3)"
    )
    report = (tmp_path / "out" / "report.md").read_text()
    assert "these 4 are at most 1 more than the minimum" in report
    assert "greedy cover only" in report


def test_a_negative_time_limit_is_refused(tmp_path: Path) -> None:
    done = jit_bot(
        "import",
        "matrix",
        str(DATA / "domino.txt"),
        "--output",
        str(tmp_path),
        "--time-limit",
        "-1",
    )

    assert done.returncode == 2
    assert "'-1' is not a number of seconds" in done.stderr


BAD_FILES = [
    ("one-field.txt", b"ann s3:Get\nbob\n", ":2: one field in 'bob'"),
    ("three-fields.txt", b"ann s3:Get\nann s3:Put extra\n", ":2: 3 fields"),
    ("empty-field.csv", b"ann,,s3:Get\n", ":1: an empty field"),
    ("empty.txt", b"", ": no assignments"),
    ("only-comments.txt", b"# nothing yet\n\n", ": no assignments"),
    ("binary.bin", b"ann s3:Get\n\x7fELF\x00\x01\x02", ":2: binary data"),
    ("latin1.txt", b"ann s3:Get\nb\xe9a s3:Get\n", ":2: not UTF-8 text"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_FILES)
def test_a_malformed_matrix_is_named_by_file_and_line_with_status_2(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    matrix = tmp_path / name
    matrix.write_bytes(content)

    done = jit_bot("import", "matrix", str(matrix), "--output", str(tmp_path / "out"))

    assert done.returncode == 2
    assert f"{matrix}{message}" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_an_unreadable_matrix_is_named_with_status_2(tmp_path: Path, kind: str) -> None:
    matrix = tmp_path / "estate.txt"
    if kind == "directory":
        matrix.mkdir()

    done = jit_bot("import", "matrix", str(matrix), "--output", str(tmp_path / "out"))

    assert done.returncode == 2
    assert f"{matrix}: cannot read the file" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_output_that_cannot_be_written_is_named_with_status_2(tmp_path: Path) -> None:
    occupied = tmp_path / "out"
    occupied.write_text("a file, not a directory")

    done = jit_bot("import", "matrix", str(DATA / "healthcare.txt"), "--output", str(occupied))

    assert done.returncode == 2
    assert f"cannot write {occupied}" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_outputs_are_the_same_whatever_the_hash_seed(tmp_path: Path) -> None:
    outputs = []
    for seed in ("1", "2"):
        out = tmp_path / seed
        done = jit_bot(
            "import",
            "matrix",
            str(DATA / "domino.txt"),
            "--output",
            str(out),
            env=clean_env(PYTHONHASHSEED=seed),
        )
        assert done.returncode == 0, done.stderr
        outputs.append([(out / f).read_bytes() for f in ("roles.csv", "assignments.csv")])

    assert outputs[0] == outputs[1]


def test_a_terminal_gets_a_progress_bar_on_stderr(tmp_path: Path) -> None:
    controller, terminal = pty.openpty()
    drawn: list[bytes] = []
    # Read while it draws: a full pseudo-terminal buffer would block the command.
    reader = threading.Thread(target=_drain, args=(controller, drawn), daemon=True)
    reader.start()
    try:
        command = ["import", "matrix", str(DATA / "domino.txt"), "--output", str(tmp_path)]
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", *command],
            cwd=REPO,
            env=clean_env(TERM="xterm", COLUMNS="100"),
            stdout=subprocess.PIPE,
            stderr=terminal,
        )
        os.close(terminal)
        stdout, _ = process.communicate(timeout=120)
        reader.join(timeout=10)
    finally:
        os.close(controller)

    assert process.returncode == 0
    assert SUMMARY.match(stdout.decode().strip())
    screen = b"".join(drawn).decode(errors="replace")
    assert "candidate roles" in screen
    assert "exact search" in screen


def test_serving_does_not_load_the_solver_or_rich() -> None:
    probe = "import sys, bot.cli; print(sorted({'ortools', 'rich'} & set(sys.modules)))"

    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert done.stdout.strip() == "[]"


def _drain(fd: int, into: list[bytes]) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the command has exited and the terminal is drained
            return
        if not chunk:
            return
        into.append(chunk)
