"""``bot.extension``: who may extend which access, by how much, and how it is decided,
as tables of plain values against a loaded config (prod-support: 4h at most, one approval
from sre-leads in prod, extensions of up to 30m without approval; db-admin: 2h at most,
auto-approved in dev)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import JitConfig
from bot.durations import parse_duration
from bot.errors import BadDuration, JitError, MissingReason, NotAllowed, WrongState
from bot.extension import ExtensionCheck, check_extension
from bot.policy import Standing
from bot.storage.models import AccessRequest
from tests.unit.test_config import APPROVERS, load, replaced

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
RULE = "  - roles: [prod-support]\n    environments: [prod]\n    approvers: [sre-leads]\n"


@pytest.fixture
def config(tmp_path: Path) -> JitConfig:
    approvers = replaced(APPROVERS, RULE, RULE + "    extend_without_approval_up_to: 30m\n")
    return load(tmp_path, approvers=approvers)


def access(
    *,
    role: str = "prod-support",
    environment: str = "prod",
    held: timedelta = timedelta(hours=1),
    left: timedelta = timedelta(hours=1),
    **fields: object,
) -> AccessRequest:
    values: dict[str, object] = {
        "id": "R-AAAAAAAA",
        "requester_id": "UALICE",
        "requester_email": "alice@example.com",
        "role": role,
        "environment": environment,
        "reason": "INC-1",
        "duration_seconds": int((held + left).total_seconds()),
        "status": "active",
        "rule_index": 1,
        "required_approvals": 1,
        "approvers": ["UBOB"],
        "created_at": NOW - held,
        "updated_at": NOW - held,
        "granted_at": NOW - held,
        "expires_at": NOW + left,
    }
    values.update(fields)
    return AccessRequest(**values)  # type: ignore[arg-type]


def extend(
    config: JitConfig,
    original: AccessRequest,
    duration: str,
    reason: str = "still needed",
    user: str = "UALICE",
) -> ExtensionCheck:
    return check_extension(
        config, original, user, duration, reason, lambda _: True, standing=Standing.MEMBER, now=NOW
    )


@pytest.mark.parametrize(
    ("original", "duration", "over", "quick", "total"),
    [
        pytest.param(access(), "30m", False, True, "2h30m", id="within-the-rules-quick-extension"),
        pytest.param(access(), "45m", False, False, "2h45m", id="longer-goes-to-approvers"),
        pytest.param(
            access(held=timedelta(hours=3), left=timedelta(minutes=45)),
            "30m",
            True,
            False,
            "4h15m",
            id="past-the-maximum-only-approvers",
        ),
        pytest.param(
            access(break_glass=True), "15m", False, False, "2h15m", id="break-glass-to-approvers"
        ),
        pytest.param(
            access(role="db-admin", environment="dev", rule_index=0),
            "2h",
            True,
            False,
            None,
            id="auto-approve-never-past-the-maximum",
        ),
        pytest.param(
            access(role="db-admin", environment="dev", rule_index=0, left=timedelta(minutes=30)),
            "30m",
            False,
            True,
            "2h",
            id="auto-approve-within-the-maximum",
        ),
    ],
)
def test_how_an_extension_is_decided(
    config: JitConfig,
    original: AccessRequest,
    duration: str,
    over: bool,
    quick: bool,
    total: str | None,
) -> None:
    if total is None:
        with pytest.raises(BadDuration, match="no approver who could allow that"):
            extend(config, original, duration)
        return

    checked = extend(config, original, duration)

    assert (checked.over_maximum, checked.without_approval) == (over, quick)
    assert checked.total == parse_duration(total)
    assert checked.held_for == NOW - original.granted_at  # type: ignore[operator]


@pytest.mark.parametrize(
    ("original", "user", "duration", "reason", "error", "says"),
    [
        (access(), "UMALLORY", "30m", "x", NotAllowed, "Only the person who holds"),
        (access(status="revoked"), "UALICE", "30m", "x", WrongState, "only active access"),
        (access(left=timedelta(0)), "UALICE", "30m", "x", WrongState, "only active access"),
        (access(extends="R-BBBBBBBB"), "UALICE", "30m", "x", WrongState, "is itself an extension"),
        (access(), "UALICE", "5h", "x", BadDuration, "longer than prod-support allows"),
        (access(), "UALICE", "soon", "x", BadDuration, "duration"),
        (access(), "UALICE", "30m", "  ", MissingReason, "Say why"),
        (access(), "UALICE", "30m", "x" * 1001, JitError, "at most 1000"),
    ],
)
def test_what_cannot_be_extended_is_refused_saying_why(
    config: JitConfig,
    original: AccessRequest,
    user: str,
    duration: str,
    reason: str,
    error: type[Exception],
    says: str,
) -> None:
    with pytest.raises(error, match=says):
        extend(config, original, duration, reason, user=user)
