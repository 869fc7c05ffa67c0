"""Reading both files: YAML parsed strictly (duplicate keys are errors), validated
against the models, every target parsed by its provider's model, then cross-checked.
Every problem of both files is collected and raised together as one ConfigError.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from bot.config.checks import (
    check_break_glass,
    check_email_domains,
    check_groups,
    check_identities,
    check_roles,
    check_shortest_grants,
    cross_check,
)
from bot.config.issues import ConfigError, ConfigIssue, Loc
from bot.config.messages import describe_value, issues_from, line_of, suggest, yaml_syntax_issue
from bot.config.models import ApproversFile, JitConfig, RolesFile
from providers.base import TargetSpec


def _duplicate_keys(file: str, root: yaml.Node) -> list[ConfigIssue]:
    """PyYAML silently keeps the last of two equal keys; in access config that hides
    mistakes (a second ``max_duration``, a role defined twice), so each is an error."""
    issues: list[ConfigIssue] = []
    seen_nodes: set[int] = set()

    def walk(node: yaml.Node, loc: Loc) -> None:
        if id(node) in seen_nodes:  # anchors and aliases share (even recursive) nodes
            return
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                key, line = key_node.value, key_node.start_mark.line + 1
                if key in first:
                    issues.append(
                        ConfigIssue(
                            file,
                            (*loc, key),
                            f"duplicate key '{key}' (first on line {first[key]}); expected "
                            "each key once: YAML would silently keep only the last",
                            line,
                        )
                    )
                else:
                    first[key] = line
                walk(value_node, (*loc, key))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*loc, index))

    walk(root, ())
    return issues


def _read_yaml(path: Path, model: type[BaseModel]) -> tuple[Any, yaml.Node | None]:
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [ConfigIssue(name, (), f"cannot read file: {exc.strerror}; expected a readable file")]
        ) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigIssue(name, (), "expected a UTF-8 text file")]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None and (duplicates := _duplicate_keys(name, node)):
            raise ConfigError(duplicates)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([yaml_syntax_issue(name, exc)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(name, (), f"YAML syntax error: {exc}")]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        keys = ", ".join(f"{k}:" for k in model.model_fields)
        raise ConfigError(
            [
                ConfigIssue(
                    name,
                    (),
                    f"the file holds {describe_value(data)}; expected a mapping at the top of "
                    f"the file (with the keys {keys})",
                    1,
                )
            ]
        )
    return data, node


def load_config(
    roles_path: str | Path,
    approvers_path: str | Path,
    target_models: Mapping[str, type[TargetSpec]],
) -> JitConfig:
    """Load and cross-check both files; raise ConfigError listing every problem."""
    roles_path, approvers_path = Path(roles_path), Path(approvers_path)
    rfile, afile = str(roles_path), str(approvers_path)
    issues: list[ConfigIssue] = []
    parsed: dict[str, tuple[Any, yaml.Node | None]] = {}
    files: tuple[tuple[Path, type[BaseModel]], ...] = (
        (roles_path, RolesFile),
        (approvers_path, ApproversFile),
    )
    for path, model in files:
        try:
            parsed[str(path)] = _read_yaml(path, model)
        except ConfigError as exc:
            issues.extend(exc.issues)
    if issues:
        raise ConfigError(issues)
    (rdata, rnode), (adata, anode) = parsed[rfile], parsed[afile]

    roles_model: RolesFile | None = None
    approvers_model: ApproversFile | None = None
    try:
        roles_model = RolesFile.model_validate(rdata)
    except ValidationError as exc:
        issues.extend(issues_from(exc, rfile, rnode, RolesFile, ()))
    targets = _parse_targets(rdata, target_models, rfile, rnode, issues)
    try:
        approvers_model = ApproversFile.model_validate(adata)
    except ValidationError as exc:
        issues.extend(issues_from(exc, afile, anode, ApproversFile, ()))

    if roles_model is not None:
        issues.extend(check_roles(roles_model, rfile, rnode))
        issues.extend(check_shortest_grants(roles_model, targets, rfile, rnode))
    if approvers_model is not None:
        issues.extend(check_groups(approvers_model, afile, anode))
    if roles_model is not None and approvers_model is not None:
        issues.extend(cross_check(roles_model, approvers_model, rfile, afile, anode, rnode))
        issues.extend(check_break_glass(roles_model, approvers_model, afile, anode))
    if approvers_model is not None:
        issues.extend(check_email_domains(targets, approvers_model.settings, rfile, afile, anode))
        issues.extend(check_identities(targets, approvers_model.settings, rfile, rnode))
    # A model is None only when its validation added issues.
    if issues or roles_model is None or approvers_model is None:
        # Read like a compiler's output: roles.yaml then approvers.yaml, top to bottom.
        raise ConfigError(sorted(issues, key=lambda i: (i.file != rfile, i.line or 0)))
    return JitConfig(
        roles=dict(roles_model.roles),
        targets=targets,
        groups={k: list(v) for k, v in approvers_model.groups.items()},
        rules=list(approvers_model.rules),
        settings=approvers_model.settings,
        roles_file=rfile,
        approvers_file=afile,
    )


def _raw_environments(data: Any) -> list[tuple[str, str, list[Any]]]:
    """(role, environment, targets) wherever the raw file is shaped well enough to say.
    Targets are read from the raw data, not the RolesFile model, so a provider's problems
    are reported even while another part of the file is still wrong."""
    found = []
    roles = data.get("roles") if isinstance(data, dict) else None
    for role_name, role in roles.items() if isinstance(roles, dict) else ():
        environments = role.get("environments") if isinstance(role, dict) else None
        for env, targets in environments.items() if isinstance(environments, dict) else ():
            if isinstance(targets, list):
                found.append((str(role_name), str(env), targets))
    return found


def _parse_targets(
    data: Any,
    target_models: Mapping[str, type[TargetSpec]],
    file: str,
    node: yaml.Node | None,
    issues: list[ConfigIssue],
) -> dict[tuple[str, str], list[TargetSpec]]:
    known = sorted(target_models)
    out: dict[tuple[str, str], list[TargetSpec]] = {}
    for role_name, env, raw_targets in _raw_environments(data):
        parsed: list[TargetSpec] = []
        for i, raw in enumerate(raw_targets):
            loc: Loc = ("roles", role_name, "environments", env, i)
            if not isinstance(raw, dict):
                issues.append(
                    ConfigIssue(
                        file,
                        loc,
                        f"expected a mapping with a 'provider' key, got {describe_value(raw)}",
                        line_of(node, loc),
                    )
                )
                continue
            provider = raw.get("provider")
            model = target_models.get(str(provider))
            if model is None:
                where = (*loc, "provider")
                message = (
                    "required key 'provider' is missing"
                    if provider is None
                    else f"unknown provider '{provider}'{suggest(provider, list(known))}"
                )
                issues.append(
                    ConfigIssue(
                        file,
                        where,
                        f"{message}; expected one of: {', '.join(known)}",
                        line_of(node, where),
                    )
                )
                continue
            try:
                parsed.append(model.model_validate(raw))
            except ValidationError as exc:
                issues.extend(issues_from(exc, file, node, model, loc))
        out[(role_name, env)] = parsed
    return out
