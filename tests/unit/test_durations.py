"""``bot.durations``: what operators may write for a duration, and how durations are shown."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("60m", 3600),
        ("1h", 3600),
        ("1d", 86400),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("1h30m15s", 5415),
        ("1.5h", 5400),
        ("0.5s", 0.5),
        ("0s", 0),
        ("  5M ", 300),
        ("90", 90),
        ("2.5", 2.5),
        (45, 45),
        (0.25, 0.25),
        (0, 0),
    ],
)
def test_accepted(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text",
    ["", "  ", "5 minutes", "5min", "m", "5x", "-5m", "5m-", "h1", "1h30", "1..5m", "five"],
)
def test_rejected_text_names_the_value_and_the_form(text: str) -> None:
    expected = f"'{text}' is not a duration; use e.g. 30s, 5m, 1h"
    with pytest.raises(ValueError, match=re.escape(expected)):
        parse_duration(text)


@pytest.mark.parametrize("value", [-1, -0.5])
def test_negative_numbers_are_rejected(value: float) -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        parse_duration(value)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_numbers_are_rejected(value: float) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(value)


@pytest.mark.parametrize("value", [10**20, "99999999999999d", "1" * 400])
def test_overlong_durations_are_a_value_error(value: str | int) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize("value", [None, True, False, [5], {"m": 5}, b"5m"])
def test_other_types_are_a_value_error(value: object) -> None:
    """YAML can hand any of these to the config model; pydantic reports only ValueError."""
    with pytest.raises(ValueError, match="expected a duration like 30s, 5m or 1h"):
        parse_duration(value)  # type: ignore[arg-type]


@given(st.text(max_size=20))
def test_any_text_parses_or_raises_value_error(text: str) -> None:
    try:
        result = parse_duration(text)
    except ValueError:
        return
    assert result >= timedelta(0)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (42, "42s"),
        (59.9, "59s"),
        (60, "1m"),
        (61, "1m 1s"),
        (300, "5m"),
        (3600, "1h"),
        (3661, "1h 1m"),
        (5400, "1h 30m"),
        (86400, "1d"),
        (3 * 86400 + 600, "3d"),  # an age of 72h 10m
        (3 * 86400 + 4 * 3600 + 59, "3d 4h"),
        (7800, "2h 10m"),
        (45, "45s"),
    ],
)
def test_format(seconds: float, shown: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == shown


@given(st.integers(min_value=0, max_value=10 * 86400))
def test_format_parses_back(seconds: int) -> None:
    """Exact below an hour; above it the seconds are dropped, so whole minutes come back;
    from a day on, whole hours."""
    shown = format_duration(timedelta(seconds=seconds))
    expected = (
        seconds
        if seconds < 3600
        else seconds - seconds % 60
        if seconds < 86400
        else seconds - seconds % 3600
    )
    assert parse_duration(shown) == timedelta(seconds=expected)
