"""The ISO dates and times the commands take (``--since``/``--until`` of ``audit export``
and ``stats``): UTC unless the value names its zone."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime


def when(value: str) -> datetime:
    """An argparse ``type``: a bad value is argparse's clear error and exit status 2."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{value}' is not an ISO date or time, e.g. 2026-11-01 or 2026-11-01T09:00"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
