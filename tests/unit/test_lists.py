"""``among``: ``column IN (values)``, as one bound array on PostgreSQL, on both databases
answering as ``IN`` does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from bot.storage.db import make_engine, upgrade
from bot.storage.lists import among
from bot.storage.models import AccessRequest, Status

_NOW = datetime(2026, 12, 7, tzinfo=UTC)


def _request(request_id: str, email: str) -> AccessRequest:
    return AccessRequest(
        id=request_id,
        requester_id="U1",
        requester_email=email,
        role="ops",
        environment="prod",
        reason="why",
        duration_seconds=3600,
        status=Status.ACTIVE,
        rule_index=0,
        required_approvals=1,
        approvers=[],
        created_at=_NOW,
        updated_at=_NOW,
    )


@pytest.fixture
def session(database_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(database_url)
    upgrade(engine)
    with Session(engine) as session:
        session.add_all(
            [
                _request("R-" + "A" * 30, "alice@example.com"),  # as long as an id may be
                _request("R-2", "bob@example.com"),
                _request("R-3", "carol@example.com"),
            ]
        )
        session.commit()
        yield session
    engine.dispose()


def _ids(session: Session, *where: object) -> list[str]:
    query = select(col(AccessRequest.id)).where(*where).order_by(col(AccessRequest.id))  # type: ignore[arg-type]
    return list(session.scalars(query))


def test_among_finds_what_in_finds(session: Session) -> None:
    asked = ["R-3", "R-2", "R-9"]
    assert _ids(session, among(session, col(AccessRequest.id), asked)) == ["R-2", "R-3"]
    assert _ids(session, ~among(session, col(AccessRequest.id), asked)) == ["R-" + "A" * 30]
    emails = {"carol@example.com"}  # any iterable, a set included
    assert _ids(session, among(session, col(AccessRequest.requester_email), emails)) == ["R-3"]
    assert _ids(session, among(session, col(AccessRequest.id), [])) == []


def test_a_value_longer_than_the_column_is_not_cut_to_match(session: Session) -> None:
    # Cast to the column's VARCHAR(32), "R-AAA…AX" (33 characters) would become the
    # stored id and name a request nobody asked for.
    longer = "R-" + "A" * 30 + "X"
    assert _ids(session, among(session, col(AccessRequest.id), [longer])) == []


def test_on_postgresql_the_list_is_one_parameter(session: Session) -> None:
    statement = select(col(AccessRequest.id)).where(
        among(session, col(AccessRequest.id), ["R-1", "R-2", "R-3"])
    )
    compiled = statement.compile(dialect=session.get_bind().dialect)
    if session.get_bind().dialect.name == "postgresql":
        assert "= ANY (" in str(compiled) and len(compiled.params) == 1
    else:
        assert " IN (" in str(compiled)
