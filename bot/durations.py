"""Durations as operators write them: ``30s``, ``5m``, ``1h``, ``1h30m`` or a number of seconds."""

from __future__ import annotations

import math
import re
from datetime import timedelta

# One "<number><unit>" part, optionally followed by spaces, so "1h 30m" reads like "1h30m".
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])\s*")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_HINT = "use e.g. 30s, 5m, 1h"


def _from_seconds(seconds: float, shown: object) -> timedelta:
    """A ``timedelta`` of ``seconds``, or ``ValueError`` when it is not a usable length of time."""
    if not math.isfinite(seconds):
        raise ValueError(f"'{shown}' is not a duration; {_HINT}")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"'{shown}' is too long for a duration") from None


def parse_duration(text: str | int | float) -> timedelta:
    """Parse a duration; raises ``ValueError`` (never anything else) for anything unusable.

    Bare numbers are seconds. Units are ``s``, ``m``, ``h`` and ``d``; parts add up and may
    be separated by spaces (``1h30m`` and ``1h 30m`` are the same).

    >>> parse_duration("5m")
    datetime.timedelta(seconds=300)
    >>> parse_duration("1h30m").total_seconds()
    5400.0
    """
    # bool is an int subclass, but `bake: true` is a mistake rather than one second.
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ValueError(f"expected a duration like 30s, 5m or 1h, not {type(text).__name__}")
    if isinstance(text, int | float):
        return _from_seconds(float(text), text)
    raw = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", raw):
        return _from_seconds(float(raw), text)
    pos = 0
    seconds = 0.0
    for match in _PART.finditer(raw):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNIT[match.group(2)]
        pos = match.end()
    if pos != len(raw) or not raw:
        raise ValueError(f"'{text}' is not a duration; {_HINT}")
    return _from_seconds(seconds, text)


def format_duration(delta: timedelta) -> str:
    """Short human form in the two largest units: ``45s``, ``5m 30s``, ``2h 10m``, ``3d``,
    ``3d 4h`` (an age reads ``3d ago``, not ``72h 10m ago``).

    Smaller units are dropped, not rounded. For a non-negative duration the result parses
    back with ``parse_duration``: to whole seconds below an hour, minutes below a day, hours
    above.
    """
    total = max(0, int(delta.total_seconds()))
    if total < 60:
        return f"{total}s"
    parts: list[str] = []
    rest = total
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, rest = divmod(rest, size)
        if amount or parts:
            parts.append(f"{amount}{unit}")
    return " ".join(p for p in parts[:2] if not p.startswith("0"))
