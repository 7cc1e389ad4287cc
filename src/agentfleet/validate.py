"""Argument checks shared by every surface: bad input fails here, before anything is written."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from typing import Any

from agentfleet.errors import InvalidArgument

MAX_NAME_LENGTH = 200
MAX_LIMIT = 10_000


def name(value: object, what: str) -> str:
    """A queue, worker, engine, lock or key: a non-empty single-line string."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string, not {type(value).__name__}")
    if not value.strip():
        raise InvalidArgument(f"{what} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidArgument(f"{what} is longer than {MAX_NAME_LENGTH} characters")
    if any(ch in value for ch in "\n\r\x00"):
        raise InvalidArgument(f"{what} must be a single line without NUL characters")
    return value


def optional_name(value: object, what: str) -> str | None:
    return None if value is None else name(value, what)


def integer(value: object, what: str, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{what} must be an integer, not {value!r}")
    if minimum is not None and value < minimum:
        raise InvalidArgument(f"{what} must be at least {minimum}, not {value}")
    if abs(value) > 2**62:
        raise InvalidArgument(f"{what} is out of range: {value}")
    return value


def positive_seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{what} must be a number of seconds, not {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidArgument(f"{what} must be a positive number of seconds, not {value!r}")
    if seconds > 10 * 365 * 86400:
        raise InvalidArgument(f"{what} is unreasonably long: {value!r} seconds")
    return seconds


def optional_positive_seconds(value: object, what: str) -> float | None:
    return None if value is None else positive_seconds(value, what)


def limit(value: object, what: str = "limit") -> int:
    checked = integer(value, what, minimum=1)
    if checked > MAX_LIMIT:
        raise InvalidArgument(f"{what} must be at most {MAX_LIMIT}, not {checked}")
    return checked


def json_document(value: object, what: str) -> dict[str, Any]:
    """A JSON object: stored as text or jsonb, so it must survive a strict round trip."""
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be a JSON object (a dict), not {type(value).__name__}")
    json_value(value, what)
    return value


def json_value(value: object, what: str) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{what} is not JSON-serialisable: {exc}") from exc
    return value


def run_at(value: object, now: datetime) -> datetime | None:
    """When a job may start: an aware datetime, or a timedelta from the store's now."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return now + value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidArgument("run_at must be timezone-aware (for example UTC)")
        return value
    raise InvalidArgument(f"run_at must be a datetime or timedelta, not {type(value).__name__}")
