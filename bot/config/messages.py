"""Problems worded for operators: pydantic's and PyYAML's errors reworded as "what is
wrong; what was expected", with a did-you-mean, and the line each problem is written on.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from bot.config.issues import ConfigIssue, Loc, format_loc

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


def yaml_syntax_issue(file: str, exc: yaml.MarkedYAMLError) -> ConfigIssue:
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


def describe_value(value: Any) -> str:
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


def suggest(word: object, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def line_of(node: yaml.Node | None, loc: Loc) -> int | None:
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
    return line_of(node, loc)


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


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            # A mapping's keys are a model's fields: prefer the union's model, if any.
            models = [a for a in args if _is_model(_unwrap(a))]
            annotation = (models or args)[0]
        else:
            return annotation


def issues_from(
    exc: ValidationError, file: str, node: yaml.Node | None, model: type[BaseModel], prefix: Loc
) -> list[ConfigIssue]:
    issues = []
    for error in exc.errors():
        # "function-…" parts name validators, "tag:…" the form of a union that was
        # written and "[key]" a dict key: none is a place in the file.
        loc: Loc = prefix + tuple(
            p
            for p in error["loc"]
            if not (
                isinstance(p, str)
                and (p.startswith("function-") or p.startswith("tag:") or p == "[key]")
            )
        )
        message = _describe(error, model, loc, prefix)
        issues.append(ConfigIssue(file, loc, message, line_of(node, loc)))
    return issues


@dataclass(frozen=True)
class _Failure:
    """One pydantic error, with what its message may need: the model it was found in and
    where, in the file (``loc``) and below the model's own place in it (``prefix``)."""

    error: ErrorDetails
    model: type[BaseModel]
    loc: Loc
    prefix: Loc

    @property
    def got(self) -> str:
        return describe_value(self.error.get("input"))

    @property
    def ctx(self) -> dict[str, Any]:
        return self.error.get("ctx") or {}


_Formatter = Callable[[_Failure], str]


class _Fields(dict[str, Any]):
    # An f-string over ctx.get(name) printed "None" for a missing name; so do templates.
    def __missing__(self, key: str) -> None:
        return None


def _template(text: str) -> _Formatter:
    """A message whose blanks are ``{got}`` and the names in pydantic's ctx."""
    return lambda failure: text.format_map(_Fields(failure.ctx, got=failure.got))


def _unknown_key(failure: _Failure) -> str:
    loc, prefix = failure.loc, failure.prefix
    allowed = _fields_at(failure.model, loc[len(prefix) : -1]) or []
    message = f"unknown key '{loc[-1]}'{suggest(loc[-1], allowed)}"
    return f"{message}; expected one of: {', '.join(allowed)}" if allowed else message


def _missing_key(failure: _Failure) -> str:
    loc = failure.loc
    where = f"in {format_loc(loc[:-1])}" if loc[:-1] else "at the top of the file"
    return f"required key '{loc[-1]}' is missing; expected it {where}"


_ITEM_NAMES = {"roles": "role", "environments": "environment", "rules": "rule"}


def _empty_list(failure: _Failure) -> str:
    loc = failure.loc
    if len(loc) >= 2 and loc[-2] == "environments":
        what = "target (a mapping with a 'provider' key)"
    elif len(loc) >= 2 and loc[-2] == "groups":
        what = "member (an approver cannot come from an empty group)"
    elif loc and loc[-1] == "requesters":
        what = "entry (leave requesters out to mean every full member)"
    else:
        what = _ITEM_NAMES.get(str(loc[-1]) if loc else "", "entry")
    return f"is empty; expected at least {failure.ctx.get('min_length', 1)} {what}"


def _pydantic_message(failure: _Failure) -> str:
    """Kinds without a message of ours: pydantic's, as our own validators worded it."""
    message = str(failure.error["msg"])
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


# Pydantic's error type → our message. A kind not listed keeps pydantic's message.
_MESSAGES: dict[str, _Formatter] = {
    "extra_forbidden": _unknown_key,
    "missing": _missing_key,
    "dict_type": _template("expected a mapping of 'key: value' entries, got {got}"),
    "list_type": _template("expected a list such as [a, b], got {got}"),
    "string_type": _template("expected text, got {got}"),
    **dict.fromkeys(("bool_type", "bool_parsing"), _template("expected true or false, got {got}")),
    **dict.fromkeys(
        ("int_type", "int_parsing", "int_from_float"),
        _template("expected a whole number, got {got}"),
    ),
    **dict.fromkeys(("float_type", "float_parsing"), _template("expected a number, got {got}")),
    "greater_than_equal": _template("{got} is too small; expected at least {ge}"),
    "greater_than": _template("{got} is too small; expected more than {gt}"),
    "less_than_equal": _template("{got} is too large; expected at most {le}"),
    "less_than": _template("{got} is too large; expected less than {lt}"),
    "too_short": _empty_list,
    "too_long": _template("has too many entries; expected at most {max_length}"),
    "string_too_short": _template("is empty; expected at least {min_length} character(s)"),
    "string_too_long": _template("is too long; expected at most {max_length} characters"),
    "string_pattern_mismatch": _template(
        "{got} has the wrong form; expected text matching {pattern}"
    ),
    "literal_error": _template("expected {expected}, got {got}"),
}


def _describe(error: ErrorDetails, model: type[BaseModel], loc: Loc, prefix: Loc) -> str:
    """Pydantic's message reworded as "what is wrong; what was expected"."""
    formatter = _MESSAGES.get(error["type"], _pydantic_message)
    return formatter(_Failure(error, model, loc, prefix))
