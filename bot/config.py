"""roles.yaml and approvers.yaml: strict models, loading, and errors that say where.

Every problem is reported as ``file:line: path.inside.file: what is wrong; what was
expected`` so an operator can fix a file without reading code. All problems of both files
are collected and reported together.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from bot.durations import InvalidDuration, format_duration, parse_duration
from providers.base import TargetSpec

Loc = tuple[str | int, ...]

USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
HANDLE = re.compile(r"^@[a-z0-9][a-z0-9._-]*$")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
ENTRY_HELP = "a Slack user id (U0123ABCD), an email address or a user-group handle (@sre-leads)"


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 30m, 2h or 1h30m")
    try:
        return parse_duration(value)
    except InvalidDuration as exc:
        raise ValueError(str(exc)) from None


def _entry(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected {ENTRY_HELP}")
    text = value.strip()
    if USER_ID.match(text) or EMAIL.match(text) or HANDLE.match(text.lower()):
        return text.lower() if text.startswith("@") or "@" in text else text
    raise ValueError(f"'{value}' is not {ENTRY_HELP}")


def _name(value: Any) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise ValueError(
            f"'{value}' is not a valid name; use lower-case letters, digits, '-' and '_'"
        )
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Entry = Annotated[str, BeforeValidator(_entry)]
Name = Annotated[str, BeforeValidator(_name)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Role(_Strict):
    description: str = ""
    max_duration: Duration
    default_duration: Duration | None = None
    requesters: list[Entry] | None = Field(
        default=None, description="who may request; omitted means anyone"
    )
    environments: dict[Name, list[dict[str, Any]]] = Field(min_length=1)

    @field_validator("environments")
    @classmethod
    def _environments_have_targets(
        cls, value: dict[str, list[dict[str, Any]]]
    ) -> dict[str, list[dict[str, Any]]]:
        for env, targets in value.items():
            if not targets:
                raise ValueError(f"environment '{env}' has no targets; expected at least one")
        return value

    @property
    def effective_default(self) -> timedelta:
        return self.default_duration or min(self.max_duration, timedelta(hours=1))


class RolesFile(_Strict):
    roles: dict[Name, Role] = Field(min_length=1)


class Rule(_Strict):
    roles: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    environments: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    requesters: list[Entry] | None = Field(
        default=None, description="the rule applies only to these requesters"
    )
    approvers: list[str] = Field(default_factory=list)
    required_approvals: int = Field(default=1, ge=1, le=10)
    auto_approve: bool = False
    allow_self_approval: bool | None = None

    def matches(self, role: str, environment: str) -> bool:
        return ("*" in self.roles or role in self.roles) and (
            "*" in self.environments or environment in self.environments
        )

    @model_validator(mode="after")
    def _approvers_or_auto(self) -> Rule:
        if self.auto_approve and self.approvers:
            raise ValueError("an auto_approve rule takes no approvers; remove one of the two")
        if not self.auto_approve and not self.approvers:
            raise ValueError(
                "a rule needs approvers (group names from 'groups') or auto_approve: true"
            )
        return self


class Settings(_Strict):
    pending_ttl: Duration = timedelta(hours=1)
    allow_self_approval: bool = False
    sweep_interval: Duration = timedelta(seconds=30)

    @field_validator("sweep_interval")
    @classmethod
    def _sweep_often_enough(cls, value: timedelta) -> timedelta:
        if value > timedelta(seconds=30):
            raise ValueError("expected at most 30s: the sweeper is the backstop for revocation")
        return value


class ApproversFile(_Strict):
    groups: dict[Name, list[Entry]] = Field(default_factory=dict)
    rules: list[Rule] = Field(min_length=1)
    settings: Settings = Field(default_factory=Settings)


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    loc: Loc
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        path = format_loc(self.loc)
        return f"{where}: {path}: {self.message}" if path else f"{where}: {self.message}"


class ConfigError(Exception):
    """One or more problems in the configuration files."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


@dataclass(frozen=True)
class JitConfig:
    """Both files, validated, with every target parsed into its provider's model."""

    roles: dict[str, Role]
    targets: dict[tuple[str, str], list[TargetSpec]]
    groups: dict[str, list[str]]
    rules: list[Rule]
    settings: Settings
    roles_file: str = "roles.yaml"
    approvers_file: str = "approvers.yaml"

    def environments(self, role: str) -> list[str]:
        return list(self.roles[role].environments)

    def allows_self_approval(self, rule: Rule) -> bool:
        if rule.allow_self_approval is not None:
            return rule.allow_self_approval
        return self.settings.allow_self_approval


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; in access config that hides mistakes."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key '{key}' (first on line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(name, (), f"cannot read file: {exc.strerror}")]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = f", column {mark.column + 1}" if mark else ""
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ConfigError(
            [ConfigIssue(name, (), f"YAML syntax error{column}: {problem}", line)]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(name, (), f"YAML syntax error: {exc}")]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(name, (), "expected a mapping at the top of the file", 1)])
    return data, node


def _line_of(node: yaml.Node | None, loc: Loc) -> int | None:
    """The line where ``loc`` is written, or the closest enclosing line we can find."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _fields_at(model: type[BaseModel], loc: Loc) -> list[str] | None:
    """The field names allowed at ``loc`` inside ``model``, for "unknown key" messages."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif typing.get_origin(current) in (dict, Mapping):
            current = typing.get_args(current)[1]
        elif typing.get_origin(current) in (list, Sequence):
            current = typing.get_args(current)[0]
        else:
            return None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return None


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0]
        else:
            return annotation


def _issues_from(
    exc: ValidationError, file: str, node: yaml.Node | None, model: type[BaseModel], prefix: Loc
) -> list[ConfigIssue]:
    issues = []
    for error in exc.errors():
        loc: Loc = prefix + tuple(
            p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))
        )
        kind = error["type"]
        if kind == "extra_forbidden":
            allowed = _fields_at(model, loc[len(prefix) : -1])
            message = f"unknown key '{loc[-1]}'"
            if allowed:
                message += f"; expected one of: {', '.join(allowed)}"
        elif kind == "missing":
            message = f"required key '{loc[-1]}' is missing"
        else:
            message = error["msg"].removeprefix("Value error, ")
            if kind in ("dict_type", "list_type", "string_type", "bool_type", "int_type"):
                message += f" (got {type(error['input']).__name__})"
        issues.append(ConfigIssue(file, loc, message, _line_of(node, loc)))
    return issues


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
    for path in (roles_path, approvers_path):
        try:
            parsed[str(path)] = _read_yaml(path)
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
        issues.extend(_issues_from(exc, rfile, rnode, RolesFile, ()))
    try:
        approvers_model = ApproversFile.model_validate(adata)
    except ValidationError as exc:
        issues.extend(_issues_from(exc, afile, anode, ApproversFile, ()))

    targets: dict[tuple[str, str], list[TargetSpec]] = {}
    if roles_model is not None:
        targets = _parse_targets(roles_model, target_models, rfile, rnode, issues)
    if roles_model is not None:
        issues.extend(_check_roles(roles_model, rfile, rnode))
    if approvers_model is not None:
        issues.extend(_check_groups(approvers_model, afile, anode))
    if roles_model is not None and approvers_model is not None:
        issues.extend(_cross_check(roles_model, approvers_model, rfile, afile, anode, rnode))
    if issues:
        raise ConfigError(issues)
    assert roles_model is not None and approvers_model is not None
    return JitConfig(
        roles=dict(roles_model.roles),
        targets=targets,
        groups={k: list(v) for k, v in approvers_model.groups.items()},
        rules=list(approvers_model.rules),
        settings=approvers_model.settings,
        roles_file=rfile,
        approvers_file=afile,
    )


def _parse_targets(
    roles: RolesFile,
    target_models: Mapping[str, type[TargetSpec]],
    file: str,
    node: yaml.Node | None,
    issues: list[ConfigIssue],
) -> dict[tuple[str, str], list[TargetSpec]]:
    known = ", ".join(sorted(target_models))
    out: dict[tuple[str, str], list[TargetSpec]] = {}
    for role_name, role in roles.roles.items():
        for env, raw_targets in role.environments.items():
            parsed: list[TargetSpec] = []
            for i, raw in enumerate(raw_targets):
                loc: Loc = ("roles", role_name, "environments", env, i)
                if not isinstance(raw, dict):
                    issues.append(
                        ConfigIssue(file, loc, "expected a mapping with a 'provider' key")
                    )
                    continue
                provider = raw.get("provider")
                model = target_models.get(str(provider))
                if model is None:
                    where = (*loc, "provider")
                    message = (
                        "required key is missing"
                        if provider is None
                        else f"unknown provider '{provider}'"
                    )
                    issues.append(
                        ConfigIssue(
                            file,
                            where,
                            f"{message}; expected one of: {known}",
                            _line_of(node, where),
                        )
                    )
                    continue
                try:
                    parsed.append(model.model_validate(raw))
                except ValidationError as exc:
                    issues.extend(_issues_from(exc, file, node, model, loc))
            out[(role_name, env)] = parsed
    return out


def _check_roles(roles: RolesFile, file: str, node: yaml.Node | None) -> list[ConfigIssue]:
    issues = []
    for name, role in roles.roles.items():
        if role.default_duration is not None and role.default_duration > role.max_duration:
            loc: Loc = ("roles", name, "default_duration")
            limit = format_duration(role.max_duration)
            issues.append(
                ConfigIssue(
                    file,
                    loc,
                    f"{format_duration(role.default_duration)} is longer than max_duration "
                    f"{limit}; expected at most {limit}",
                    _line_of(node, loc),
                )
            )
    return issues


def _check_groups(approvers: ApproversFile, file: str, node: yaml.Node | None) -> list[ConfigIssue]:
    issues = []
    groups = sorted(approvers.groups)
    for r, rule in enumerate(approvers.rules):
        for i, group in enumerate(rule.approvers):
            if group not in approvers.groups:
                loc: Loc = ("rules", r, "approvers", i)
                expected = ", ".join(groups) if groups else "(no groups are defined)"
                issues.append(
                    ConfigIssue(
                        file,
                        loc,
                        f"unknown group '{group}'; expected one of: {expected}",
                        _line_of(node, loc),
                    )
                )
    return issues


def _cross_check(
    roles: RolesFile,
    approvers: ApproversFile,
    rfile: str,
    afile: str,
    anode: yaml.Node | None,
    rnode: yaml.Node | None,
) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []

    def add(file: str, node: yaml.Node | None, loc: Loc, message: str) -> None:
        issues.append(ConfigIssue(file, loc, message, _line_of(node, loc)))

    all_envs = sorted({env for role in roles.roles.values() for env in role.environments})
    for r, rule in enumerate(approvers.rules):
        for i, role in enumerate(rule.roles):
            if role != "*" and role not in roles.roles:
                add(
                    afile,
                    anode,
                    ("rules", r, "roles", i),
                    f"unknown role '{role}'; expected '*' or one of: {', '.join(roles.roles)}",
                )
        for i, env in enumerate(rule.environments):
            if env != "*" and env not in all_envs:
                add(
                    afile,
                    anode,
                    ("rules", r, "environments", i),
                    f"unknown environment '{env}'; expected '*' or one of: {', '.join(all_envs)}",
                )
    for role_name, role_spec in roles.roles.items():
        for env in role_spec.environments:
            if not any(rule.matches(role_name, env) for rule in approvers.rules):
                add(
                    rfile,
                    rnode,
                    ("roles", role_name, "environments", env),
                    f"no rule in {afile} can approve role '{role_name}' in '{env}'; expected "
                    "a rule whose roles and environments match it (or '*')",
                )
    return issues
