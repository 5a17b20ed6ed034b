"""Freeze windows: the config's recurring ones and those set with ``/release freeze``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.config import Freeze
from bot.engine.model import FreezeRecord
from bot.engine.words import Moment, Person, Words, words

_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@dataclass(frozen=True, slots=True)
class FreezeWindow:
    """A freeze in force: a configured one by its ``name``, one set with ``/release freeze``
    by the person who set it (``set_by``, a Slack id)."""

    name: str
    ends_at: datetime
    reason: str | None = None
    set_by: str | None = None


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
            found.append(FreezeWindow("set by", m.until, m.reason, set_by=m.by))
    return max(found, key=lambda w: w.ends_at) if found else None


def _aware(moment: datetime, tz: str) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=ZoneInfo(tz))


def describe(window: FreezeWindow) -> Words:
    """``frozen until <end> (set by U0ALICE: reason)``: the end as a :class:`Moment`, so each
    reader sees it in their own time, and the setter as a :class:`Person`."""
    who = words(" ", Person(window.set_by)) if window.set_by else words()
    why = f": {window.reason}" if window.reason else ""
    return words("frozen until ", Moment(window.ends_at), f" ({window.name}", who, f"{why})")
