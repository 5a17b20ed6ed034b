"""Freeze windows: the config's recurring ones and those set with ``/release freeze``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.config import Freeze
from bot.engine.model import FreezeRecord

_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@dataclass(frozen=True, slots=True)
class FreezeWindow:
    name: str
    ends_at: datetime
    reason: str | None = None


def _weekly_end(freeze: Freeze, now: datetime) -> datetime | None:
    tz = ZoneInfo(freeze.timezone)
    local = now.astimezone(tz)
    days = set(freeze.days or [])
    if _DAYS[local.weekday()] not in days:
        return None
    day = local.date()
    while _DAYS[day.weekday()] in days:
        day += timedelta(days=1)
        if (day - local.date()).days > 7:
            break
    return datetime.combine(day, time(0), tz)


def active_freeze(
    configured: Sequence[Freeze], manual: Sequence[FreezeRecord], environment: str, now: datetime
) -> FreezeWindow | None:
    """The freeze in force for ``environment`` at ``now`` that ends last, or None."""
    found: list[FreezeWindow] = []
    for f in configured:
        if environment not in f.environments:
            continue
        if f.days is not None:
            end = _weekly_end(f, now)
            if end is not None:
                found.append(FreezeWindow(f.name, end, f.reason))
        elif f.start is not None and f.end is not None:
            start, end = _aware(f.start, f.timezone), _aware(f.end, f.timezone)
            if start <= now < end:
                found.append(FreezeWindow(f.name, end, f.reason))
    for m in manual:
        if m.environment == environment and now < m.until:
            found.append(FreezeWindow(f"set by <@{m.by}>", m.until, m.reason))
    return max(found, key=lambda w: w.ends_at) if found else None


def _aware(moment: datetime, tz: str) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=ZoneInfo(tz))


def describe(window: FreezeWindow) -> str:
    stamp = window.ends_at.strftime("%a %Y-%m-%d %H:%M %Z")
    why = f": {window.reason}" if window.reason else ""
    return f"frozen until {stamp} ({window.name}{why})"
