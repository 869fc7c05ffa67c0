"""The crash-safety script at its CI size: SIGKILL at random points of the grant and
revoke paths loses nothing. (`python -m tests.reliability.crash_safety --full` runs 200.)"""

from __future__ import annotations

from tests.reliability.crash_safety import run


def test_sigkill_at_random_points_leaves_no_grant_behind_and_loses_no_audit(
    database_url: str,
) -> None:
    figures = run(4, database_url, seed=7)
    print(figures.table())
    assert figures.requests + figures.lost_before_stored == 4
    assert figures.kills_in_grant + figures.kills_in_revoke == 4
    assert figures.ok, figures.table()
