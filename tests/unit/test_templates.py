"""The pure decisions of bot/templates.py as tables: whose finished request may be asked
for again, and what the request form opens with when the config has moved on since.

The workspace is test_policy's: its roles, rules and people."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import JitConfig, load_config
from bot.errors import JitError, NotAllowed, NotEligible, WrongState
from bot.policy import Standing, match_rule, requestable_roles
from bot.storage.models import AccessRequest, Status
from bot.templates import Note, RequestTemplate, check_repeatable, template_of
from providers.fake import FakeTarget
from tests.unit.test_policy import APPROVERS, ENGINEER, NOBODY, ONCALL, ROLES, member


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> JitConfig:
    folder = tmp_path_factory.mktemp("templates")
    (folder / "roles.yaml").write_text(textwrap.dedent(ROLES))
    (folder / "approvers.yaml").write_text(textwrap.dedent(APPROVERS))
    return load_config(
        Path(folder / "roles.yaml"), Path(folder / "approvers.yaml"), {"fake": FakeTarget}
    )


def finished(
    role: str = "prod-support",
    environment: str = "prod",
    hours: float = 2,
    status: str = Status.DENIED,
    **fields: object,
) -> AccessRequest:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    values: dict[str, object] = {
        "id": "R-AAAAAAAA",
        "requester_id": "UENG",
        "requester_email": "eng@example.com",
        "role": role,
        "environment": environment,
        "reason": "INC-1 <b>",
        "duration_seconds": int(hours * 3600),
        "status": status,
        "rule_index": 3,
        "required_approvals": 1,
        "created_at": now,
        "updated_at": now,
        **fields,
    }
    return AccessRequest(**values)


def template(config: JitConfig, request: AccessRequest, person: tuple[str, ...]) -> RequestTemplate:
    is_member = member(*person)
    return template_of(
        config,
        request,
        requestable_roles(config, is_member, standing=Standing.MEMBER),
        lambda role, env: match_rule(config, role, env, is_member) is not None,
    )


@pytest.mark.parametrize(
    ("request_", "person", "expected"),
    [
        pytest.param(
            finished(),
            ENGINEER,
            ("prod-support", "prod", timedelta(hours=2), ()),
            id="as_it_was",
        ),
        pytest.param(
            finished(hours=6),
            ENGINEER,
            ("prod-support", "prod", timedelta(hours=4), (Note.DURATION_CAPPED,)),
            id="over_the_maximum_now_capped",
        ),
        pytest.param(
            finished(role="retired"),
            ENGINEER,
            ("prod-support", "prod", timedelta(hours=1), (Note.ROLE_GONE,)),
            id="role_gone_first_requestable_role_with_its_default",
        ),
        pytest.param(
            finished(),
            NOBODY,
            ("db-admin", "prod", timedelta(hours=1), (Note.ROLE_NOT_YOURS,)),
            id="no_longer_a_requester",
        ),
        pytest.param(
            finished(environment="qa"),
            ENGINEER,
            ("prod-support", None, timedelta(hours=2), (Note.ENVIRONMENT_GONE,)),
            id="environment_gone_left_unchosen",
        ),
        pytest.param(
            finished(role="break-glass", hours=3),
            ONCALL,
            (
                "break-glass",
                None,
                timedelta(hours=1),
                (Note.ENVIRONMENT_NOT_COVERED, Note.DURATION_CAPPED),
            ),
            id="no_rule_covers_the_person_there_and_over_the_maximum",
        ),
    ],
)
def test_template_of(
    config: JitConfig,
    request_: AccessRequest,
    person: tuple[str, ...],
    expected: tuple[str, str | None, timedelta, tuple[Note, ...]],
) -> None:
    filled = template(config, request_, person)
    assert (filled.role, filled.environment, filled.duration, filled.notes) == expected
    # The reason is kept as typed, whatever else changed; the form shows it as plain text.
    assert (filled.reason, filled.source) == ("INC-1 <b>", request_)


def test_nobody_who_may_request_nothing_gets_a_form(config: JitConfig) -> None:
    with pytest.raises(NotEligible, match="no role you may request"):
        template_of(config, finished(), [], lambda role, env: True)


@pytest.mark.parametrize(
    ("request_", "user", "refusal", "words"),
    [
        pytest.param(finished(), "UOTHER", NotAllowed, "someone else's request", id="not_theirs"),
        pytest.param(
            finished(status=Status.ACTIVE), "UENG", WrongState, "active, not finished", id="active"
        ),
        pytest.param(
            finished(status=Status.PENDING),
            "UENG",
            WrongState,
            "pending, not finished",
            id="pending",
        ),
        pytest.param(
            finished(status=Status.EXTENDED, extends="R-BBBBBBBB"),
            "UENG",
            WrongState,
            "request again from R-BBBBBBBB",
            id="an_extension",
        ),
    ],
)
def test_check_repeatable_refuses(
    request_: AccessRequest, user: str, refusal: type[JitError], words: str
) -> None:
    with pytest.raises(refusal, match=words):
        check_repeatable(request_, user)


@pytest.mark.parametrize(
    "status",
    [Status.REVOKED, Status.DENIED, Status.EXPIRED, Status.CANCELLED, Status.FAILED],
)
def test_every_finished_request_may_be_asked_for_again_by_its_requester(
    config: JitConfig, status: str
) -> None:
    request = finished(status=status)
    check_repeatable(request, "UENG")  # no refusal
    assert template(config, request, ENGINEER).role == "prod-support"
