"""Fleet-wide limits: at most N jobs naming a limit run at once, across every worker, and
optionally at most R of them start in any window of time.

The claim enforces them (store/rules.py, LIMIT_FREE); these are the rows that say N and R.
A limit that is not set lets no job naming it start, so removing one pauses its jobs. A
rate is counted from `limit_starts`: each claim of a job whose limit has a rate writes one
row in the claim's own transaction, stamped (like the window it is counted in) at the time
the claim is made, after it took the limits lock, and not when its transaction began.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from agentfleet.errors import InvalidArgument
from agentfleet.store.dialect import Dialect, Tx
from agentfleet.store.ops import Operation, Query, Scope, Steps, perform

_SET = """
    INSERT INTO limits (name, max_running, rate_count, rate_seconds, updated_at)
    VALUES (:name, :n, :rate_count, :rate_seconds, {now})
    ON CONFLICT (name) DO UPDATE SET max_running = excluded.max_running,
        rate_count = excluded.rate_count, rate_seconds = excluded.rate_seconds,
        updated_at = excluded.updated_at"""

_LIST = """
    SELECT l.name, l.max_running, l.rate_count, l.rate_seconds,
        (SELECT count(*) FROM jobs r WHERE r.limit_name = l.name AND r.status = 'running')
            AS running,
        (SELECT count(*) FROM jobs q WHERE q.limit_name = l.name AND q.status = 'queued')
            AS queued,
        (SELECT count(*) FROM limit_starts s WHERE s.name = l.name
            AND l.rate_count IS NOT NULL AND s.at > {ago:l.rate_seconds}) AS started
    FROM limits l ORDER BY l.name"""

# The starts a rate counts: one row per claimed job whose limit has a rate; rows that left
# every window (or whose limit lost its rate) go at the same time.
_RECORD_STARTS = """
    INSERT INTO limit_starts (name, at)
    SELECT j.limit_name, {stamp} FROM jobs j JOIN limits l ON l.name = j.limit_name
    WHERE j.id {any:ids} AND l.rate_count IS NOT NULL"""
_PRUNE_STARTS = """
    DELETE FROM limit_starts WHERE NOT EXISTS (
        SELECT 1 FROM limits l WHERE l.name = limit_starts.name AND l.rate_count IS NOT NULL
            AND limit_starts.at > {ago:l.rate_seconds})"""

UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "min": 60.0, "minute": 60.0,
         "h": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0}  # fmt: skip
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*(?:\.\d+)?)\s*([a-z]+)\s*\Z")


@dataclass(frozen=True)
class Rate:
    """At most `count` starts in any `seconds`."""

    count: int
    seconds: float

    def __str__(self) -> str:
        for unit, size in (("day", 86400.0), ("h", 3600.0), ("min", 60.0)):
            if self.seconds % size == 0:
                n = int(self.seconds // size)
                return f"{self.count}/{unit}" if n == 1 else f"{self.count}/{n}{unit}"
        return f"{self.count}/{self.seconds:g}s"


def parse_rate(text: str) -> Rate:
    """`10/min`, `100/h`, `5/30s`, `1000/day`: a count over a window of time."""
    found = _RATE.match(str(text).lower())
    word = found.group(3) if found else ""
    unit = UNITS.get(word, UNITS.get(word[:-1]) if word.endswith("s") else None)
    if found is None or unit is None:
        raise InvalidArgument(
            f"rate {text!r}: write COUNT/UNIT, e.g. 10/min, 100/h, 5/30s (units: s, min, h, day)"
        )
    count, size = int(found.group(1)), float(found.group(2) or 1)
    if count > 2**31 - 1 or size <= 0:
        raise InvalidArgument(f"rate {text!r}: the count must fit 32 bits and the window be > 0")
    return Rate(count, size * unit)


@dataclass(frozen=True)
class Limit:
    """A fleet-wide limit and how much of it is in use."""

    name: str
    max_running: int
    running: int
    queued: int
    rate: Rate | None = None
    started: int = 0  # starts within the rate's current window


def record_starts(tx: Tx, job_ids: Sequence[int]) -> None:
    """Count the claims of these jobs against their limits' rates (in the claim's tx)."""
    if job_ids:
        tx.q(_PRUNE_STARTS)
        tx.q(_RECORD_STARTS, {"ids": list(job_ids)})


class Limits:
    """The limits table of one store."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    def put(self, name: str, max_running: int, rate: Rate | None = None) -> None:
        params = {
            "name": name,
            "n": max_running,
            "rate_count": None if rate is None else rate.count,
            "rate_seconds": None if rate is None else rate.seconds,
        }
        with self.dialect.tx() as tx:
            tx.q(_SET, params)
            tx.notify()  # a raised limit may let waiting jobs start: wake idle workers

    def remove(self, name: str) -> bool:
        with self.dialect.tx() as tx:
            return bool(tx.q("DELETE FROM limits WHERE name = :name RETURNING name",
                             {"name": name}))  # fmt: skip

    def all(self) -> list[Limit]:
        with self.dialect.session() as tx:
            rows = tx.q(_LIST)
        return [
            Limit(
                str(r["name"]),
                int(r["max_running"]),
                int(r["running"]),
                int(r["queued"]),
                None if r["rate_count"] is None else Rate(int(r["rate_count"]),
                                                          float(r["rate_seconds"])),
                int(r["started"] or 0),
            )
            for r in rows
        ]  # fmt: skip

    def names(self) -> set[str]:
        return perform(self.dialect, names_op())


def names_op() -> Operation[set[str]]:
    """The names of the limits that are set."""
    return Operation(_names(), Scope.READ)


def _names() -> Steps[set[str]]:
    rows = yield Query("SELECT name FROM limits")
    return {str(r["name"]) for r in rows}
