"""The bot as operators run it: a real OS process started with ``python -m bot serve``.

These tests cover what the in-process tests cannot: the command line, the environment
contract, start-up migrations, Socket Mode selection, and that a crash loses nothing —
the database is the truth, so a new process revokes what expired while none was running.
"""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from bot.slack.blocks import HELP
from bot.storage.db import HEAD
from bot.storage.models import AccessRequest
from tests.conftest import ALICE, BOT_TOKEN, SIGNING_SECRET
from tests.fakes.processes import JIT_BOT_SCRIPT, START_TIMEOUT, Launcher, free_port, get, wait
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_client import SlackSim
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.kit.processes import APP_TOKEN, TARGET
from tests.kit.processes import bot_env as _bot_env


def _rows(database_url: str) -> list[sa.Row[Any]]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text("SELECT id, status FROM access_request")))
    finally:
        engine.dispose()


def _outbox_pending(database_url: str) -> int:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            count = connection.scalar(
                sa.text("SELECT count(*) FROM outbox_message WHERE status = 'pending'")
            )
            return int(count or 0)
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------- start-up


# With neither set, serve starts local mode instead (tests/e2e/test_local_mode.py).
@pytest.mark.parametrize("missing", [["SLACK_BOT_TOKEN"], ["SLACK_SIGNING_SECRET"]])
def test_serve_without_slack_credentials_exits_naming_each_missing_variable(
    launcher: Launcher, missing: list[str]
) -> None:
    present = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET}
    env = launcher.env(
        **{name: None if name in missing else value for name, value in present.items()}
    )
    process = launcher.start(["serve"], {**env, "PORT": str(free_port())})

    assert process.wait_exit() != 0, process.output()
    stderr = process.stderr.read_text()
    first_line = stderr.strip().splitlines()[0]
    for name in missing:
        assert name in first_line, process.output()
    assert "slack-manifest.yaml" in stderr, process.output()
    assert "Traceback" not in stderr, process.output()


def test_serve_with_a_bad_roles_file_exits_naming_file_path_and_expectation(
    launcher: Launcher, fake_slack: FakeSlack, receiver: WebhookReceiver, database_url: str
) -> None:
    env = _bot_env(launcher, fake_slack, receiver, database_url)
    roles = Path(env["JIT_ROLES_FILE"])
    roles.write_text(roles.read_text().replace("max_duration:", "max_durration:", 1))

    process = launcher.start(["serve"], {**env, "PORT": str(free_port())})

    assert process.wait_exit() != 0, process.output()
    stderr = process.stderr.read_text()
    assert str(roles) in stderr, process.output()
    assert "max_durration" in stderr, process.output()
    assert "Traceback" not in stderr, process.output()


def test_serve_with_aws_targets_and_an_aws_profile_that_is_not_there_exits_naming_it(
    launcher: Launcher, fake_slack: FakeSlack, receiver: WebhookReceiver, database_url: str
) -> None:
    """boto3 reads its settings when the first AWS target is checked: a bot whose roles
    use AWS refuses to start on a profile that is not there, naming the target, rather
    than failing its first grant (a bot without AWS targets never imports boto3:
    tests/unit/test_start_imports.py)."""
    env = _bot_env(launcher, fake_slack, receiver, database_url)
    roles = Path(env["JIT_ROLES_FILE"])
    aws = (
        "\n        - provider: aws\n          permission_set: ProdSupport\n"
        '          accounts: ["111111111111"]\n'
    )
    roles.write_text(roles.read_text().rstrip("\n") + aws)
    config_dir = launcher.tmp_path / "aws"
    config_dir.mkdir()
    (config_dir / "config").write_text("[profile staging]\nregion = eu-west-1\n")
    env |= {"AWS_PROFILE": "prodution", "AWS_CONFIG_FILE": str(config_dir / "config")}

    process = launcher.start(["serve"], {**env, "PORT": str(free_port())})

    assert process.wait_exit() != 0, process.output()
    stderr = process.stderr.read_text()
    assert str(roles) in stderr, process.output()
    assert "AWS credentials" in stderr and "(prodution)" in stderr, process.output()
    assert "Traceback" not in stderr, process.output()


def test_serve_in_http_mode_answers_health_and_signed_slack_requests_only(
    launcher: Launcher, fake_slack: FakeSlack, receiver: WebhookReceiver, database_url: str
) -> None:
    process = launcher.serve(_bot_env(launcher, fake_slack, receiver, database_url))

    assert process.wait_healthy() == {"status": "ok"}
    status, body = get(f"{process.url}/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}

    sim = SlackSim(process.url, SIGNING_SECRET, fake_slack)
    reply = sim.command(ALICE, "help")
    assert reply.status == 200, reply
    answer = fake_slack.wait_for_response(name=reply.response_url_name)
    assert answer["text"] == HELP
    assert answer.get("response_type") == "ephemeral"

    command = urlencode(
        {"command": "/jit", "text": "help", "user_id": ALICE, "response_url": "http://x/"}
    )
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    unsigned = sim.raw(command, form)
    assert unsigned.status == 401, unsigned
    forged = SlackSim(process.url, "not-the-signing-secret", fake_slack)
    assert forged.raw(command, {**form, **forged.sign(command)}).status == 401
    stale = sim.sign(command, timestamp=int(time.time()) - 600)
    assert sim.raw(command, {**form, **stale}).status == 401
    assert len(fake_slack.responses) == 1, "a rejected request must not be processed"

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            assert [row[0] for row in versions] == [HEAD]
            assert "access_request" in sa.inspect(connection).get_table_names()
    finally:
        engine.dispose()
    assert process.popen.poll() is None, process.output()


def test_socket_mode_is_chosen_when_an_app_token_is_set(
    launcher: Launcher, fake_slack: FakeSlack, receiver: WebhookReceiver, database_url: str
) -> None:
    # socket_url points at a closed port: the websocket connect fails, and the process must
    # stay up (retrying) rather than die on its first connection attempt.
    env = _bot_env(launcher, fake_slack, receiver, database_url, SLACK_APP_TOKEN=APP_TOKEN)
    process = launcher.serve(env)

    opened = fake_slack.wait_for_calls("apps.connections.open", timeout=START_TIMEOUT)
    assert opened[0].ok
    # Healthy (grants still end on time without Slack), and saying Slack is not there yet.
    assert process.wait_healthy() == {"status": "ok", "slack": "connecting"}
    time.sleep(1.0)  # long enough for a failed first connect to have killed the process
    assert process.popen.poll() is None, process.output()
    assert process.wait_healthy() == {"status": "ok", "slack": "connecting"}

    process.popen.send_signal(signal.SIGTERM)
    assert process.wait_exit() == 0, process.output()


def test_socket_mode_keeps_retrying_when_slack_is_unavailable_at_start_up(
    launcher: Launcher, fake_slack: FakeSlack, receiver: WebhookReceiver, database_url: str
) -> None:
    fake_slack.fail_next("apps.connections.open", status=503)
    env = _bot_env(launcher, fake_slack, receiver, database_url, SLACK_APP_TOKEN=APP_TOKEN)
    process = launcher.serve(env)

    assert process.wait_healthy() == {"status": "ok", "slack": "connecting"}
    opened = fake_slack.wait_for_calls("apps.connections.open", timeout=START_TIMEOUT)
    assert len([c for c in fake_slack.calls if c.method == "apps.connections.open"]) >= 2
    assert opened[0].ok
    assert process.popen.poll() is None, process.output()


def test_socket_mode_with_a_token_slack_refuses_exits_with_a_clear_message(
    launcher: Launcher, fake_slack: FakeSlack, receiver: WebhookReceiver, database_url: str
) -> None:
    env = _bot_env(launcher, fake_slack, receiver, database_url, SLACK_APP_TOKEN="xapp-1-revoked")
    process = launcher.serve(env)

    assert process.wait_exit() == 2, process.output()
    stderr = process.stderr.read_text()
    assert "SLACK_APP_TOKEN" in stderr and "invalid_auth" in stderr, process.output()
    assert "Traceback" not in stderr, process.output()


def test_sigterm_stops_the_bot_cleanly(
    launcher: Launcher, fake_slack: FakeSlack, receiver: WebhookReceiver, database_url: str
) -> None:
    process = launcher.serve(_bot_env(launcher, fake_slack, receiver, database_url))
    process.wait_healthy()

    process.popen.send_signal(signal.SIGTERM)

    assert process.wait_exit() == 0, process.output()
    assert "Traceback" not in process.stderr.read_text(), process.output()


# ---------------------------------------------------------------------------- crash


def test_grant_that_expired_while_the_bot_was_down_is_revoked_at_next_start(
    launcher: Launcher, fake_slack: FakeSlack, receiver: WebhookReceiver, database_url: str
) -> None:
    env = _bot_env(launcher, fake_slack, receiver, database_url)
    first = launcher.serve(env)
    first.wait_healthy()

    sim = SlackSim(first.url, SIGNING_SECRET, fake_slack)
    reply = sim.command(ALICE, "request tooling dev 1h INC-7 rotate the dashboards")
    assert reply.status == 200, reply
    answer = fake_slack.wait_for_response(name=reply.response_url_name)
    assert "approved by rule" in answer["text"], answer
    wait(
        lambda: ("alice@example.com", TARGET) in receiver.holdings,
        START_TIMEOUT,
        "the webhook receiver to hold the grant",
    )
    [(request_id, status)] = wait(
        lambda: [r for r in _rows(database_url) if r.status == "active"],
        START_TIMEOUT,
        "the request to be active",
    )
    assert request_id.startswith("R-") and status == "active"
    # Crash at a quiet moment: a Slack post the dead bot had claimed mid-send would wait
    # out its claim before the next bot may send it (test_crash_safety covers that case).
    wait(lambda: _outbox_pending(database_url) == 0, START_TIMEOUT, "the outbox to drain")

    first.crash()
    assert receiver.holdings == {("alice@example.com", TARGET)}, "nothing revokes a dead bot"

    # Time passes while no bot runs: the grant's end is now in the past.
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as connection:
            table = AccessRequest.__table__  # type: ignore[attr-defined]
            moved = connection.execute(
                sa.update(table)
                .where(table.c.id == request_id)
                .values(expires_at=datetime.now(UTC) - timedelta(minutes=5))
            )
            assert moved.rowcount == 1
    finally:
        engine.dispose()

    second = launcher.serve(env)
    second.wait_healthy()

    wait(lambda: not receiver.holdings, START_TIMEOUT, "the receiver to lose the grant")
    revokes = [e for e in receiver.events if e["event"] == "revoke" and not e["replay"]]
    assert [(e["request_id"], e["target"]["name"]) for e in revokes] == [(request_id, TARGET)]
    wait(
        lambda: _rows(database_url) == [(request_id, "revoked")],
        START_TIMEOUT,
        "the request to be revoked",
    )
    fake_slack.wait_for(
        lambda: [
            m
            for m in fake_slack.messages_in(ALICE)
            if "has ended" in m["text"] and request_id in m["text"]
        ],
        timeout=START_TIMEOUT,
    )
    assert second.popen.poll() is None, second.output()


# ---------------------------------------------------------------------------- db upgrade


@pytest.mark.skipif(not JIT_BOT_SCRIPT.exists(), reason="jit-bot console script not installed")
def test_db_upgrade_creates_the_schema_and_is_idempotent(
    launcher: Launcher, database_url: str
) -> None:
    env = launcher.env(DATABASE_URL=database_url)
    for run in (1, 2):
        process = launcher.start(["db", "upgrade"], env, name=f"upgrade{run}", script=True)
        assert process.wait_exit() == 0, process.output()
        assert "up to date" in process.stdout.read_text()

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            tables = set(sa.inspect(connection).get_table_names())
            versions = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            assert [row[0] for row in versions] == [HEAD]
    finally:
        engine.dispose()
    assert {"access_request", "request_target", "vote", "alembic_version"} <= tables
