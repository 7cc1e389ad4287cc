"""Human-friendly durations (``90s``, ``1h30m``) so job files and flags need no arithmetic."""

from __future__ import annotations

import math
import re

from agentfleet.errors import InvalidArgument

__all__ = ["ACCEPTED_FORMS", "format_duration", "parse_age", "parse_duration"]

ACCEPTED_FORMS = (
    "a positive number of seconds (90, 1.5) or a string such as "
    "500ms, 90s, 45m, 3h, 1.5h, 2d or 1h30m"
)

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PART = re.compile(rf"({_NUMBER})\s*(ms|s|m|h|d)")
_WHOLE = re.compile(rf"(?:{_NUMBER}\s*(?:ms|s|m|h|d)\s*)+")
_PLAIN = re.compile(_NUMBER)


def _invalid(value: object, why: str = "") -> InvalidArgument:
    detail = f" ({why})" if why else ""
    return InvalidArgument(f"invalid duration {value!r}{detail}; expected {ACCEPTED_FORMS}")


def _checked(value: object, seconds: float) -> float:
    if math.isnan(seconds) or math.isinf(seconds):
        raise _invalid(value, "must be finite")
    if seconds < 0:
        raise _invalid(value, "must not be negative")
    if seconds == 0:
        raise _invalid(value, "must be greater than zero")
    return seconds


def parse_duration(value: str | int | float) -> float:
    """Return ``value`` in seconds; plain numbers are already seconds."""
    if isinstance(value, bool):
        raise _invalid(value, "a boolean is not a duration")
    if isinstance(value, int | float):
        return _checked(value, float(value))
    if not isinstance(value, str):
        raise _invalid(value, f"got {type(value).__name__}")
    text = value.strip().lower()
    if not text:
        raise _invalid(value, "empty")
    if text.startswith("-"):
        raise _invalid(value, "must not be negative")
    if _PLAIN.fullmatch(text):
        return _checked(value, float(text))
    if not _WHOLE.fullmatch(text):
        raise _invalid(value)
    total = 0.0
    seen: set[str] = set()
    for number, unit in _PART.findall(text):
        if unit in seen:
            raise _invalid(value, f"unit {unit!r} appears twice")
        seen.add(unit)
        total += float(number) * _UNIT_SECONDS[unit]
    return _checked(value, total)


def parse_age(value: str | int | float, what: str) -> float:
    """A duration that decides what is deleted (a retention, prune's --older-than): as
    parse_duration, but a string must carry its unit, since "30" meant as 30 days would
    delete everything older than 30 seconds. Numbers passed from code stay seconds."""
    if isinstance(value, str) and _PLAIN.fullmatch(value.strip()):
        raise InvalidArgument(
            f"{what}: {value.strip()!r} has no unit and would mean {value.strip()} seconds; "
            f"give one, e.g. {value.strip()}d, {value.strip()}h or {value.strip()}s"
        )
    try:
        return parse_duration(value)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{what}: {exc}") from exc


def format_duration(seconds: float) -> str:
    """Render seconds compactly (``1h30m``, ``45s``, ``500ms``), rounded to the millisecond."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise InvalidArgument(f"cannot format {seconds!r} as a duration; expected seconds")
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise InvalidArgument(f"cannot format {seconds!r} as a duration; expected seconds >= 0")
    total_ms = round(seconds * 1000)
    if total_ms == 0:
        return "0s"
    if total_ms < 1000:
        return f"{total_ms}ms"
    whole, millis = divmod(total_ms, 1000)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    if millis:
        parts.append(f"{secs}.{millis:03d}".rstrip("0") + "s")
    elif secs:
        parts.append(f"{secs}s")
    return "".join(parts)
