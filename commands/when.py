"""Points in time as operators type them in ``freeze ... until <when>`` and ``--since <when>``.

Accepted forms (case does not matter):

* an ISO date ``2026-12-01`` (midnight in ``tz``) or date-time ``2026-12-01 18:00``,
  ``2026-12-01T18:00[:ss]``, optionally with an offset (``Z``, ``+02:00``);
* a duration ``2h``, ``30m``, ``3d``, ``1w``, ``1h30m``, ``90 minutes``; also ``in 2h``
  for :func:`parse_when` and ``2h ago`` for :func:`parse_since`;
* ``today``, ``tomorrow`` or ``yesterday``, optionally with a time;
* a weekday ``friday`` / ``fri``, optionally with a time;

where a time is ``18:00``, ``18:00:30``, ``6pm`` or ``6:30pm``. A day word without a time
includes the whole day in :func:`parse_when` (``until tomorrow`` lasts through tomorrow: it
ends at the midnight after it; ``until friday`` ends as Friday does) and means the day's
first midnight in :func:`parse_since` (``--since monday``). An ISO date without a time is
its first midnight in both. Results are aware datetimes in ``tz``; a date-time typed with an
offset keeps that instant.

>>> from datetime import datetime, UTC
>>> now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # a Thursday
>>> parse_when("friday 18:00", now).isoformat()
'2026-11-27T18:00:00+00:00'
>>> parse_since("2h", now).isoformat()
'2026-11-26T10:00:00+00:00'
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal

from commands.errors import UsageError, quoted

Direction = Literal["future", "past"]

FORMS_HINT = "use e.g. 2026-12-01 18:00, friday 18:00, tomorrow 09:00 or 2h"

# Far enough for any freeze or audit window, and it keeps datetime arithmetic from overflowing.
_MAX_SPAN = timedelta(days=3660)

_UNITS: dict[str, int] = {}
for _seconds, _names in (
    (1, ("s", "sec", "secs", "second", "seconds")),
    (60, ("m", "min", "mins", "minute", "minutes")),
    (3600, ("h", "hr", "hrs", "hour", "hours")),
    (86400, ("d", "day", "days")),
    (604800, ("w", "wk", "wks", "week", "weeks")),
):
    _UNITS.update(dict.fromkeys(_names, _seconds))

# Longest names first so "min" is not read as "m" followed by "in".
_UNIT_ALT = "|".join(sorted(_UNITS, key=len, reverse=True))
_DURATION_PART = re.compile(rf"([0-9]{{1,6}})\s*({_UNIT_ALT})(?![a-z])")

_WEEKDAYS: dict[str, int] = {}
for _index, _day_names in enumerate(
    (
        ("monday", "mon"),
        ("tuesday", "tue", "tues"),
        ("wednesday", "wed"),
        ("thursday", "thu", "thur", "thurs"),
        ("friday", "fri"),
        ("saturday", "sat"),
        ("sunday", "sun"),
    )
):
    _WEEKDAYS.update(dict.fromkeys(_day_names, _index))

_RELATIVE_DAYS = {"today": 0, "tomorrow": 1, "yesterday": -1}
_DAY_WORD = re.compile(r"([a-z]+)(?:\s+(?:at\s+)?(.+))?")
_CLOCK_24 = re.compile(r"([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?")
_CLOCK_12 = re.compile(r"([0-9]{1,2})(?::([0-9]{2}))?\s*(am|pm)")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_when(text: str, now: datetime, tz: tzinfo = UTC) -> datetime:
    """The moment ``text`` names, reading durations and weekdays forwards from ``now``.

    ``2h`` is ``now + 2h``; ``friday 18:00`` is the next Friday after ``now`` (today if it
    is Friday and the time is still ahead); ``friday`` and ``tomorrow`` without a time last
    through that day, to the midnight that ends it (on a Friday, ``friday`` is next
    week's). Dates in the past are returned as they are: whether a past moment makes sense
    is the caller's decision. A naive ``now`` is taken to be in
    ``tz``. Raises :class:`~commands.errors.UsageError` for anything else.

    >>> from datetime import datetime, UTC
    >>> parse_when("2026-12-01", datetime(2026, 11, 26, tzinfo=UTC)).isoformat()
    '2026-12-01T00:00:00+00:00'
    """
    return _parse(text, now, tz, "future")


def parse_since(text: str, now: datetime, tz: tzinfo = UTC) -> datetime:
    """Like :func:`parse_when`, but durations and weekdays look back: ``2h`` is ``now - 2h``.

    ``monday`` is the most recent Monday at or before ``now``.

    >>> from datetime import datetime, UTC
    >>> parse_since("3d", datetime(2026, 11, 26, tzinfo=UTC)).isoformat()
    '2026-11-23T00:00:00+00:00'
    """
    return _parse(text, now, tz, "past")


def _parse(text: str, now: datetime, tz: tzinfo, direction: Direction) -> datetime:
    raw = " ".join(text.split()).lower()
    if not raw:
        raise UsageError(f"expected a time; {FORMS_HINT}", token=text or None)
    try:
        local_now = now.replace(tzinfo=tz) if now.tzinfo is None else now.astimezone(tz)
        for reader in (_read_iso, _read_duration, _read_day_word):
            result = reader(raw, local_now, tz, direction)
            if result is not None:
                return result
    except OverflowError:
        # Only near year 1 or 9999, where no release bot lives.
        raise UsageError(f"{quoted(text.strip())} is out of range", token=text) from None
    raise UsageError(f"can't read {quoted(text.strip())} as a time; {FORMS_HINT}", token=text)


def _read_iso(raw: str, now: datetime, tz: tzinfo, direction: Direction) -> datetime | None:
    if not _ISO_DATE.match(raw):
        return None
    try:
        if _ISO_DATE.fullmatch(raw):
            return datetime.combine(date.fromisoformat(raw), time(), tzinfo=tz)
        # "2026-12-01 at 18:00" reads naturally in chat; fromisoformat wants no "at".
        parsed = datetime.fromisoformat(raw.replace(" at ", " ").upper())
    except ValueError:
        raise UsageError(
            f"{quoted(raw)} is not a valid date or time; {FORMS_HINT}", token=raw
        ) from None
    if parsed.tzinfo is None:
        return _real_time(parsed.replace(tzinfo=tz), tz)
    return parsed.astimezone(tz)


def _read_duration(raw: str, now: datetime, tz: tzinfo, direction: Direction) -> datetime | None:
    body = raw.removeprefix("in ") if direction == "future" else raw.removesuffix(" ago")
    if not body or not body[0].isdigit():
        return None
    seconds = 0
    pos = 0
    for match in _DURATION_PART.finditer(body):
        if match.start() != pos:
            return None
        seconds += int(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
        while pos < len(body) and body[pos] == " ":
            pos += 1
    if pos != len(body):
        return None
    delta = timedelta(seconds=seconds)
    if delta <= timedelta(0):
        raise UsageError(f"{quoted(raw)} is no length of time; {FORMS_HINT}", token=raw)
    if delta > _MAX_SPAN:
        raise UsageError(
            f"{quoted(raw)} is too far away (at most {_MAX_SPAN.days} days)", token=raw
        )
    # Elapsed time, not wall-clock time: across a DST change "2h" is still two real hours.
    instant = now.astimezone(UTC) + (delta if direction == "future" else -delta)
    return instant.astimezone(tz)


def _read_day_word(raw: str, now: datetime, tz: tzinfo, direction: Direction) -> datetime | None:
    match = _DAY_WORD.fullmatch(raw)
    if match is None:
        return None
    word, clock_text = match.groups()
    if word not in _RELATIVE_DAYS and word not in _WEEKDAYS:
        return None
    # A day named without a time: for a moment ahead ("freeze ... until tomorrow") the day is
    # included, so the moment is the midnight that ends it; looking back ("--since monday") it
    # is the midnight that starts it.
    whole_day = clock_text is None and direction == "future"
    clock = time()
    if clock_text is not None:
        parsed_clock = _read_clock(clock_text)
        if parsed_clock is None:
            raise UsageError(
                f"can't read {quoted(clock_text)} as a time of day; use e.g. 18:00 or 6pm",
                token=clock_text,
            )
        clock = parsed_clock
    today = now.date()
    if word in _RELATIVE_DAYS:
        day = today + timedelta(days=_RELATIVE_DAYS[word] + (1 if whole_day else 0))
        return _real_time(datetime.combine(day, clock, tzinfo=tz), tz)
    # Weekday: the nearest one strictly ahead of now (future) or at/before now (past).
    offset = (_WEEKDAYS[word] - today.weekday()) % 7
    if whole_day:
        # Through the next such day; on that weekday itself, through next week's.
        day = today + timedelta(days=(offset or 7) + 1)
        return _real_time(datetime.combine(day, time(), tzinfo=tz), tz)
    if direction == "future":
        candidate = datetime.combine(today + timedelta(days=offset), clock, tzinfo=tz)
        if candidate <= now:
            candidate += timedelta(days=7)
    else:
        back = (today.weekday() - _WEEKDAYS[word]) % 7
        candidate = datetime.combine(today - timedelta(days=back), clock, tzinfo=tz)
        if candidate > now:
            candidate -= timedelta(days=7)
    return _real_time(candidate, tz)


def _read_clock(text: str) -> time | None:
    """``18:00``, ``18:00:30``, ``6pm``, ``6:30 pm`` -> time, or None."""
    text = text.strip()
    if match := _CLOCK_24.fullmatch(text):
        hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
    elif match := _CLOCK_12.fullmatch(text):
        hour, minute, second = int(match[1]), int(match[2] or 0), 0
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if match[3] == "pm" else 0)
    else:
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    return time(hour, minute, second)


def _real_time(moment: datetime, tz: tzinfo) -> datetime:
    """Move a wall-clock time that a DST change skips onto a time that exists."""
    return moment.astimezone(UTC).astimezone(tz)
