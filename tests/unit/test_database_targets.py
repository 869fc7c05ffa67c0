"""What roles.yaml may say in a database target, and how a mistake is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app import default_providers
from bot.config import ConfigError, load_config
from tests.kit.configs import APPROVERS_YAML, roles_yaml, target

MODELS = {name: p.target_model for name, p in default_providers({}).items()}


def _issues(tmp_path: Path, unit: str) -> list[str]:
    """The issues loading roles.yaml with ``unit`` in every environment reports."""
    roles, approvers = tmp_path / "roles.yaml", tmp_path / "approvers.yaml"
    roles.write_text(roles_yaml(prod=unit, staging=unit, db_prod=unit, db_dev=unit))
    approvers.write_text(APPROVERS_YAML)
    with pytest.raises(ConfigError) as caught:
        load_config(roles, approvers, MODELS)
    return [str(issue) for issue in caught.value.issues]


def test_a_mysql_target_that_would_leave_sessions_open_is_refused_saying_why(
    tmp_path: Path,
) -> None:
    unit = target(
        "mysql", name="orders", dsn_env="DSN", grant_roles="[orders_read]", end_sessions="false"
    )

    issues = _issues(tmp_path, unit)

    assert len(issues) == 4  # one per environment
    assert "roles.prod-support.environments.prod[0].end_sessions" in issues[0]
    assert "an open connection keeps a role it took after REVOKE" in issues[0]
