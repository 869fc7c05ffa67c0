"""How a figure reads: a span of seconds, a share as a percentage (the tables, the JSON's
neighbours and the App Home say them alike)."""

from __future__ import annotations

from datetime import timedelta

from bot.durations import format_duration


def span(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds:.1f}s"
    return format_duration(timedelta(seconds=round(seconds)))


def percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.0f}%"
