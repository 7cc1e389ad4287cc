"""Fleet-wide limits: at most N jobs naming a limit run at once, across every worker.

The claim enforces them (store/rules.py, LIMIT_FREE); these are the rows that say N. A
limit that is not set lets no job naming it start, so removing one pauses its jobs.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentfleet.store.dialect import Dialect

_SET = """
    INSERT INTO limits (name, max_running, updated_at) VALUES (:name, :n, {now})
    ON CONFLICT (name) DO UPDATE SET max_running = excluded.max_running,
        updated_at = excluded.updated_at"""

_LIST = """
    SELECT l.name, l.max_running,
        (SELECT count(*) FROM jobs r WHERE r.limit_name = l.name AND r.status = 'running')
            AS running,
        (SELECT count(*) FROM jobs q WHERE q.limit_name = l.name AND q.status = 'queued')
            AS queued
    FROM limits l ORDER BY l.name"""


@dataclass(frozen=True)
class Limit:
    """A fleet-wide limit and how much of it is in use."""

    name: str
    max_running: int
    running: int
    queued: int


class Limits:
    """The limits table of one store."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    def put(self, name: str, max_running: int) -> None:
        with self.dialect.tx() as tx:
            tx.q(_SET, {"name": name, "n": max_running})
            tx.notify()  # a raised limit may let waiting jobs start: wake idle workers

    def remove(self, name: str) -> bool:
        with self.dialect.tx() as tx:
            return bool(tx.q("DELETE FROM limits WHERE name = :name RETURNING name",
                             {"name": name}))  # fmt: skip

    def all(self) -> list[Limit]:
        with self.dialect.session() as tx:
            rows = tx.q(_LIST)
        return [
            Limit(str(r["name"]), int(r["max_running"]), int(r["running"]), int(r["queued"]))
            for r in rows
        ]

    def names(self) -> set[str]:
        with self.dialect.session() as tx:
            return {str(r["name"]) for r in tx.q("SELECT name FROM limits")}
