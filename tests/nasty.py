"""Hypothesis strategies for bad input: odd text, odd numbers, odd shapes, SQL-looking
strings. Shared by the property tests of the Fleet API and of the job-file parser."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st


def deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


SQLISH = [
    "'; DROP TABLE jobs; --",
    '" OR 1=1 --',
    "') OR ('1'='1",
    "%s",
    "%(id)s",
    "?",
    ":id",
    "$1",
    "NULL",
    "\\",
    "'",
    "jobs",
    "*",
    "/* */",
    "\\x00",
    "${HOME}",
]
ODD_TEXT = [
    "",
    " ",
    "\t",
    "\x00",
    "a\x00b",
    "a\nb",
    "\r",
    "é",
    "🙂",
    "\u202e",
    "\ufeff",
    "\ud800",
    "a\udfffb",
    "x" * 201,
    "x" * 100_000,
]

texts = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(codec=None, categories=["Cs", "Cc", "Zs", "So"]), max_size=8),
    st.sampled_from(SQLISH + ODD_TEXT),
)
ints = st.one_of(
    st.integers(-3, 3),
    st.sampled_from(
        [2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**53 + 1, 2**62, 2**62 + 1, 2**63, 10**30]
    ),
    st.integers(),
)
floats = st.one_of(
    st.floats(),
    st.sampled_from(
        [0.0, -0.0, 1e-300, 1e300, 1e23, math.inf, -math.inf, math.nan, 315_360_000.0, 3.2e8]
    ),
)
json_scalars = st.one_of(st.none(), st.booleans(), ints, floats, texts)
json_values = st.one_of(
    st.recursive(
        json_scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.tuples(inner),
            st.dictionaries(st.one_of(texts, st.integers(0, 2), st.none()), inner, max_size=4),
        ),
        max_leaves=10,
    ),
    st.sampled_from([deep(50), deep(101), deep(120)]),
)
odd_objects = st.one_of(
    st.binary(max_size=8),
    st.builds(object),
    st.datetimes(),
    st.datetimes(timezones=st.just(UTC)),
    st.timedeltas(),
    st.just(Decimal("1.5")),
    st.sets(st.integers(0, 3), max_size=2),
    st.just(json),  # a module
)
anything = st.one_of(json_scalars, json_values, odd_objects)
aware_datetimes = st.one_of(
    st.datetimes(timezones=st.just(UTC)),
    st.sampled_from(
        [
            datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),
            datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),
            datetime(1970, 1, 1, tzinfo=UTC),
        ]
    ),
)
run_ats = st.one_of(
    st.timedeltas(),
    aware_datetimes,
    st.datetimes(),
    st.sampled_from([timedelta(days=999_999_999), timedelta(days=-999_999_999)]),
)


def valid_or(valid: st.SearchStrategy[Any], bad: st.SearchStrategy[Any] = anything) -> Any:
    """Mostly valid values, often bad ones."""
    return st.one_of(valid, valid, bad)


def json_normal(value: Any) -> Any:
    """What a store gives back for a JSON value it accepted."""
    return json.loads(json.dumps(value))


def json_equal(a: Any, b: Any) -> bool:
    """Equal as JSON: numbers compare by value (PostgreSQL keeps 1e23 as the decimal
    100000000000000000000000, which Python reads back as an int)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        try:
            return a == b or float(a) == float(b)
        except OverflowError:
            return False
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return bool(a == b)
