"""Human durations: "30m", "2h", "1h30m", "1d", "45s"."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+)([dhms])")
_WHOLE = re.compile(r"^(?:\d+[dhms])+$")


class InvalidDuration(ValueError):
    pass


def parse_duration(text: str) -> timedelta:
    """Parse a compact duration such as ``1h30m``; raise InvalidDuration otherwise."""
    cleaned = text.strip().lower().replace(" ", "")
    if not _WHOLE.match(cleaned):
        raise InvalidDuration(
            f"'{text}' is not a duration; use a number followed by d, h, m or s, "
            "for example 30m, 2h or 1h30m"
        )
    seen: set[str] = set()
    seconds = 0
    for number, unit in _PART.findall(cleaned):
        if unit in seen:
            raise InvalidDuration(f"'{text}' names the unit '{unit}' twice")
        seen.add(unit)
        seconds += int(number) * _UNITS[unit]
    if seconds <= 0:
        raise InvalidDuration(f"'{text}' is zero; a duration must be longer than that")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The inverse of parse_duration, largest units first: 5400s -> "1h30m"."""
    seconds = int(value.total_seconds())
    if seconds <= 0:
        return "0m"
    parts = []
    for unit, size in _UNITS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
