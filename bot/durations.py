"""Durations as operators write them: ``30s``, ``5m``, ``1h``, ``1h30m`` or a number of seconds."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | int | float) -> timedelta:
    """Parse a duration.

    >>> parse_duration("5m")
    datetime.timedelta(seconds=300)
    >>> parse_duration("1h30m").total_seconds()
    5400.0
    """
    if isinstance(text, bool):
        raise ValueError("a duration like 30s, 5m or 1h")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=text)
    raw = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", raw):
        return timedelta(seconds=float(raw))
    pos = 0
    seconds = 0.0
    for match in _PART.finditer(raw):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNIT[match.group(2)]
        pos = match.end()
    if pos != len(raw) or not raw:
        raise ValueError(f"'{text}' is not a duration; use e.g. 30s, 5m, 1h")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Short human form: ``1h 5m``, ``42s``."""
    total = int(delta.total_seconds())
    if total < 60:
        return f"{total}s"
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if seconds and not hours:
        parts.append(f"{seconds}s")
    return " ".join(parts)
