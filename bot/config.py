"""roles.yaml and approvers.yaml: strict models, loading, and errors that say where.

Every problem is reported as ``file:line: path.inside.file: what is wrong; what was
expected`` so an operator can fix a file without reading code. All problems of both files
are collected and reported together.
"""

from __future__ import annotations

import difflib
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
from pydantic_core import ErrorDetails

from bot.durations import InvalidDuration, format_duration, parse_duration
from providers.base import TargetSpec

Loc = tuple[str | int, ...]

USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
HANDLE = re.compile(r"^@[a-z0-9][a-z0-9._-]*$")
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
# Providers that hand out nothing real (tests, demos): no email domain restriction needed.
_NO_REAL_ACCESS = frozenset({"fake"})
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
ENTRY_HELP = "a Slack user id (U0123ABCD), an email address or a user-group handle (@sre-leads)"
GOOGLE_GROUP = "google:"  # google:<group email>: a Google Workspace group
DURATION_HELP = "a duration such as 30m, 2h or 1h30m (a number followed by d, h, m or s)"


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected {DURATION_HELP}")
    if not isinstance(value, str):
        # YAML reads "90" (and even "1:30") as a number; the unit is what is missing.
        raise ValueError(f"{value} has no unit; expected {DURATION_HELP}")
    try:
        return parse_duration(value)
    except InvalidDuration as exc:
        # parse_duration's own advice is worded for Slack users; keep only the diagnosis.
        reason = str(exc).split(";")[0]
        raise ValueError(f"{reason}; expected {DURATION_HELP}") from None


def _entry(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected {ENTRY_HELP}")
    text = value.strip()
    if text.lower().startswith(GOOGLE_GROUP):
        # A Google Workspace group, resolved through the Admin SDK (bot/google_groups.py).
        group = text[len(GOOGLE_GROUP) :].strip()
        if not EMAIL.match(group):
            raise ValueError(
                f"'{value}' is not a valid Google group entry; expected google:<group email>, "
                "for example google:sre-leads@example.com"
            )
        return f"{GOOGLE_GROUP}{group.lower()}"
    if USER_ID.match(text) or EMAIL.match(text) or HANDLE.match(text.lower()):
        return text.lower() if "@" in text else text
    hint = ""
    if HANDLE.match(f"@{text.lower()}"):
        hint = f" (did you mean '@{text}'? user-group handles start with @)"
    raise ValueError(f"'{value}' is not a valid entry{hint}; expected {ENTRY_HELP}")


def _domain(value: Any) -> str:
    text = value.strip().lower().removeprefix("@") if isinstance(value, str) else ""
    if not DOMAIN.match(text):
        raise ValueError(
            f"'{value}' is not an email domain; expected a domain such as example.com "
            "(the part of an email after the @)"
        )
    return text


# Names are shown as options in Slack's menus, whose text holds 75 characters.
NAME_MAX = 64


def _name(value: Any) -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise ValueError(
            f"'{value}' is not a valid name; expected lower-case letters, digits, '-' and '_' "
            "(for example prod-support)"
        )
    if len(value) > NAME_MAX:
        raise ValueError(
            f"'{value[:NAME_MAX]}…' is {len(value)} characters long; expected a name of at "
            f"most {NAME_MAX} characters"
        )
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Entry = Annotated[str, BeforeValidator(_entry)]
Name = Annotated[str, BeforeValidator(_name)]
EmailDomain = Annotated[str, BeforeValidator(_domain)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Role(_Strict):
    description: str = ""
    max_duration: Duration
    default_duration: Duration | None = None
    requesters: Annotated[list[Entry], Field(min_length=1)] | None = Field(
        default=None, description="who may request; omitted means the workspace's full members"
    )
    # Guests (multi- and single-channel) may request, approve and hold this role; bots,
    # deactivated accounts and accounts of other workspaces never may.
    allow_guests: bool = False
    # Targets stay raw here: each is parsed by its provider's model in _parse_targets.
    environments: dict[Name, Annotated[list[Any], Field(min_length=1)]] = Field(min_length=1)

    @property
    def effective_default(self) -> timedelta:
        return self.default_duration or min(self.max_duration, timedelta(hours=1))


class RolesFile(_Strict):
    roles: dict[Name, Role] = Field(min_length=1)


class Rule(_Strict):
    roles: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    environments: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    requesters: Annotated[list[Entry], Field(min_length=1)] | None = Field(
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
            raise ValueError("has both auto_approve: true and approvers; expected one or the other")
        if not self.auto_approve and not self.approvers:
            raise ValueError(
                "has neither approvers nor auto_approve; expected approvers (group names "
                "from 'groups') or auto_approve: true"
            )
        return self


class Settings(_Strict):
    pending_ttl: Duration = timedelta(hours=1)
    allow_self_approval: bool = False
    sweep_interval: Duration = timedelta(seconds=30)
    # People who may run /jit sync besides approvers.
    admins: list[Entry] = Field(default_factory=list)
    # How often cloud assignments are compared with the grants the database knows.
    reconcile_interval: Duration = timedelta(minutes=10)
    # Remove cloud assignments that no jit-bot grant explains (otherwise only report them).
    revoke_unknown: bool = False
    # Per-person quotas (bot/quotas.py), so one account cannot bury the approvers in DMs
    # or keep the bots busy re-reading Slack and the clouds.
    max_pending_per_person: int = Field(default=10, ge=1, le=1000)
    max_requests_per_person_per_hour: int = Field(default=30, ge=1, le=10000)
    sync_per_person_per_hour: int = Field(default=10, ge=1, le=1000)
    # Revoke calls made at once to one provider (for webhooks: to one receiving service).
    # One that hangs holds up only these; every other provider keeps its own.
    revoke_concurrency: int = Field(default=8, ge=1, le=64)
    # One revocation's time, all timeouts and retries included; then it is revoke_failed,
    # announced, and retried by the sweeper.
    revoke_deadline: Duration = timedelta(minutes=2)
    # The Slack email is what names the cloud principal, and whoever can set an email
    # could otherwise pick any cloud user: only these domains are served (required as
    # soon as a provider hands out real access; see _check_email_domains).
    allowed_email_domains: list[EmailDomain] = Field(default_factory=list)

    @field_validator("sweep_interval")
    @classmethod
    def _sweep_often_enough(cls, value: timedelta) -> timedelta:
        if value > timedelta(seconds=30):
            raise ValueError(
                f"{format_duration(value)} is too long; expected at most 30s "
                "(the sweeper is the backstop for revocation)"
            )
        return value

    @field_validator("revoke_deadline")
    @classmethod
    def _deadline_in_reach(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(hours=1):
            raise ValueError(
                f"{format_duration(value)} is out of range; expected between 1s and 1h "
                "(long enough for a provider's retries, short enough to notice a hang)"
            )
        return value


class ApproversFile(_Strict):
    # An empty group could never approve anything: requests would wait until they expire.
    groups: dict[Name, Annotated[list[Entry], Field(min_length=1)]] = Field(default_factory=dict)
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


# Plain-language advice for the YAML mistakes people make in these files, by a phrase
# of PyYAML's problem text.
_YAML_HINTS = (
    (
        "'@' that cannot start any token",
        'expected the value in quotes, such as "@sre-leads" (a plain YAML value cannot '
        "start with @)",
    ),
    ("'\\t'", "expected spaces for indentation; YAML does not allow tabs"),
    ("<block end>", "expected this line to be indented like the lines around it"),
    (
        "mapping values are not allowed here",
        "expected one 'key: value' per line; quote a value that contains ': '",
    ),
    ("end of stream", "expected the quote or bracket opened above to be closed"),
)


def _yaml_syntax_issue(file: str, exc: yaml.MarkedYAMLError) -> ConfigIssue:
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or "invalid YAML"
    message = "YAML syntax error"
    if mark is not None:
        message += f" at column {mark.column + 1}"
    message += f": {problem}"
    if exc.context:
        message += f" ({exc.context})"
    hint = next((h for phrase, h in _YAML_HINTS if phrase in problem), None)
    if hint is None and not problem.startswith("expected"):
        hint = "expected valid YAML; check indentation, quotes and brackets"
    if hint:
        message += f"; {hint}"
    return ConfigIssue(file, (), message, mark.line + 1 if mark else None)


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
        raise ConfigError([_yaml_syntax_issue(name, exc)]) from None
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
                    f"the file holds {_got(data)}; expected a mapping at the top of the file "
                    f"(with the keys {keys})",
                    1,
                )
            ]
        )
    return data, node


def _got(value: Any) -> str:
    """A short description of a wrong value, for "…, got X" messages."""
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _suggest(word: object, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


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


def line_in(path: str | Path, loc: Loc) -> int | None:
    """The line where ``loc`` is written in a YAML file, for problems found after loading
    (a provider's ``validate``); None when the file cannot be read or parsed."""
    try:
        node = yaml.compose(Path(path).read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return _line_of(node, loc)


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
        # "function-…" parts name validators and "[key]" a dict key, not places in the file.
        loc: Loc = prefix + tuple(
            p
            for p in error["loc"]
            if not (isinstance(p, str) and (p.startswith("function-") or p == "[key]"))
        )
        message = _describe(error, model, loc, prefix)
        issues.append(ConfigIssue(file, loc, message, _line_of(node, loc)))
    return issues


_ITEM_NAMES = {"roles": "role", "environments": "environment", "rules": "rule"}


def _describe(error: ErrorDetails, model: type[BaseModel], loc: Loc, prefix: Loc) -> str:
    """Pydantic's message reworded as "what is wrong; what was expected"."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    got = _got(value)
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc[len(prefix) : -1]) or []
        message = f"unknown key '{loc[-1]}'{_suggest(loc[-1], allowed)}"
        return f"{message}; expected one of: {', '.join(allowed)}" if allowed else message
    if kind == "missing":
        where = f"in {format_loc(loc[:-1])}" if loc[:-1] else "at the top of the file"
        return f"required key '{loc[-1]}' is missing; expected it {where}"
    if kind == "dict_type":
        return f"expected a mapping of 'key: value' entries, got {got}"
    if kind == "list_type":
        return f"expected a list such as [a, b], got {got}"
    if kind == "string_type":
        return f"expected text, got {got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {got}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {got}"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {got}"
    if kind == "greater_than_equal":
        return f"{got} is too small; expected at least {ctx.get('ge')}"
    if kind == "greater_than":
        return f"{got} is too small; expected more than {ctx.get('gt')}"
    if kind == "less_than_equal":
        return f"{got} is too large; expected at most {ctx.get('le')}"
    if kind == "less_than":
        return f"{got} is too large; expected less than {ctx.get('lt')}"
    if kind == "too_short":
        if len(loc) >= 2 and loc[-2] == "environments":
            what = "target (a mapping with a 'provider' key)"
        elif len(loc) >= 2 and loc[-2] == "groups":
            what = "member (an approver cannot come from an empty group)"
        elif loc and loc[-1] == "requesters":
            what = "entry (leave requesters out to mean every full member)"
        else:
            what = _ITEM_NAMES.get(str(loc[-1]) if loc else "", "entry")
        return f"is empty; expected at least {ctx.get('min_length', 1)} {what}"
    if kind == "too_long":
        return f"has too many entries; expected at most {ctx.get('max_length')}"
    if kind == "string_too_short":
        return f"is empty; expected at least {ctx.get('min_length')} character(s)"
    if kind == "string_too_long":
        return f"is too long; expected at most {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        return f"{got} has the wrong form; expected text matching {ctx.get('pattern')}"
    if kind == "literal_error":
        return f"expected {ctx.get('expected')}, got {got}"
    return str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")


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
        issues.extend(_issues_from(exc, rfile, rnode, RolesFile, ()))
    targets = _parse_targets(rdata, target_models, rfile, rnode, issues)
    try:
        approvers_model = ApproversFile.model_validate(adata)
    except ValidationError as exc:
        issues.extend(_issues_from(exc, afile, anode, ApproversFile, ()))

    if roles_model is not None:
        issues.extend(_check_roles(roles_model, rfile, rnode))
        issues.extend(_check_shortest_grants(roles_model, targets, rfile, rnode))
    if approvers_model is not None:
        issues.extend(_check_groups(approvers_model, afile, anode))
    if roles_model is not None and approvers_model is not None:
        issues.extend(_cross_check(roles_model, approvers_model, rfile, afile, anode, rnode))
    if approvers_model is not None:
        issues.extend(_check_email_domains(targets, approvers_model.settings, rfile, afile, anode))
    if issues:
        # Read like a compiler's output: roles.yaml then approvers.yaml, top to bottom.
        raise ConfigError(sorted(issues, key=lambda i: (i.file != rfile, i.line or 0)))
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
                        f"expected a mapping with a 'provider' key, got {_got(raw)}",
                        _line_of(node, loc),
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
                    else f"unknown provider '{provider}'{_suggest(provider, list(known))}"
                )
                issues.append(
                    ConfigIssue(
                        file,
                        where,
                        f"{message}; expected one of: {', '.join(known)}",
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


def _check_shortest_grants(
    roles: RolesFile,
    targets: Mapping[tuple[str, str], list[TargetSpec]],
    file: str,
    node: yaml.Node | None,
) -> list[ConfigIssue]:
    """A target that cannot end access as soon as its role's max_duration would hold it
    longer than approvers were told."""
    issues = []
    for (role_name, env), parsed in targets.items():
        role = roles.roles.get(role_name)
        for i, target in enumerate(parsed):
            shortest = target.shortest_grant()
            if role is None or shortest is None or role.max_duration >= shortest[0]:
                continue
            loc: Loc = ("roles", role_name, "environments", env, i)
            least = format_duration(shortest[0])
            issues.append(
                ConfigIssue(
                    file,
                    loc,
                    f"{shortest[1]}, but the role's max_duration is "
                    f"{format_duration(role.max_duration)}; expected a max_duration of at "
                    f"least {least} (or a target that can end sooner)",
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
                expected = (
                    f"one of: {', '.join(groups)}"
                    if groups
                    else "a group defined under 'groups' (none are defined)"
                )
                issues.append(
                    ConfigIssue(
                        file,
                        loc,
                        f"unknown group '{group}'{_suggest(group, groups)}; expected {expected}",
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
                    f"unknown role '{role}'{_suggest(role, list(roles.roles))}; "
                    f"expected '*' or one of: {', '.join(roles.roles)}",
                )
        for i, env in enumerate(rule.environments):
            if env != "*" and env not in all_envs:
                add(
                    afile,
                    anode,
                    ("rules", r, "environments", i),
                    f"unknown environment '{env}'{_suggest(env, all_envs)}; "
                    f"expected '*' or one of: {', '.join(all_envs)}",
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


def _check_email_domains(
    targets: Mapping[tuple[str, str], Sequence[TargetSpec]],
    settings: Settings,
    rfile: str,
    afile: str,
    anode: yaml.Node | None,
) -> list[ConfigIssue]:
    """A provider that grants real access needs ``settings.allowed_email_domains``."""
    if settings.allowed_email_domains:
        return []
    real = sorted({t.provider for units in targets.values() for t in units} - _NO_REAL_ACCESS)
    if not real:
        return []
    loc: Loc = ("settings", "allowed_email_domains")
    return [
        ConfigIssue(
            afile,
            loc,
            f"is required because {rfile} grants access through {', '.join(real)}: the "
            "Slack email names the cloud user, so only emails of your own domains may "
            "be served; expected a list of email domains, for example "
            "allowed_email_domains: [example.com]",
            _line_of(anode, loc),
        )
    ]
