"""The database providers' secrets never leak (the secrets test, tests/security/
test_secrets.py, for PostgreSQL and MariaDB): the passwords in the bot's connection URLs
and the passwords generated for people are scraped for, with every logger at DEBUG, in
every log record, every Slack call and answer, and every database row (audit events,
request errors, the outbox). A generated password may be in one place only: the
ephemeral answer to the click that asked for it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta

import pytest

from providers.mysql import MysqlProvider
from providers.postgresql import PostgresProvider
from tests.conftest import ALICE, Bot
from tests.e2e.helpers import click, submit
from tests.e2e.test_database_credentials import (  # noqa: F401  (fixtures)
    BOT_PASSWORD,
    _bot_dsn,
    _generated,
    _shown,
    instance,
    my,
    pg,
)
from tests.e2e.test_postgresql import AUTO_APPROVE
from tests.fakes.processes import free_port
from tests.kit.configs import roles_yaml
from tests.kit.mysql_server import MyServer
from tests.kit.postgres_server import PgServer
from tests.kit.private_postgres import PrivatePostgres
from tests.security.test_secrets import (  # noqa: F401  (a fixture)
    _database_rows,
    _leaks,
    _log_lines,
    bot_logging,
)

#: The password of a server that is down: its errors must not echo it either.
DOWN_PASSWORD = "down-password-7a6b5c4d3e2f"


def test_no_dsn_or_generated_password_reaches_logs_slack_or_the_database(
    make_bot: Callable[..., Bot],
    pg: PgServer,  # noqa: F811
    my: MyServer,  # noqa: F811
    instance: PrivatePostgres,  # noqa: F811
    bot_logging: pytest.LogCaptureFixture,  # noqa: F811
) -> None:
    caplog = bot_logging
    pg_readers, my_readers = pg.group("readers"), my.group("readers")
    pg_unit = _generated("postgresql", pg.template, pg_readers)
    my_unit = _generated("mysql", my.template, my_readers).replace("JIT_DB_DSN", "JIT_MY_DSN")
    down = _generated("postgresql", pg.template, pg_readers).replace("JIT_DB_DSN", "JIT_DOWN")
    environ = {
        "JIT_DB_DSN": _bot_dsn(pg, instance),
        "JIT_MY_DSN": my.dsn(),
        "JIT_DOWN": f"postgresql://jit:{DOWN_PASSWORD}@127.0.0.1:{free_port()}/orders",
    }
    bot = make_bot(
        roles=roles_yaml(prod=pg_unit + my_unit, staging=pg_unit, db_prod=down, db_dev=my_unit),
        approvers=AUTO_APPROVE,
        providers={
            "postgresql": PostgresProvider(environ, sleep=lambda _: None),
            "mysql": MysqlProvider(environ, marker_role=my.marker, sleep=lambda _: None),
        },
    )

    granted = submit(bot, ALICE, "prod-support prod 1h INC-1")
    assert bot.service.get(granted).status == "active"
    answers, generated = [], []
    for _ in range(2):
        reply = bot.sim.block_action(ALICE, "show_credentials", granted)
        answer = bot.slack.wait_for_response(name=reply.response_url_name)
        bot.settle()
        answers.append(reply.response_url_name)
        shown = _shown(answer)
        generated += _passwords(answer)
        assert shown["password"] in generated
    assert len(set(generated)) == 4, "two logins, two clicks: four passwords"
    click(bot, ALICE, "end_access", granted)
    failed = submit(bot, ALICE, "db-admin prod 1h INC-2")
    assert bot.service.get(failed).status == "failed"
    assert "cannot reach the server" in str(bot.dms_to(ALICE))
    bot.clock.advance(timedelta(seconds=5))
    bot.settle()

    secrets = {
        "DSN password": [BOT_PASSWORD, my.bot_password, DOWN_PASSWORD],
        "generated password": generated,
    }
    slack = bot.slack
    ephemeral = [json.dumps(r) for r in slack.responses if r["_url_name"] in answers]
    places = {
        "the logs": _log_lines(caplog.records),
        # Every Web API call, message and view, and every answer but the ephemeral ones
        # that show the passwords.
        "Slack": [json.dumps(c.params, default=str) for c in slack.calls]
        + [json.dumps(m, default=str) for m in slack.messages + slack.views]
        + [json.dumps(r) for r in slack.responses if r["_url_name"] not in answers],
        "the database": _database_rows(bot.runtime.engine),
    }
    assert all(any(p in text for text in ephemeral) for p in generated)
    assert len(caplog.records) >= 50 and len(places["the database"]) >= 20
    assert {r.name.split(".")[0] for r in caplog.records} >= {"providers", "slack_bolt"}
    assert _leaks(secrets, places) == []


def _passwords(answer: dict[str, object]) -> list[str]:
    """Every password an ephemeral answer shows (one per login)."""
    return re.findall(r"password `([^`]*)`", str(answer.get("blocks")))
