"""Argument checks shared by every surface: bad input fails here, before anything is written."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from agentfleet.errors import InvalidArgument

MAX_NAME_LENGTH = 200
_V = TypeVar("_V")
MAX_LIMIT = 10_000
# Columns such as priority and max_attempts are 32-bit integers in PostgreSQL: every store
# takes the same range, so a job that one store accepts, every store accepts.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
MAX_SECONDS = 10 * 365 * 86400
MAX_JSON_DEPTH = 100


def _unicode(value: str, what: str) -> None:
    """Text every store can hold: valid Unicode (no lone surrogates) and no NUL."""
    if "\x00" in value:
        raise InvalidArgument(f"{what} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(
            f"{what} is not valid Unicode text (it contains a lone surrogate)"
        ) from None


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
    _unicode(value, what)
    return value


def text(value: object, what: str) -> str:
    """Free text (an error message, a reason, captured output), stored as given except
    that what no store can hold (NUL, lone surrogates) becomes U+FFFD."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string, not {type(value).__name__}")
    if "\x00" not in value:
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            pass
    return "".join("\ufffd" if c == "\x00" or 0xD800 <= ord(c) <= 0xDFFF else c for c in value)


def optional_text(value: object, what: str) -> str | None:
    return None if value is None else text(value, what)


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


def int32(value: object, what: str, *, minimum: int | None = None) -> int:
    """An integer that fits the 32-bit columns (priority, max_attempts, exit codes, pids)."""
    checked = integer(value, what, minimum=minimum)
    if not INT32_MIN <= checked <= INT32_MAX:
        raise InvalidArgument(f"{what} must be between {INT32_MIN} and {INT32_MAX}, not {value}")
    return checked


def optional_int32(value: object, what: str) -> int | None:
    return None if value is None else int32(value, what)


def positive_seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{what} must be a number of seconds, not {value!r}")
    try:
        seconds = float(value)
    except OverflowError:
        raise InvalidArgument(f"{what} is unreasonably long: {value!r} seconds") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidArgument(f"{what} must be a positive number of seconds, not {value!r}")
    if seconds > MAX_SECONDS:
        raise InvalidArgument(f"{what} is unreasonably long: {value!r} seconds")
    return seconds


def non_negative_seconds(value: object, what: str) -> float:
    """Like positive_seconds, but zero (now) is allowed."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{what} must be a non-negative number of seconds, not {value!r}")
    if value == 0:
        return 0.0
    try:
        return positive_seconds(value, what)
    except InvalidArgument:
        raise InvalidArgument(
            f"{what} must be a non-negative number of seconds of at most {MAX_SECONDS}, "
            f"not {value!r}"
        ) from None


MAX_BUDGET_USD = 1_000_000.0


def budget_usd(value: object, what: str = "budget_usd") -> float:
    """A spending cap in US dollars: a positive, finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        shown = str(value).lower() if isinstance(value, bool) else repr(value)
        raise InvalidArgument(f"{what} must be a number of US dollars, like 5 or 2.50, not {shown}")
    amount = float(value)
    if not math.isfinite(amount) or amount <= 0 or amount > MAX_BUDGET_USD:
        raise InvalidArgument(
            f"{what} must be more than 0 and at most {MAX_BUDGET_USD:,.0f} dollars, not {value!r}"
        )
    return amount


def optional_budget_usd(value: object, what: str = "budget_usd") -> float | None:
    return None if value is None else budget_usd(value, what)


def payload_limits(payload: Mapping[str, Any]) -> None:
    """A payload's ``idle_timeout`` (seconds; 0 turns it off) and ``budget_usd``."""
    if payload.get("idle_timeout") is not None:
        non_negative_seconds(payload["idle_timeout"], "payload 'idle_timeout'")
    optional_budget_usd(payload.get("budget_usd"), "payload 'budget_usd'")


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
    """A value every store keeps as JSON and gives back equal: string keys only (a key 1
    and a key "1" would collapse into one), text every store can hold, bounded nesting."""
    if value is None or value is True or value is False:
        return value  # the common result of a batch of short jobs: nothing to walk
    _walk_json(value, what, 0)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{what} is not JSON-serialisable: {exc}") from exc
    return value


def _walk_json(value: object, what: str, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise InvalidArgument(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep")
    if isinstance(value, str):
        _unicode(value, f"{what} (a string in it)")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidArgument(
                    f"{what} is not JSON-serialisable: keys must be strings, not {key!r}"
                )
            _unicode(key, f"{what} (a key in it)")
            _walk_json(item, what, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _walk_json(item, what, depth + 1)


# Agent CLIs take the prompt as one command-line argument: Linux caps one argument at 128
# KiB (MAX_ARG_STRLEN, 131,072 bytes with its terminating NUL).
MAX_PROMPT_BYTES = 131_071


def prompt(value: _V, what: str = "prompt") -> _V:
    """A prompt an agent CLI can be started with: refused at submit, not at start."""
    if isinstance(value, str):
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > MAX_PROMPT_BYTES:
            raise InvalidArgument(
                f"{what} is {size:,} bytes; agent CLIs take it as one command-line argument, "
                f"which Linux limits to {MAX_PROMPT_BYTES:,} bytes: shorten it, or put the long "
                "part in a file in the job's folder and tell the agent to read it"
            )
    return value


def run_at(value: object, now: Callable[[], datetime]) -> datetime | None:
    """When a job may start: an aware datetime, or a timedelta from the store's now (read
    only then)."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        try:
            when = now() + value
        except OverflowError:
            raise InvalidArgument(f"run_at is out of range: now + {value}") from None
    elif isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidArgument("run_at must be timezone-aware (for example UTC)")
        when = value
    else:
        raise InvalidArgument(f"run_at must be a datetime or timedelta, not {type(value).__name__}")
    try:  # it must have a UTC instant every store can keep (years 1 to 9999)
        when.astimezone(UTC).timestamp()
    except (OverflowError, ValueError):
        raise InvalidArgument(f"run_at is out of range: {when!r}") from None
    return when
