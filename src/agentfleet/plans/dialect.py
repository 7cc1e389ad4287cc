"""One SQL text for plan operations, run on SQLite or PostgreSQL.

Plan statements are written once with `:name` parameters and a few tokens; each dialect
rewrites them for its driver and clock. The job hot path keeps its hand-tuned SQL per
backend; plans are low-volume, so one truth beats two.

Tokens: `{now}` (the store's clock), `{cutoff}` (`{now}` minus the `:stale` seconds).
"""

from __future__ import annotations

import fcntl
import json
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

Row = dict[str, Any]
_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


class Tx(Protocol):
    def q(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]: ...

    def lock_plan(self, plan_id: int) -> None:
        """Serialise decisions about one plan (its row lock; SQLite's write lock holds it)."""
        ...

    def notify(self) -> None: ...


class Dialect(Protocol):
    def tx(self) -> AbstractContextManager[Tx]: ...

    def read(self) -> AbstractContextManager[Tx]: ...

    def exclusive(self, name: str) -> AbstractContextManager[bool]:
        """Try to become the only holder of `name` across processes; yields whether we are."""
        ...


def to_datetime(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromtimestamp(float(value), UTC)


def from_json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def to_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


class SqliteTx:
    def __init__(self, conn: Any, now: float) -> None:
        self._conn = conn
        self._now = now

    def q(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        text = sql.replace("{now}", ":now").replace("{cutoff}", "(:now - :stale)")
        values = {**(params or {}), "now": self._now}
        return [dict(row) for row in self._conn.execute(text, values).fetchall()]

    def lock_plan(self, plan_id: int) -> None:
        return None  # BEGIN IMMEDIATE already holds the database's only write lock

    def notify(self) -> None:
        return None


class SqliteDialect:
    def __init__(self, store: Any, lock_path: Path | None) -> None:
        self._store = store
        self._lock_path = lock_path
        self._thread_locks: dict[str, threading.Lock] = {}

    @contextmanager
    def tx(self) -> Iterator[Tx]:
        with self._store._tx() as conn:
            yield SqliteTx(conn, self._store._now())

    @contextmanager
    def read(self) -> Iterator[Tx]:
        with self._store._read() as conn:
            yield SqliteTx(conn, self._store._now())

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        lock = self._thread_locks.setdefault(name, threading.Lock())
        if not lock.acquire(blocking=False):
            yield False
            return
        try:
            if self._lock_path is None:
                yield True
                return
            path = self._lock_path.with_name(f"{self._lock_path.name}.{name}.lock")
            with path.open("a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    yield False
                    return
                try:
                    yield True
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            lock.release()


class PostgresTx:
    def __init__(self, conn: Any, notify_channel: str) -> None:
        self._conn = conn
        self._channel = notify_channel

    def q(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        text = sql.replace("{now}", "now()").replace(
            "{cutoff}", "(now() - :stale * interval '1 second')"
        )
        text = _PARAM.sub(r"%(\1)s", text)
        cur = self._conn.execute(text, dict(params or {}))
        return list(cur.fetchall()) if cur.description else []

    def lock_plan(self, plan_id: int) -> None:
        self._conn.execute("SELECT id FROM plans WHERE id = %s FOR UPDATE", (plan_id,))

    def notify(self) -> None:
        self._conn.execute("SELECT pg_notify(%s, '')", (self._channel,))


class PostgresDialect:
    def __init__(self, store: Any, notify_channel: str) -> None:
        self._store = store
        self._channel = notify_channel

    @contextmanager
    def tx(self) -> Iterator[Tx]:
        with self._store._tx() as conn:
            yield PostgresTx(conn, self._channel)

    @contextmanager
    def read(self) -> Iterator[Tx]:
        with self._store._conn() as conn:
            yield PostgresTx(conn, self._channel)

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        key = int.from_bytes(name.encode()[:7].ljust(7, b"\0"), "big")
        with self._store._conn() as conn:
            row = conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (key,)).fetchone()
            if not row["ok"]:
                yield False
                return
            try:
                yield True
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
