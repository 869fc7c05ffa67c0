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


HOSTILE_ROLES = ['orders"; DROP ROLE x; --', "orders`read", "orders'read", "orders;read", "a b"]
HOSTILE_TEMPLATES = ['"{email}"', "{local}`", "x'{local}", "{email};drop", "{local} x"]


@pytest.mark.parametrize("provider", ["postgresql", "mysql"])
@pytest.mark.parametrize("role", HOSTILE_ROLES)
def test_a_role_name_with_quotes_backticks_or_semicolons_is_refused_by_the_config(
    tmp_path: Path, provider: str, role: str
) -> None:
    unit = target(provider, name="orders", dsn_env="DSN", grant_roles=f"[{role!r}]")

    issues = _issues(tmp_path, unit)

    assert "environments.prod[0].grant_roles[0]" in issues[0]
    assert "has the wrong form" in issues[0]


@pytest.mark.parametrize("provider", ["postgresql", "mysql"])
@pytest.mark.parametrize("template", HOSTILE_TEMPLATES)
def test_a_login_template_with_quotes_backticks_or_semicolons_is_refused_by_the_config(
    tmp_path: Path, provider: str, template: str
) -> None:
    unit = target(
        provider,
        name="orders",
        dsn_env="DSN",
        grant_roles="[orders]",
        login_template=repr(template),
    )

    issues = _issues(tmp_path, unit)

    assert "environments.prod[0].login_template" in issues[0]
