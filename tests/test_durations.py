from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentfleet.durations import format_duration, parse_duration
from agentfleet.errors import InvalidArgument


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        ("90", 90.0),
        ("2.5", 2.5),
        ("90s", 90.0),
        ("45m", 2700.0),
        ("3h", 10800.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("2d", 172800.0),
        ("500ms", 0.5),
        ("1.5h", 5400.0),
        (".5m", 30.0),
        ("1d2h3m4s5ms", 93784.005),
        ("  10M ", 600.0),
    ],
)
def test_parse_accepts(value: str | int | float, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("-5m", "negative"),
        (-1, "negative"),
        (0, "greater than zero"),
        ("0s", "greater than zero"),
        ("0", "greater than zero"),
        ("abc", ""),
        ("5 minutes", ""),
        ("1h30", ""),
        ("h", ""),
        ("5x", ""),
        ("1m1m", "twice"),
        (math.inf, "finite"),
        (math.nan, "finite"),
        (True, "boolean"),
    ],
)
def test_parse_rejects(value: object, why: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_duration(value)  # type: ignore[arg-type]
    message = str(info.value)
    assert repr(value) in message
    assert why in message
    assert "1h30m" in message and "500ms" in message  # names the accepted forms


def test_parse_rejects_non_string_types() -> None:
    with pytest.raises(InvalidArgument, match="got list"):
        parse_duration([1])  # type: ignore[arg-type]


def test_invalid_argument_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_duration("soon")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.5, "500ms"),
        (1, "1s"),
        (45, "45s"),
        (60, "1m"),
        (90, "1m30s"),
        (5400, "1h30m"),
        (3600, "1h"),
        (86400, "1d"),
        (90061, "1d1h1m1s"),
        (90.5, "1m30.5s"),
        (3600.25, "1h0.25s"),
        (1.0004, "1s"),
    ],
)
def test_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("bad", [-1, math.nan, math.inf, "5", None, True])
def test_format_rejects(bad: object) -> None:
    with pytest.raises(InvalidArgument):
        format_duration(bad)  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=10**10))
def test_round_trip_milliseconds(millis: int) -> None:
    seconds = millis / 1000
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=1e-6)
