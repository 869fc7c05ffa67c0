"""Block Kit checks for the embedded Slack Web API: what Slack refuses in blocks and views.

Each block is parsed with slack_sdk's Block Kit models (`Block.parse`, `View`) and
serialised again, which runs every validator the library has (section text 3,000
characters, button value 2,000, action_id and block_id 255, modal title 24, ...). On top of
that come the rules the models do not check but Slack does: the block counts (50 in a
message, 100 in a view), every text object 3,000 characters (a section's fields 2,000, at
most 10; a header 150, plain text), at most 10 context elements, options 75 characters of
text and 150 of value, block_ids unique in a message or view, a modal's required title,
plain-text title/submit/close, submit being required once a modal has an input, and
fields Slack does not know (a key the models drop when they serialise the block again is
one Slack's schema would refuse).

The functions return the problems found, in Slack's wording where Slack has one; an empty
list means Slack would accept it.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

__all__ = ["MESSAGE_BLOCKS_MAX", "VIEW_BLOCKS_MAX", "block_problems", "view_problems"]

MESSAGE_BLOCKS_MAX = 50
VIEW_BLOCKS_MAX = 100
_VIEW_TEXT_MAX = 24  # title, submit and close of a modal
_SECTION_TEXT_MAX = 3000  # the models check it too; kept here so the rule reads in one place
_TEXT_MAX = 3000  # any text object (context elements, section text, ...)
_FIELD_TEXT_MAX = 2000  # each of a section's fields
_FIELDS_MAX = 10
_HEADER_TEXT_MAX = 150
_CONTEXT_ELEMENTS_MAX = 10
_OPTION_TEXT_MAX = 75
_OPTION_VALUE_MAX = 150

# Exceptions slack_sdk's constructors raise for malformed input (a missing required
# argument is a TypeError, a wrong shape an AttributeError or KeyError).
_MODEL_ERRORS = (SlackObjectFormationError, TypeError, ValueError, KeyError, AttributeError)


def block_problems(blocks: Any, *, limit: int = MESSAGE_BLOCKS_MAX) -> list[str]:
    """What Slack would refuse in `blocks` (a decoded ``blocks`` argument)."""
    if not isinstance(blocks, list):
        return ["blocks must be an array [json-pointer:/blocks]"]
    problems: list[str] = []
    if len(blocks) > limit:
        problems.append(f"no more than {limit} items allowed [json-pointer:/blocks]")
    seen: set[str] = set()
    for index, raw in enumerate(blocks):
        problems.extend(_one_block(raw, f"/blocks/{index}"))
        block_id = raw.get("block_id") if isinstance(raw, dict) else None
        if isinstance(block_id, str):
            if block_id in seen:
                problems.append(f"duplicate block_id [json-pointer:/blocks/{index}/block_id]")
            seen.add(block_id)
    return problems


def view_problems(spec: Any) -> list[str]:
    """What Slack would refuse in a view given to views.open/update/push/publish."""
    if not isinstance(spec, dict):
        return ["view must be an object [json-pointer:/view]"]
    kind = spec.get("type")
    if kind not in ("modal", "home"):
        return ["type must be one of modal, home [json-pointer:/view/type]"]
    problems: list[str] = []
    if kind == "modal":
        if not spec.get("title"):
            problems.append("title is required for a modal [json-pointer:/view/title]")
        for key in ("title", "submit", "close"):
            problems.extend(_view_text(spec.get(key), f"/view/{key}"))
        has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in _list(spec))
        if has_input and not spec.get("submit"):
            problems.append("submit is required when an input block is in the view")
    blocks = spec.get("blocks", [])
    problems.extend(block_problems(blocks, limit=VIEW_BLOCKS_MAX))
    if not problems:
        try:
            View(**spec).to_dict()
        except _MODEL_ERRORS as exc:
            problems.append(f"{exc} [json-pointer:/view]")
    return problems


def _list(spec: dict[str, Any]) -> list[Any]:
    blocks = spec.get("blocks")
    return blocks if isinstance(blocks, list) else []


def _view_text(value: Any, pointer: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, dict) or value.get("type") != "plain_text":
        return [f"must be a plain_text object [json-pointer:{pointer}]"]
    text = value.get("text")
    if not isinstance(text, str) or not 1 <= len(text) <= _VIEW_TEXT_MAX:
        return [f"must be 1 to {_VIEW_TEXT_MAX} characters [json-pointer:{pointer}/text]"]
    return []


def _one_block(raw: Any, pointer: str) -> list[str]:
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        return [f"a block must be an object with a type [json-pointer:{pointer}]"]
    try:
        block = Block.parse(raw)
        if block is None:
            return [f"unknown block type {raw['type']!r} [json-pointer:{pointer}/type]"]
        again = block.to_dict()
    except _MODEL_ERRORS as exc:
        return [f"{exc} [json-pointer:{pointer}]"]
    problems = [f"unknown field [json-pointer:{p}]" for p in _dropped(raw, again, pointer)]
    problems.extend(_limits(raw, pointer))
    if raw["type"] == "section":
        text = raw.get("text")
        if not text and not raw.get("fields"):
            problems.append(f"a section needs text or fields [json-pointer:{pointer}]")
        elif isinstance(text, dict) and len(str(text.get("text", ""))) > _SECTION_TEXT_MAX:
            problems.append(
                f"must be less than {_SECTION_TEXT_MAX + 1} characters "
                f"[json-pointer:{pointer}/text/text]"
            )
    return problems


def _limits(raw: dict[str, Any], pointer: str) -> list[str]:
    """Slack's length and count limits the models leave unchecked: every text object,
    a section's fields, a header, a context's elements, and every option anywhere."""
    problems = [
        f"must be less than {_TEXT_MAX + 1} characters [json-pointer:{where}/text]"
        for where, text in _text_objects(raw, pointer)
        if len(text) > _TEXT_MAX
    ]
    kind = raw["type"]
    fields = raw.get("fields")
    if kind == "section" and isinstance(fields, list):
        if len(fields) > _FIELDS_MAX:
            problems.append(
                f"no more than {_FIELDS_MAX} items allowed [json-pointer:{pointer}/fields]"
            )
        for index, field in enumerate(fields):
            if isinstance(field, dict) and len(str(field.get("text", ""))) > _FIELD_TEXT_MAX:
                problems.append(
                    f"must be less than {_FIELD_TEXT_MAX + 1} characters "
                    f"[json-pointer:{pointer}/fields/{index}/text]"
                )
    if kind == "header":
        text = raw.get("text")
        if not isinstance(text, dict) or text.get("type") != "plain_text":
            problems.append(f"must be a plain_text object [json-pointer:{pointer}/text]")
        elif len(str(text.get("text", ""))) > _HEADER_TEXT_MAX:
            problems.append(
                f"must be less than {_HEADER_TEXT_MAX + 1} characters "
                f"[json-pointer:{pointer}/text/text]"
            )
    elements = raw.get("elements")
    if kind == "context" and isinstance(elements, list) and len(elements) > _CONTEXT_ELEMENTS_MAX:
        problems.append(
            f"no more than {_CONTEXT_ELEMENTS_MAX} items allowed [json-pointer:{pointer}/elements]"
        )
    for where, option in _options(raw, pointer):
        text = option.get("text")
        if isinstance(text, dict) and len(str(text.get("text", ""))) > _OPTION_TEXT_MAX:
            problems.append(
                f"must be less than {_OPTION_TEXT_MAX + 1} characters "
                f"[json-pointer:{where}/text/text]"
            )
        if len(str(option.get("value", ""))) > _OPTION_VALUE_MAX:
            problems.append(
                f"must be less than {_OPTION_VALUE_MAX + 1} characters [json-pointer:{where}/value]"
            )
    return problems


def _text_objects(value: Any, pointer: str) -> list[tuple[str, str]]:
    """Every text object (``{"type": "plain_text"|"mrkdwn", "text": ...}``) in `value`."""
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        if value.get("type") in ("plain_text", "mrkdwn") and isinstance(value.get("text"), str):
            found.append((pointer, value["text"]))
        for key, inner in value.items():
            found.extend(_text_objects(inner, f"{pointer}/{key}"))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found.extend(_text_objects(inner, f"{pointer}/{index}"))
    return found


def _options(value: Any, pointer: str) -> list[tuple[str, dict[str, Any]]]:
    """Every option (in ``options``, ``initial_option(s)`` or option groups) in `value`."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            here = f"{pointer}/{key}"
            if key in ("options", "initial_options") and isinstance(inner, list):
                found.extend(
                    (f"{here}/{i}", option)
                    for i, option in enumerate(inner)
                    if isinstance(option, dict)
                )
            elif key == "initial_option" and isinstance(inner, dict):
                found.append((here, inner))
            else:
                found.extend(_options(inner, here))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found.extend(_options(inner, f"{pointer}/{index}"))
    return found


def _dropped(original: Any, again: Any, pointer: str) -> list[str]:
    """Paths of keys in `original` that serialising through the models dropped: fields
    the schema does not know."""
    if isinstance(original, dict) and isinstance(again, dict):
        found: list[str] = []
        for key, value in original.items():
            if key not in again:
                found.append(f"{pointer}/{key}")
            else:
                found.extend(_dropped(value, again[key], f"{pointer}/{key}"))
        return found
    if isinstance(original, list) and isinstance(again, list) and len(original) == len(again):
        found = []
        for index, (one, other) in enumerate(zip(original, again, strict=True)):
            found.extend(_dropped(one, other, f"{pointer}/{index}"))
        return found
    return []
