"""<when> and --since values read against a fixed now (Thursday 2026-11-26 12:00 UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from commands import UsageError, parse_since, parse_when

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)  # a Thursday
BERLIN = ZoneInfo("Europe/Berlin")


def at(*parts: int, tz: ZoneInfo | None = None) -> datetime:
    return datetime(*parts, tzinfo=tz or UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01", at(2026, 12, 1)),
        ("2026-12-01 18:00", at(2026, 12, 1, 18)),
        ("2026-12-01T18:00", at(2026, 12, 1, 18)),
        ("2026-12-01T18:00:30", at(2026, 12, 1, 18, 0, 30)),
        ("2026-12-01 at 18:00", at(2026, 12, 1, 18)),
        ("2026-12-01T18:00Z", at(2026, 12, 1, 18)),
        ("2026-12-01 18:00+02:00", at(2026, 12, 1, 16)),
        ("2h", NOW + timedelta(hours=2)),
        ("30m", NOW + timedelta(minutes=30)),
        ("3d", NOW + timedelta(days=3)),
        ("1w", NOW + timedelta(weeks=1)),
        ("1h30m", NOW + timedelta(minutes=90)),
        ("1h 30m", NOW + timedelta(minutes=90)),
        ("90 minutes", NOW + timedelta(minutes=90)),
        ("in 2 hours", NOW + timedelta(hours=2)),
        ("friday", at(2026, 11, 28)),  # through Friday
        ("today", at(2026, 11, 27)),  # through today: tonight's midnight
        ("Friday 18:00", at(2026, 11, 27, 18)),
        ("fri 6pm", at(2026, 11, 27, 18)),
        ("fri 6:30 pm", at(2026, 11, 27, 18, 30)),
        ("friday at 9am", at(2026, 11, 27, 9)),
        ("thursday 13:00", at(2026, 11, 26, 13)),  # later today
        ("thursday 11:00", at(2026, 12, 3, 11)),  # already past today: next week
        ("thursday", at(2026, 12, 4)),  # today is Thursday: through next week's
        ("monday", at(2026, 12, 1)),
        ("tomorrow", at(2026, 11, 28)),  # through tomorrow, not tonight's midnight
        ("tomorrow 09:00", at(2026, 11, 27, 9)),
        ("today 18:00", at(2026, 11, 26, 18)),
        ("  TODAY   18:00 ", at(2026, 11, 26, 18)),
        ("tomorrow 12am", at(2026, 11, 27)),
    ],
)
def test_parse_when(text: str, expected: datetime) -> None:
    result = parse_when(text, NOW)
    assert result == expected
    assert result.tzinfo is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", NOW - timedelta(hours=2)),
        ("7d", NOW - timedelta(days=7)),
        ("2h ago", NOW - timedelta(hours=2)),
        ("monday", at(2026, 11, 23)),
        ("thursday", at(2026, 11, 26)),  # today's midnight is already past
        ("thursday 13:00", at(2026, 11, 19, 13)),
        ("yesterday", at(2026, 11, 25)),
        ("today", at(2026, 11, 26)),
        ("2026-11-01", at(2026, 11, 1)),
    ],
)
def test_parse_since(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


def test_results_are_in_the_given_time_zone() -> None:
    result = parse_when("friday 18:00", NOW, BERLIN)
    assert result == datetime(2026, 11, 27, 18, tzinfo=BERLIN)
    assert result.utcoffset() == timedelta(hours=1)
    assert parse_when("2026-12-01", NOW, BERLIN) == datetime(2026, 12, 1, tzinfo=BERLIN)


def test_a_naive_now_is_read_in_the_time_zone() -> None:
    naive = datetime(2026, 11, 26, 12, 0)
    assert parse_when("tomorrow", naive, BERLIN) == datetime(2026, 11, 28, tzinfo=BERLIN)


def test_until_tomorrow_lasts_through_tomorrow_in_the_setters_zone() -> None:
    late_evening = datetime(2026, 11, 26, 23, 30, tzinfo=BERLIN)  # already Nov 26 22:30 UTC
    end = parse_when("tomorrow", late_evening, BERLIN)
    assert end == datetime(2026, 11, 28, tzinfo=BERLIN)
    assert parse_since("tomorrow", late_evening, BERLIN) == datetime(2026, 11, 27, tzinfo=BERLIN)


def test_durations_are_elapsed_time_across_a_dst_change() -> None:
    before_switch = datetime(2026, 3, 29, 1, 0, tzinfo=BERLIN)  # clocks jump 02:00 -> 03:00
    later = parse_when("2h", before_switch, BERLIN)
    assert later.astimezone(UTC) - before_switch.astimezone(UTC) == timedelta(hours=2)
    assert (later.hour, later.utcoffset()) == (4, timedelta(hours=2))


def test_a_wall_time_skipped_by_dst_moves_to_one_that_exists() -> None:
    result = parse_when("2026-03-29 02:30", NOW, BERLIN)
    assert result.astimezone(UTC).astimezone(BERLIN) == result


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "expected a time"),
        ("whenever", "can't read 'whenever' as a time"),
        ("next friday", "can't read"),
        ("2026-02-30", "not a valid date"),
        ("2026-12-01 25:00", "not a valid date"),
        ("friday 25:00", "'25:00' as a time of day"),
        ("friday 13pm", "'13pm' as a time of day"),
        ("0h", "no length of time"),
        ("99999d", "too far away"),
        ("2h ago", "can't read"),  # "ago" only reads backwards (--since)
        ("0001-01-01T00:00+05:00", "out of range"),
    ],
)
def test_unreadable_times_are_usage_errors(text: str, says: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_when(text, NOW)
    assert says in caught.value.message
