"""SQLite store: the embedded default, and (in memory) the test store.

Safety across threads and processes comes from SQLite itself: WAL mode, a busy timeout,
and `BEGIN IMMEDIATE` so that every transition takes the database's single write lock
before it reads anything it will decide on. Each transition's first write is conditional
(its WHERE clause names the expected status and epoch), so the outcome is decided by the
statement, never by Python between a read and a write.

The memory store is this same code over one in-memory connection guarded by a lock: one
truth for the SQL semantics, not a second implementation.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agentfleet.errors import (
    InvalidTransition,
    JobCancelled,
    JobNotFound,
    LeaseLost,
    SchemaTooNew,
    StoreUnavailable,
)
from agentfleet.models import (
    Event,
    Job,
    JobStatus,
    Lease,
    LedgerEntry,
    MatchResult,
    NewJob,
    Run,
    RunOutput,
    RunStatus,
    WorkerInfo,
    utc_from_timestamp,
)
from agentfleet.plans.dialect import SqliteDialect
from agentfleet.store.base import JOB_COLUMNS, JOB_STATUS_BY_NAME, check_job_patch
from agentfleet.store.sqlite_schema import LATEST_VERSION, MIGRATIONS

Clock = Callable[[], float]
MMAP_BYTES = 256 * 1024 * 1024
# How often a waiter looks for other connections' commits: often while they come, less
# often as the database stays quiet.
WAKE_CHECK_BUSY, WAKE_CHECK_QUIET = 0.005, 0.05

# A queued job is ready when its time has come and its named lock is free.
_LOCK_FREE = """NOT EXISTS (SELECT 1 FROM jobs r WHERE r.lock = j.lock AND r.status = 'running')"""
# Among ready jobs sharing a lock only the first in claim order qualifies, so one batch
# never takes two jobs of one lock.
_FIRST_OF_LOCK = """NOT EXISTS (
    SELECT 1 FROM jobs e
    WHERE e.lock = j.lock AND e.status = 'queued' AND e.run_at <= :now
      AND (e.priority > j.priority OR (e.priority = j.priority AND e.id < j.id))
      {queue_filter_e})"""
# A plan's job starts only while its plan is running: the database says so, not the caller.
_PLAN_RUNNING = """(j.plan_id IS NULL OR EXISTS (
    SELECT 1 FROM plans p WHERE p.id = j.plan_id AND p.status = 'running'))"""
_READY_ONE = (
    f"j.status = 'queued' AND j.run_at <= :now AND (j.lock IS NULL OR {_LOCK_FREE}) "
    f"AND {_PLAN_RUNNING}"
)
_READY_BATCH = (
    f"j.status = 'queued' AND j.run_at <= :now "
    f"AND (j.lock IS NULL OR ({_LOCK_FREE} AND {_FIRST_OF_LOCK})) AND {_PLAN_RUNNING}"
)
# An expired lease may be taken over directly, if attempts remain and nobody cancelled it.
_EXPIRED = """j.status = 'running' AND j.lease_expires_at < :now
    AND j.attempts < j.max_attempts AND j.cancel_requested = 0"""

_CLAIM_SET = """
    status = 'running', lease_epoch = lease_epoch + 1, attempts = attempts + 1,
    worker = :worker, lease_expires_at = :now + :ttl, rev = rev + 1, updated_at = :now
"""


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _ts(value: float | None) -> datetime | None:
    return utc_from_timestamp(value)


def _job_from_row(row: Sequence[Any]) -> Job:
    """A row read as JOB_COLUMNS, by position: a lookup per field by name cost more than
    the SQL's own work per job on the batch path."""
    payload, result = row[3], row[16]
    return Job(
        row[0],
        row[1],
        row[2],
        {} if payload == "{}" else json.loads(payload),
        JOB_STATUS_BY_NAME[row[4]],
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        row[10],
        _ts(row[11]),
        row[12],
        datetime.fromtimestamp(row[13], UTC),
        row[14],
        row[15],
        None if result is None else json.loads(result),
        row[17],
        bool(row[18]),
        datetime.fromtimestamp(row[19], UTC),
        datetime.fromtimestamp(row[20], UTC),
        _ts(row[21]),
        row[22],
        row[23],
    )


# Claimed rows (as JOB_COLUMNS tuples) and their run ids, from inside a transaction.
_Claimed = tuple[list[tuple[Any, ...]], dict[int, int]]


def _leases(jobs: list[Job], run_ids: dict[int, int], worker: str, ttl: float) -> list[Lease]:
    return [
        Lease(
            job.id,
            job.lease_epoch,
            worker,
            job.lease_expires_at,  # type: ignore[arg-type]
            job.attempts,
            run_ids[job.id],
            ttl,
            job,
        )
        for job in jobs
    ]


def _claimed_leases(claimed: _Claimed, worker: str, ttl: float) -> list[Lease]:
    rows, run_ids = claimed
    jobs = [_job_from_row(row) for row in rows]
    jobs.sort(key=lambda job: (-job.priority, job.id))  # claim order
    return _leases(jobs, run_ids, worker, ttl)


def _completion_items(done: Sequence[tuple[Lease, Any]]) -> str | None:
    """[[job_id, epoch, result JSON], ...] for the batch completion, or None for none."""
    if not done:
        return None
    return _dumps(
        [
            [lease.job_id, lease.epoch, "null" if result is None else _dumps(result)]
            for lease, result in done
        ]
    )


def _run_from_row(row: sqlite3.Row) -> Run:
    return Run(
        id=row["id"],
        job_id=row["job_id"],
        attempt=row["attempt"],
        epoch=row["epoch"],
        worker=row["worker"],
        status=RunStatus(row["status"]),
        started_at=utc_from_timestamp(row["started_at"]),  # type: ignore[arg-type]
        finished_at=_ts(row["finished_at"]),
        error=row["error"],
        exit_code=row["exit_code"],
        stdout=row["stdout"],
        stderr=row["stderr"],
    )


def _ledger_from_row(row: sqlite3.Row) -> LedgerEntry:
    return LedgerEntry(
        job_id=row["job_id"],
        key=row["key"],
        epoch=row["epoch"],
        value=json.loads(row["value"]),
        worker=row["worker"],
        written_at=utc_from_timestamp(row["written_at"]),  # type: ignore[arg-type]
    )


def _event_from_row(row: sqlite3.Row) -> Event:
    return Event(
        id=row["id"],
        job_id=row["job_id"],
        kind=row["kind"],
        at=utc_from_timestamp(row["at"]),  # type: ignore[arg-type]
        epoch=row["epoch"],
        worker=row["worker"],
        data=json.loads(row["data"]),
        plan_id=row["plan_id"],
    )


class SqliteStore:
    """Store over a SQLite file (one connection per thread) or memory (one shared)."""

    def __init__(
        self,
        path: str | Path | None,
        *,
        url: str,
        clock: Clock | None = None,
        busy_timeout: float = 30.0,
        synchronous: str = "FULL",
    ) -> None:
        self.url = url
        self._clock: Clock = clock or time.time
        self._memory = path is None
        self._path = ":memory:" if path is None else str(path)
        self._busy_timeout = busy_timeout
        self._wake_check = WAKE_CHECK_BUSY
        self._synchronous = synchronous
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._registry_lock = threading.Lock()
        # Memory: one connection, one lock, no yield between compare and set.
        self._memory_lock = threading.RLock()
        self._shared: sqlite3.Connection | None = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    # -- connections and transactions -------------------------------------------------

    def _open_connection(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout,
            isolation_level=None,
            check_same_thread=not self._memory,
        )
        conn.row_factory = sqlite3.Row
        if not self._memory:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout * 1000)}")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        if not self._memory:
            # Another process's commit empties this connection's page cache; mapped pages
            # are then re-read from memory rather than by a system call each.
            conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        conn.execute("PRAGMA foreign_keys=ON")
        with self._registry_lock:
            self._connections.append(conn)
        return conn

    def _conn(self) -> sqlite3.Connection:
        if self._memory:
            if self._shared is None:
                self._shared = self._open_connection()
            return self._shared
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open_connection()
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database write lock from its first statement."""
        with self._memory_lock if self._memory else _NULL_LOCK:
            conn = self._conn()
            self._begin_immediate(conn)
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        """Take the write lock, retrying every fraction of a millisecond while another
        process holds it. SQLite's own busy handler sleeps 1, 2, 5, 10 ms and longer, so
        two busy workers handed the lock back and forth late and mostly idled; the same
        busy timeout still bounds the wait."""
        if self._memory:
            conn.execute("BEGIN IMMEDIATE")
            return
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            deadline = time.monotonic() + self._busy_timeout
            pause = 0.0001
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                        raise
                    if time.monotonic() >= deadline:
                        raise StoreUnavailable(
                            f"the SQLite database {self._path} stayed locked by another "
                            f"writer for {self._busy_timeout:g} s"
                        ) from exc
                time.sleep(pause)
                pause = min(pause * 2, 0.001)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._memory_lock if self._memory else _NULL_LOCK:
            yield self._conn()

    def _now(self) -> float:
        return self._clock()

    def now(self) -> datetime:
        return utc_from_timestamp(self._now())  # type: ignore[return-value]

    # -- schema -----------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._tx() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS agentfleet_schema (version INTEGER NOT NULL)")
            row = conn.execute("SELECT max(version) AS v FROM agentfleet_schema").fetchone()
            current = row["v"] or 0
            if current > LATEST_VERSION:
                raise SchemaTooNew(current, LATEST_VERSION)
            for version, script in MIGRATIONS:
                if version <= current:
                    continue
                for statement in _split_sql(script):
                    conn.execute(statement)
                conn.execute("INSERT INTO agentfleet_schema (version) VALUES (?)", (version,))

    def schema_version(self) -> int:
        with self._read() as conn:
            row = conn.execute("SELECT max(version) AS v FROM agentfleet_schema").fetchone()
            return int(row["v"] or 0)

    # -- writes -----------------------------------------------------------------------

    def _event(
        self,
        conn: sqlite3.Connection,
        job_id: int | None,
        kind: str,
        now: float,
        *,
        epoch: int | None = None,
        worker: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        conn.execute(
            "INSERT INTO events (job_id, kind, at, epoch, worker, data) VALUES (?,?,?,?,?,?)",
            (job_id, kind, now, epoch, worker, _dumps(dict(data or {}))),
        )

    def enqueue(self, jobs: Sequence[NewJob]) -> list[Job]:
        out: list[Job] = []
        with self._tx() as conn:
            now = self._now()
            for new in jobs:
                run_at = now if new.run_at is None else new.run_at.timestamp()
                row = conn.execute(
                    f"""
                    INSERT INTO jobs (queue, engine, payload, status, priority, lock,
                        max_attempts, timeout, run_at, dedupe_key, created_at, updated_at)
                    VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (dedupe_key)
                        WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running')
                    DO NOTHING
                    RETURNING {JOB_COLUMNS}
                    """,
                    (
                        new.queue,
                        new.engine,
                        _dumps(new.payload),
                        new.priority,
                        new.lock,
                        new.max_attempts,
                        new.timeout,
                        run_at,
                        new.dedupe_key,
                        now,
                        now,
                    ),
                ).fetchone()
                if row is None:
                    # The write lock is held, so the live duplicate cannot change under us.
                    row = conn.execute(
                        f"SELECT {JOB_COLUMNS} FROM jobs WHERE dedupe_key = ? AND status IN "
                        "('queued','running')",
                        (new.dedupe_key,),
                    ).fetchone()
                    out.append(_job_from_row(row))
                    continue
                job = _job_from_row(row)
                self._event(conn, job.id, "enqueued", now, data={"queue": job.queue})
                out.append(job)
        return out

    def _open_runs(
        self, conn: sqlite3.Connection, job_ids: list[int], now: float, *, close_expired: bool
    ) -> dict[int, int]:
        """Open one run and log one event per claimed job (three statements per batch);
        returns each job's run id."""
        if not job_ids:
            return {}
        ids = _dumps(job_ids)
        if close_expired:
            expired = conn.execute(
                "UPDATE runs SET status = 'expired', finished_at = ?, error = 'lease expired' "
                "WHERE job_id IN (SELECT value FROM json_each(?)) AND status = 'running' "
                "RETURNING job_id, epoch",
                (now, ids),
            ).fetchall()
            for old in expired:
                self._event(conn, old["job_id"], "lease_expired", now, epoch=old["epoch"])
        opened = conn.execute(
            "INSERT INTO runs (job_id, attempt, epoch, worker, status, started_at) "
            "SELECT id, attempts, lease_epoch, worker, 'running', ? FROM jobs "
            "WHERE id IN (SELECT value FROM json_each(?)) RETURNING job_id, id",
            (now, ids),
        )
        opened.row_factory = None
        run_ids: dict[int, int] = dict(opened.fetchall())
        conn.execute(
            "INSERT INTO events (job_id, kind, at, epoch, worker, data) "
            "SELECT id, 'claimed', ?, lease_epoch, worker, json_object('attempt', attempts) "
            "FROM jobs WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
            (now, ids),
        )
        return run_ids

    def claim(self, job_id: int, worker: str, ttl: float) -> Lease | None:
        try:
            with self._tx() as conn:
                now = self._now()
                rows = conn.execute(
                    f"""
                    UPDATE jobs SET {_CLAIM_SET}
                    WHERE id = :id AND id IN (
                        SELECT j.id FROM jobs j
                        WHERE j.id = :id AND (({_READY_ONE}) OR ({_EXPIRED})))
                    RETURNING {JOB_COLUMNS}
                    """,
                    {"id": job_id, "worker": worker, "ttl": ttl, "now": now},
                ).fetchall()
                if not rows:
                    return None
                job = _job_from_row(rows[0])
                run_ids = self._open_runs(conn, [job.id], now, close_expired=True)
                return _leases([job], run_ids, worker, ttl)[0]
        except sqlite3.IntegrityError:
            return None  # the named lock is held: the index said no

    def claim_next(
        self,
        worker: str,
        queues: Sequence[str] | None,
        limit: int,
        ttl: float,
        engines: Sequence[str] | None = None,
    ) -> list[Lease]:
        with self._tx() as conn:
            claimed = self._claim_next_in(conn, self._now(), worker, queues, limit, ttl, engines)
        return _claimed_leases(claimed, worker, ttl)

    def _claim_next_in(
        self,
        conn: sqlite3.Connection,
        now: float,
        worker: str,
        queues: Sequence[str] | None,
        limit: int,
        ttl: float,
        engines: Sequence[str] | None = None,
    ) -> _Claimed:
        """Claim in the caller's transaction; the rows become Leases after it commits, so
        the write lock is not held while Python builds them."""
        params: dict[str, Any] = {"worker": worker, "ttl": ttl, "limit": limit, "now": now}
        queue_filter, queue_filter_e = "", ""
        for column, values in (("queue", queues), ("engine", engines)):
            if values is not None:
                params[column] = _dumps(list(values))
                where = f"IN (SELECT value FROM json_each(:{column}))"
                queue_filter += f" AND j.{column} {where}"
                queue_filter_e += f" AND e.{column} {where}"
        ready = _READY_BATCH.format(queue_filter_e=queue_filter_e)
        cursor = conn.execute(
            f"""
            UPDATE jobs SET {_CLAIM_SET}
            WHERE id IN (
                SELECT j.id FROM jobs j INDEXED BY jobs_ready  -- claim order, no sort
                WHERE {ready} {queue_filter}
                ORDER BY j.priority DESC, j.id
                LIMIT :limit)
            RETURNING {JOB_COLUMNS}
            """,
            params,
        )
        cursor.row_factory = None
        rows = cursor.fetchall()
        return rows, self._open_runs(conn, [row[0] for row in rows], now, close_expired=False)

    def _complete_many_in(
        self, conn: sqlite3.Connection, now: float, items: str | None
    ) -> tuple[list[int], list[int]]:
        """Complete every lease that still owns its job, fenced per row; three statements.
        `items` is _completion_items' JSON, built before the write lock is taken."""
        if items is None:
            return [], []
        rows = conn.execute(
            """
            UPDATE jobs SET status = 'succeeded', result = i.result, error = NULL,
                finished_at = :now, updated_at = :now, lease_expires_at = NULL, rev = rev + 1
            FROM (SELECT json_extract(value, '$[0]') AS id, json_extract(value, '$[1]') AS epoch,
                         json_extract(value, '$[2]') AS result
                  FROM json_each(:items)) AS i
            WHERE jobs.id = i.id AND jobs.lease_epoch = i.epoch
              AND +jobs.status = 'running' -- '+': look jobs up by id, not scan by status
            RETURNING jobs.id, jobs.lease_epoch, jobs.plan_id
            """,
            {"items": items, "now": now},
        ).fetchall()
        if rows:
            pairs = _dumps([[r["id"], r["lease_epoch"]] for r in rows])
            conn.execute(
                """
                UPDATE runs SET status = 'succeeded', finished_at = :now
                WHERE status = 'running' AND (job_id, epoch) IN (
                    SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]')
                    FROM json_each(:pairs))
                """,
                {"pairs": pairs, "now": now},
            )
            conn.execute(
                """
                INSERT INTO events (job_id, kind, at, epoch, worker, data)
                SELECT j.id, 'succeeded', :now, j.lease_epoch, j.worker, '{}' FROM jobs j
                WHERE j.id IN (SELECT json_extract(value, '$[0]') FROM json_each(:pairs))
                ORDER BY j.id
                """,
                {"pairs": pairs, "now": now},
            )
        plans = sorted({r["plan_id"] for r in rows if r["plan_id"] is not None})
        return [r["id"] for r in rows], plans

    def complete_many(self, done: Sequence[tuple[Lease, Any]]) -> tuple[list[int], list[int]]:
        items = _completion_items(done)
        with self._tx() as conn:
            return self._complete_many_in(conn, self._now(), items)

    def complete_and_claim(
        self,
        done: Sequence[tuple[Lease, Any]],
        worker: str,
        queues: Sequence[str] | None,
        limit: int,
        ttl: float,
        engines: Sequence[str] | None = None,
    ) -> tuple[list[int], list[int], list[Lease]]:
        """Complete a batch and claim the next in one transaction: one commit per batch."""
        items = _completion_items(done)
        with self._tx() as conn:
            now = self._now()
            completed, plans = self._complete_many_in(conn, now, items)
            claimed = self._claim_next_in(conn, now, worker, queues, limit, ttl, engines)
        return completed, plans, _claimed_leases(claimed, worker, ttl)

    def _lost(self, conn: sqlite3.Connection, lease: Lease) -> LeaseLost:
        row = conn.execute(
            "SELECT status, lease_epoch, cancel_requested FROM jobs WHERE id = ?", (lease.job_id,)
        ).fetchone()
        if row is None:
            return LeaseLost(lease.job_id, lease.epoch)
        if (
            row["status"] == "running"
            and row["lease_epoch"] == lease.epoch
            and row["cancel_requested"]
        ):
            return JobCancelled(lease.job_id, lease.epoch)
        return LeaseLost(
            lease.job_id, lease.epoch, current_epoch=row["lease_epoch"], status=row["status"]
        )

    def _fenced_lost(self, conn: sqlite3.Connection, lease: Lease) -> LeaseLost:
        lost = self._lost(conn, lease)
        return LeaseLost(lease.job_id, lease.epoch) if isinstance(lost, JobCancelled) else lost

    def renew(self, lease: Lease, ttl: float) -> Lease:
        with self._tx() as conn:
            now = self._now()
            row = conn.execute(
                """
                UPDATE jobs SET lease_expires_at = :now + :ttl, rev = rev + 1, updated_at = :now
                WHERE id = :id AND lease_epoch = :epoch AND status = 'running'
                  AND cancel_requested = 0
                RETURNING lease_expires_at
                """,
                {"id": lease.job_id, "epoch": lease.epoch, "now": now, "ttl": ttl},
            ).fetchone()
            if row is None:
                raise self._lost(conn, lease)
        return Lease(
            job_id=lease.job_id,
            epoch=lease.epoch,
            worker=lease.worker,
            expires_at=utc_from_timestamp(row["lease_expires_at"]),  # type: ignore[arg-type]
            attempt=lease.attempt,
            run_id=lease.run_id,
            ttl=ttl,
            job=lease.job,
        )

    def _close_run(
        self,
        conn: sqlite3.Connection,
        lease: Lease,
        status: str,
        now: float,
        error: str | None,
        output: RunOutput | None,
    ) -> None:
        out = output or RunOutput()
        conn.execute(
            """
            UPDATE runs SET status = ?, finished_at = ?, error = ?, exit_code = ?,
                stdout = ?, stderr = ?
            WHERE job_id = ? AND epoch = ? AND status = 'running'
            """,
            (status, now, error, out.exit_code, out.stdout, out.stderr, lease.job_id, lease.epoch),
        )

    def complete(self, lease: Lease, result: Any, output: RunOutput | None) -> None:
        with self._tx() as conn:
            now = self._now()
            row = conn.execute(
                """
                UPDATE jobs SET status = 'succeeded', result = :result, error = NULL,
                    finished_at = :now, updated_at = :now, lease_expires_at = NULL, rev = rev + 1
                WHERE id = :id AND lease_epoch = :epoch AND status = 'running'
                RETURNING id
                """,
                {"id": lease.job_id, "epoch": lease.epoch, "now": now, "result": _dumps(result)},
            ).fetchone()
            if row is None:
                raise self._fenced_lost(conn, lease)
            self._close_run(conn, lease, "succeeded", now, None, output)
            self._event(
                conn, lease.job_id, "succeeded", now, epoch=lease.epoch, worker=lease.worker
            )

    def fail(
        self, lease: Lease, error: str, retry_delay: float | None, output: RunOutput | None
    ) -> JobStatus:
        with self._tx() as conn:
            now = self._now()
            row = conn.execute(
                """
                UPDATE jobs SET
                    status = CASE WHEN cancel_requested THEN 'cancelled'
                                  WHEN :retry AND attempts < max_attempts THEN 'queued'
                                  ELSE 'failed' END,
                    run_at = CASE WHEN NOT cancel_requested AND :retry
                                       AND attempts < max_attempts
                                  THEN :now + :delay ELSE run_at END,
                    finished_at = CASE WHEN cancel_requested OR NOT :retry
                                            OR attempts >= max_attempts
                                       THEN :now ELSE NULL END,
                    error = :error, lease_expires_at = NULL, updated_at = :now, rev = rev + 1
                WHERE id = :id AND lease_epoch = :epoch AND status = 'running'
                RETURNING status, run_at
                """,
                {
                    "id": lease.job_id,
                    "epoch": lease.epoch,
                    "now": now,
                    "error": error,
                    "retry": retry_delay is not None,
                    "delay": retry_delay or 0.0,
                },
            ).fetchone()
            if row is None:
                raise self._fenced_lost(conn, lease)
            status = JobStatus(row["status"])
            run_status = "cancelled" if status is JobStatus.CANCELLED else "failed"
            self._close_run(conn, lease, run_status, now, error, output)
            kind = {"queued": "retry_scheduled", "failed": "failed", "cancelled": "cancelled"}
            data: dict[str, Any] = {"error": error}
            if status is JobStatus.QUEUED:
                data["retry_in"] = round(row["run_at"] - now, 3)
            self._event(
                conn,
                lease.job_id,
                kind[status],
                now,
                epoch=lease.epoch,
                worker=lease.worker,
                data=data,
            )
            return status

    def release(self, lease: Lease, reason: str) -> JobStatus:
        with self._tx() as conn:
            now = self._now()
            row = conn.execute(
                """
                UPDATE jobs SET
                    status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
                    finished_at = CASE WHEN cancel_requested THEN :now ELSE NULL END,
                    attempts = attempts - 1, run_at = :now, lease_expires_at = NULL,
                    updated_at = :now, rev = rev + 1
                WHERE id = :id AND lease_epoch = :epoch AND status = 'running'
                RETURNING status
                """,
                {"id": lease.job_id, "epoch": lease.epoch, "now": now},
            ).fetchone()
            if row is None:
                raise self._fenced_lost(conn, lease)
            status = JobStatus(row["status"])
            run_status = "cancelled" if status is JobStatus.CANCELLED else "released"
            self._close_run(conn, lease, run_status, now, reason, None)
            self._event(
                conn,
                lease.job_id,
                "released",
                now,
                epoch=lease.epoch,
                worker=lease.worker,
                data={"reason": reason},
            )
            return status

    def cancel_job(self, job_id: int) -> bool:
        with self._tx() as conn:
            now = self._now()
            row = conn.execute(
                "UPDATE jobs SET status = 'cancelled', finished_at = ?, updated_at = ?, "
                "rev = rev + 1 WHERE id = ? AND status = 'queued' RETURNING id",
                (now, now, job_id),
            ).fetchone()
            if row is not None:
                self._event(conn, job_id, "cancelled", now)
                return True
            row = conn.execute(
                "UPDATE jobs SET cancel_requested = 1, updated_at = ?, rev = rev + 1 "
                "WHERE id = ? AND status = 'running' AND cancel_requested = 0 "
                "RETURNING lease_epoch",
                (now, job_id),
            ).fetchone()
            if row is not None:
                self._event(conn, job_id, "cancel_requested", now, epoch=row["lease_epoch"])
                return True
            if conn.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
                raise JobNotFound(job_id)
            return False

    def retry_job(self, job_id: int) -> Job:
        try:
            with self._tx() as conn:
                now = self._now()
                row = conn.execute(
                    f"""
                    UPDATE jobs SET status = 'queued', attempts = 0, run_at = :now,
                        cancel_requested = 0, error = NULL, result = NULL, finished_at = NULL,
                        updated_at = :now, rev = rev + 1
                    WHERE id = :id AND status IN ('failed', 'cancelled')
                    RETURNING {JOB_COLUMNS}
                    """,
                    {"id": job_id, "now": now},
                ).fetchone()
                if row is None:
                    current = conn.execute(
                        "SELECT status FROM jobs WHERE id = ?", (job_id,)
                    ).fetchone()
                    if current is None:
                        raise JobNotFound(job_id)
                    raise InvalidTransition(f"job {job_id}", current["status"], "queued")
                self._event(conn, job_id, "retried", now)
                return _job_from_row(row)
        except sqlite3.IntegrityError as exc:
            raise InvalidTransition(
                f"job {job_id} (another live job has its dedupe key)", "failed", "queued"
            ) from exc

    def reap_expired(self) -> list[tuple[int, JobStatus]]:
        with self._tx() as conn:
            now = self._now()
            rows = conn.execute(
                """
                UPDATE jobs SET
                    status = CASE WHEN cancel_requested THEN 'cancelled'
                                  WHEN attempts < max_attempts THEN 'queued'
                                  ELSE 'failed' END,
                    finished_at = CASE WHEN cancel_requested OR attempts >= max_attempts
                                       THEN :now ELSE NULL END,
                    error = 'lease expired', lease_expires_at = NULL, run_at = :now,
                    updated_at = :now, rev = rev + 1
                WHERE status = 'running' AND lease_expires_at < :now
                RETURNING id, status, lease_epoch, worker
                """,
                {"now": now},
            ).fetchall()
            out: list[tuple[int, JobStatus]] = []
            for row in rows:
                conn.execute(
                    "UPDATE runs SET status = 'expired', finished_at = ?, error = 'lease expired' "
                    "WHERE job_id = ? AND epoch = ? AND status = 'running'",
                    (now, row["id"], row["lease_epoch"]),
                )
                self._event(
                    conn,
                    row["id"],
                    "lease_expired",
                    now,
                    epoch=row["lease_epoch"],
                    worker=row["worker"],
                    data={"now": row["status"]},
                )
                out.append((row["id"], JobStatus(row["status"])))
            return out

    def update_if_match(
        self, collection: str, doc_id: int, expected_rev: int, patch: Mapping[str, Any]
    ) -> MatchResult:
        check_job_patch(collection, patch)
        values: dict[str, Any] = {}
        for key, value in patch.items():
            if key == "payload":
                values[key] = _dumps(value)
            elif key == "run_at" and isinstance(value, datetime):
                values[key] = value.timestamp()
            else:
                values[key] = value
        assignments = ", ".join(f"{key} = :p_{key}" for key in values)
        params = {f"p_{k}": v for k, v in values.items()}
        try:
            with self._tx() as conn:
                now = self._now()
                params.update({"id": doc_id, "rev": expected_rev, "now": now})
                row = conn.execute(
                    f"UPDATE jobs SET {assignments}, rev = rev + 1, updated_at = :now "
                    f"WHERE id = :id AND rev = :rev RETURNING {JOB_COLUMNS}",
                    params,
                ).fetchone()
                if row is None:
                    exists = conn.execute("SELECT 1 FROM jobs WHERE id = ?", (doc_id,)).fetchone()
                    return MatchResult("conflict" if exists else "not_found")
                job = _job_from_row(row)
                self._event(conn, doc_id, "updated", now, data={"fields": sorted(values)})
                return MatchResult("ok", job, job.rev)
        except sqlite3.IntegrityError:
            return MatchResult("conflict")

    def record_output(self, lease: Lease, output: RunOutput) -> None:
        with self._tx() as conn:
            row = conn.execute(
                "UPDATE runs SET stdout = ?, stderr = ? "
                "WHERE job_id = ? AND epoch = ? AND status = 'running' RETURNING id",
                (output.stdout, output.stderr, lease.job_id, lease.epoch),
            ).fetchone()
            if row is None:
                raise self._fenced_lost(conn, lease)

    def fenced_write(self, lease: Lease, key: str, value: Any) -> LedgerEntry:
        with self._tx() as conn:
            # One conditional statement: the row to write exists only while the lease's
            # epoch still holds the running job.
            row = conn.execute(
                """
                INSERT INTO ledger (job_id, key, epoch, value, worker, written_at)
                SELECT id, :key, lease_epoch, :value, :worker, :now FROM jobs
                WHERE id = :id AND lease_epoch = :epoch AND status = 'running'
                ON CONFLICT (job_id, key, epoch) DO UPDATE SET value = excluded.value,
                    worker = excluded.worker, written_at = excluded.written_at
                RETURNING *
                """,
                {
                    "id": lease.job_id,
                    "epoch": lease.epoch,
                    "key": key,
                    "value": _dumps(value),
                    "worker": lease.worker,
                    "now": self._now(),
                },
            ).fetchone()
            if row is None:
                raise self._fenced_lost(conn, lease)
            return _ledger_from_row(row)

    def ledger(self, job_id: int) -> list[LedgerEntry]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM ledger WHERE job_id = ? ORDER BY key, epoch", (job_id,)
            ).fetchall()
        return [_ledger_from_row(r) for r in rows]

    def worker_seen(
        self, name: str, host: str, pid: int, queues: Sequence[str], concurrency: int
    ) -> None:
        with self._tx() as conn:
            now = self._now()
            conn.execute(
                """
                INSERT INTO workers (name, host, pid, queues, concurrency, started_at, last_seen)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (name) DO UPDATE SET host = excluded.host, pid = excluded.pid,
                    queues = excluded.queues, concurrency = excluded.concurrency,
                    last_seen = excluded.last_seen, stopped_at = NULL,
                    started_at = CASE WHEN workers.stopped_at IS NOT NULL
                                      OR workers.pid <> excluded.pid
                                      THEN excluded.started_at ELSE workers.started_at END
                """,
                (name, host, pid, _dumps(list(queues)), concurrency, now, now),
            )

    def worker_stopped(self, name: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "UPDATE workers SET stopped_at = ? WHERE name = ? AND stopped_at IS NULL",
                (self._now(), name),
            )

    def list_workers(self) -> list[WorkerInfo]:
        with self._read() as conn:
            rows = conn.execute("SELECT * FROM workers ORDER BY name").fetchall()
            held = conn.execute(
                "SELECT worker, id FROM jobs WHERE status = 'running' ORDER BY id"
            ).fetchall()
        running: dict[str, list[int]] = {}
        for h in held:
            running.setdefault(h["worker"], []).append(h["id"])
        return [
            WorkerInfo(
                name=r["name"],
                host=r["host"],
                pid=r["pid"],
                queues=tuple(json.loads(r["queues"])),
                concurrency=r["concurrency"],
                started_at=utc_from_timestamp(r["started_at"]),  # type: ignore[arg-type]
                last_seen=utc_from_timestamp(r["last_seen"]),  # type: ignore[arg-type]
                stopped_at=_ts(r["stopped_at"]),
                running=tuple(running.get(r["name"], ())),
            )
            for r in rows
        ]

    def wait_for_jobs(self, timeout: float) -> bool:
        """Wake when another connection commits (SQLite has no notifications).

        `PRAGMA data_version` changes when any other connection has committed, and reading
        it touches no table. It is checked every 5 ms while the database is busy, backing
        off to every 50 ms while it is quiet, so an idle worker costs little CPU and starts
        new work within that time instead of its poll backoff's. A wake only says the
        database changed: the caller's claim decides whether there is work.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        if self._memory:
            time.sleep(max(0.0, timeout))
            return False
        conn = self._conn()
        seen = conn.execute("PRAGMA data_version").fetchone()[0]
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(self._wake_check, left))
            if conn.execute("PRAGMA data_version").fetchone()[0] != seen:
                self._wake_check = WAKE_CHECK_BUSY
                return True
            self._wake_check = min(self._wake_check * 1.2, WAKE_CHECK_QUIET)
        return False

    # -- reads ------------------------------------------------------------------------

    def get_job(self, job_id: int) -> Job:
        with self._read() as conn:
            row = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        return _job_from_row(row)

    def list_jobs(
        self,
        *,
        status: JobStatus | None,
        queue: str | None,
        engine: str | None,
        label: str | None,
        limit: int,
        offset: int,
    ) -> list[Job]:
        where, params = ["1=1"], []
        for column, value in (("status", status), ("queue", queue), ("engine", engine)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(str(value))
        if label is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(payload, '$.labels') WHERE value = ?)")
            params.append(label)
        sql = (
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE {' AND '.join(where)} "
            "ORDER BY id DESC LIMIT ? OFFSET ?"
        )
        with self._read() as conn:
            rows = conn.execute(sql, (*params, limit, offset)).fetchall()
        return [_job_from_row(r) for r in rows]

    def count_jobs(self) -> dict[tuple[str, str], int]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT queue, status, count(*) AS n FROM jobs GROUP BY queue, status"
            ).fetchall()
        return {(r["queue"], r["status"]): r["n"] for r in rows}

    def runs(self, job_id: int) -> list[Run]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM runs WHERE job_id = ? ORDER BY epoch", (job_id,)
            ).fetchall()
        return [_run_from_row(r) for r in rows]

    def events(self, job_id: int | None, after_id: int, limit: int) -> list[Event]:
        with self._read() as conn:
            if job_id is None:
                rows = conn.execute(
                    "SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT * FROM events WHERE job_id = ? AND id > ? ORDER BY id LIMIT ?",
                    (job_id, after_id, limit),
                ).fetchall()
        return [_event_from_row(r) for r in rows]

    def plan_dialect(self) -> SqliteDialect:
        return SqliteDialect(self, None if self._memory else Path(self._path))

    def close(self) -> None:
        with self._registry_lock:
            for conn in self._connections:
                with suppress(sqlite3.Error):
                    conn.close()
            self._connections.clear()
        self._local = threading.local()
        self._shared = None


class _NullLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NULL_LOCK = _NullLock()


def _split_sql(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]
