"""Human durations: "30m", "2h", "1h30m", "1d", "45s"."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+)([dhms])")
_WHOLE = re.compile(r"^(?:\d+[dhms])+$")

# Nothing jit-bot times (a grant, a TTL, an interval) is sensibly longer than a year, and
# a bound keeps every "now + duration" far inside what a datetime can hold: without it
# "99999999999d" overflowed timedelta, and "999999999d" overflowed at grant time.
MAX_DURATION = timedelta(days=366)
# More digits than any duration up to MAX_DURATION needs (31622400s has 8); refusing
# longer numbers before int() spares converting a 5,000-digit string, which Python
# refuses with a ValueError of its own.
_MAX_DIGITS = 9
# How much of what someone typed is quoted back in an error.
_SHOWN_CHARS = 24


class InvalidDuration(ValueError):
    pass


def parse_duration(text: str) -> timedelta:
    """Parse a compact duration such as ``1h30m``; raise InvalidDuration otherwise."""
    shown = _shown(text)
    cleaned = text.strip().lower().replace(" ", "")
    if not _WHOLE.match(cleaned):
        raise InvalidDuration(
            f"'{shown}' is not a duration; use a number followed by d, h, m or s, "
            "for example 30m, 2h or 1h30m"
        )
    seen: set[str] = set()
    seconds = 0
    for number, unit in _PART.findall(cleaned):
        if unit in seen:
            raise InvalidDuration(f"'{shown}' names the unit '{unit}' twice")
        seen.add(unit)
        digits = number.lstrip("0") or "0"
        if len(digits) > _MAX_DIGITS:
            raise _too_long(shown)
        seconds += int(digits) * _UNITS[unit]
    if seconds <= 0:
        raise InvalidDuration(f"'{shown}' is zero; a duration must be longer than that")
    if seconds > MAX_DURATION.total_seconds():
        raise _too_long(shown)
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


def _too_long(shown: str) -> InvalidDuration:
    return InvalidDuration(
        f"'{shown}' is too long: a duration may be at most {format_duration(MAX_DURATION)}"
    )


def _shown(text: str) -> str:
    """``text`` as quoted in an error: short, so a pasted megabyte is not echoed back."""
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"
