"""PostgreSQL store: for fleets that span machines.

Every transition is one statement (data-modifying CTEs keep the job row, its run record
and its event in the same atomic step) whose WHERE clause names the expected status and
epoch. Claims pick rows with `FOR UPDATE SKIP LOCKED`, so racing workers never wait on or
take each other's rows. Time is the server's `now()`: one clock for the whole fleet.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import dict_row, tuple_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

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
)
from agentfleet.plans.dialect import PostgresDialect
from agentfleet.store.base import check_job_patch
from agentfleet.store.postgres_schema import LATEST_VERSION, MIGRATIONS, SCHEMA

Row = dict[str, Any]

NOTIFY_CHANNEL = "agentfleet_jobs"
_MIGRATION_LOCK_KEY = 0x6166_0001  # "af" + 1: serialises concurrent migrators

_LOCK_FREE = """NOT EXISTS (SELECT 1 FROM jobs r WHERE r.lock = j.lock AND r.status = 'running')"""
_FIRST_OF_LOCK = """NOT EXISTS (
    SELECT 1 FROM jobs e
    WHERE e.lock = j.lock AND e.status = 'queued' AND e.run_at <= now()
      AND (e.priority > j.priority OR (e.priority = j.priority AND e.id < j.id))
      {queue_filter_e})"""
# A plan's job starts only while its plan is running: the database says so, not the caller.
_PLAN_RUNNING = """(j.plan_id IS NULL OR EXISTS (
    SELECT 1 FROM plans p WHERE p.id = j.plan_id AND p.status = 'running'))"""
_READY_ONE = (
    f"j.status = 'queued' AND j.run_at <= now() AND (j.lock IS NULL OR {_LOCK_FREE}) "
    f"AND {_PLAN_RUNNING}"
)
_READY_BATCH = (
    "j.status = 'queued' AND j.run_at <= now() "
    f"AND (j.lock IS NULL OR ({_LOCK_FREE} AND {_FIRST_OF_LOCK})) AND {_PLAN_RUNNING}"
)
_EXPIRED = """j.status = 'running' AND j.lease_expires_at < now()
    AND j.attempts < j.max_attempts AND NOT j.cancel_requested"""

_CLAIM_SET = """
    status = 'running', lease_epoch = jobs.lease_epoch + 1, attempts = jobs.attempts + 1,
    worker = %(worker)s, lease_expires_at = now() + %(ttl)s * interval '1 second',
    rev = jobs.rev + 1, updated_at = now()
"""

# Opening the run and logging the claim ride in the claiming statement. Run stamps use
# clock_timestamp(), taken after the snapshot, so they order like the commits they record.
_OPEN_RUNS = """
, opened AS (
    INSERT INTO runs (job_id, attempt, epoch, worker, status, started_at)
    SELECT id, attempts, lease_epoch, worker, 'running', clock_timestamp() FROM claimed
    RETURNING id AS run_id, job_id
), logged AS (
    INSERT INTO events (job_id, kind, at, epoch, worker, data)
    SELECT id, 'claimed', now(), lease_epoch, worker, jsonb_build_object('attempt', attempts)
    FROM claimed
)
SELECT claimed.*, opened.run_id FROM claimed JOIN opened ON opened.job_id = claimed.id
ORDER BY claimed.priority DESC, claimed.id
"""

_COMPLETE_BATCH = """
    input AS (
        SELECT * FROM unnest(%(d_ids)s::bigint[], %(d_epochs)s::bigint[], %(d_results)s::text[])
            AS t (id, epoch, result)
    ), done AS (
        UPDATE jobs SET status = 'succeeded', result = input.result::jsonb, error = NULL,
            finished_at = now(), updated_at = now(), lease_expires_at = NULL, rev = jobs.rev + 1
        FROM input
        WHERE jobs.id = input.id AND jobs.lease_epoch = input.epoch AND jobs.status = 'running'
        RETURNING jobs.id, jobs.lease_epoch, jobs.worker, jobs.plan_id
    ), closed AS (
        UPDATE runs SET status = 'succeeded', finished_at = clock_timestamp()
        FROM done
        WHERE runs.job_id = done.id AND runs.epoch = done.lease_epoch AND runs.status = 'running'
    ), done_logged AS (
        INSERT INTO events (job_id, kind, epoch, worker)
        SELECT id, 'succeeded', lease_epoch, worker FROM done
    )"""

_CLAIM_BATCH = (
    """
    picked AS (
        SELECT j.id FROM jobs j
        WHERE {ready} {queue_filter}
        ORDER BY j.priority DESC, j.id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE jobs SET """
    + _CLAIM_SET
    + """
        WHERE jobs.id = ANY(ARRAY(SELECT id FROM picked)) AND jobs.status = 'queued'
        RETURNING jobs.*
    ), opened AS (
        INSERT INTO runs (job_id, attempt, epoch, worker, status, started_at)
        SELECT id, attempts, lease_epoch, worker, 'running', clock_timestamp() FROM claimed
        RETURNING id AS run_id, job_id
    ), logged AS (
        INSERT INTO events (job_id, kind, at, epoch, worker, data)
        SELECT id, 'claimed', now(), lease_epoch, worker, jsonb_build_object('attempt', attempts)
        FROM claimed
    )"""
)

_LOST_SQL = "SELECT status, lease_epoch, cancel_requested FROM jobs WHERE id = %s"


def _job(row: Row) -> Job:
    return Job(
        id=row["id"],
        queue=row["queue"],
        engine=row["engine"],
        payload=row["payload"],
        status=JobStatus(row["status"]),
        priority=row["priority"],
        lock=row["lock"],
        max_attempts=row["max_attempts"],
        attempts=row["attempts"],
        lease_epoch=row["lease_epoch"],
        worker=row["worker"],
        lease_expires_at=row["lease_expires_at"],
        timeout=row["timeout"],
        run_at=row["run_at"],
        dedupe_key=row["dedupe_key"],
        rev=row["rev"],
        result=row["result"],
        error=row["error"],
        cancel_requested=row["cancel_requested"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        plan_id=row["plan_id"],
        step=row["step"],
    )


# What a claimed row returns: the columns that differ per job. Status, worker, expiry and
# updated_at are the same for every row of one claim and come once, with the batch.
_CLAIMED_COLUMNS = (
    "id, queue, engine, payload, priority, lock, max_attempts, attempts, lease_epoch,"
    " timeout, run_at, dedupe_key, rev, result, error, cancel_requested, created_at,"
    " finished_at, plan_id, step"
)
_CLAIMED_WIDTH = _CLAIMED_COLUMNS.count(",") + 1


def _claimed_lease(
    row: tuple[Any, ...], worker: str, expires: datetime, at: datetime, run_id: int, ttl: float
) -> Lease:
    """A claimed row read as _CLAIMED_COLUMNS, with the values its claim set for all."""
    (
        job_id, queue, engine, payload, priority, lock, max_attempts, attempts, epoch,
        timeout, run_at, dedupe_key, rev, result, error, cancel_requested, created_at,
        finished_at, plan_id, step,
    ) = row[:_CLAIMED_WIDTH]  # fmt: skip
    job = Job(
        job_id, queue, engine, payload, JobStatus.RUNNING, priority, lock, max_attempts,
        attempts, epoch, worker, expires, timeout, run_at, dedupe_key, rev, result, error,
        cancel_requested, created_at, at, finished_at, plan_id, step,
    )  # fmt: skip
    return Lease(job_id, epoch, worker, expires, attempts, run_id, ttl, job)


def _claim_order(lease: Lease) -> tuple[int, int]:
    job = cast(Job, lease.job)
    return (-job.priority, lease.job_id)


def _lease(row: Row, ttl: float) -> Lease:
    job = _job(row)
    return Lease(
        job_id=job.id,
        epoch=job.lease_epoch,
        worker=row["worker"],
        expires_at=row["lease_expires_at"],
        attempt=job.attempts,
        run_id=row["run_id"],
        ttl=ttl,
        job=job,
    )


def _ledger_entry(row: Row) -> LedgerEntry:
    return LedgerEntry(
        job_id=row["job_id"],
        key=row["key"],
        epoch=row["epoch"],
        value=row["value"],
        worker=row["worker"],
        written_at=row["written_at"],
    )


def _output_params(output: RunOutput | None) -> dict[str, Any]:
    out = output or RunOutput()
    return {"exit_code": out.exit_code, "stdout": out.stdout, "stderr": out.stderr}


class PostgresStore:
    """Store over a psycopg 3 connection pool."""

    def __init__(self, url: str, *, pool_size: int = 4, notify: bool = True) -> None:
        self.url = url
        self.notify = notify
        self._listener: psycopg.Connection[Any] | None = None
        try:
            # Probe once so that a wrong URL fails at once instead of after the pool's retries.
            psycopg.connect(url, connect_timeout=10).close()
            self._pool = ConnectionPool(
                url,
                min_size=1,
                max_size=max(1, pool_size),
                kwargs={
                    "autocommit": True,
                    "row_factory": dict_row,
                    "options": f"-c search_path={SCHEMA}",
                },
                open=False,
                name="agentfleet",
            )
            self._pool.open(wait=True, timeout=15)
        except (psycopg.Error, Exception) as exc:
            raise StoreUnavailable(
                f"cannot connect to PostgreSQL at {_redact(url)}: {exc}"
            ) from exc
        self._migrate()

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Row]]:
        with _unavailable_on_disconnect(), self._pool.connection() as conn:
            yield cast("psycopg.Connection[Row]", conn)

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[Row]]:
        with _unavailable_on_disconnect(), self._pool.connection() as conn, conn.transaction():
            yield cast("psycopg.Connection[Row]", conn)

    def _one(self, sql: str, params: Mapping[str, Any] | Sequence[Any] = ()) -> Row | None:
        with self._conn() as conn:
            return conn.execute(sql, params).fetchone()

    def _all(self, sql: str, params: Mapping[str, Any] | Sequence[Any] = ()) -> list[Row]:
        with self._conn() as conn:
            return conn.execute(sql, params).fetchall()

    def now(self) -> datetime:
        row = self._one("SELECT now() AS now")
        assert row is not None
        value: datetime = row["now"]
        return value

    # -- schema -----------------------------------------------------------------------

    def _migrate(self) -> None:
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_KEY,))
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
            row = conn.execute("SELECT max(version) AS v FROM schema_version").fetchone()
            current = (row or {}).get("v") or 0
            if current > LATEST_VERSION:
                raise SchemaTooNew(current, LATEST_VERSION)
            for version, script in MIGRATIONS:
                if version > current:
                    conn.execute(script.encode())
                    conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))

    def schema_version(self) -> int:
        row = self._one("SELECT max(version) AS v FROM schema_version")
        return int((row or {}).get("v") or 0)

    # -- writes -----------------------------------------------------------------------

    def enqueue(self, jobs: Sequence[NewJob]) -> list[Job]:
        if len(jobs) > 1 and all(job.dedupe_key is None for job in jobs):
            return self._enqueue_bulk(jobs)
        return self._enqueue_each(jobs)

    def _enqueue_bulk(self, jobs: Sequence[NewJob]) -> list[Job]:
        """Many jobs without dedupe keys: one statement, ids assigned in input order."""
        columns: dict[str, list[Any]] = {
            "queue": [j.queue for j in jobs],
            "engine": [j.engine for j in jobs],
            "payload": [json.dumps(j.payload) for j in jobs],
            "priority": [j.priority for j in jobs],
            "lock": [j.lock for j in jobs],
            "max_attempts": [j.max_attempts for j in jobs],
            "timeout": [j.timeout for j in jobs],
            "run_at": [j.run_at for j in jobs],
        }
        with self._tx() as conn:
            rows = conn.execute(
                """
                WITH ins AS (
                    INSERT INTO jobs (queue, engine, payload, status, priority, lock,
                        max_attempts, timeout, run_at)
                    SELECT queue, engine, payload::jsonb, 'queued', priority, lock,
                        max_attempts, timeout, coalesce(run_at, now())
                    FROM unnest(%(queue)s::text[], %(engine)s::text[], %(payload)s::text[],
                                %(priority)s::int[], %(lock)s::text[], %(max_attempts)s::int[],
                                %(timeout)s::float8[], %(run_at)s::timestamptz[])
                        WITH ORDINALITY AS t (queue, engine, payload, priority, lock,
                                              max_attempts, timeout, run_at, ord)
                    ORDER BY ord
                    RETURNING *
                ), logged AS (
                    INSERT INTO events (job_id, kind, data)
                    SELECT id, 'enqueued', jsonb_build_object('queue', queue) FROM ins
                )
                SELECT * FROM ins ORDER BY id
                """,
                columns,
            ).fetchall()
            if self.notify:
                for queue in sorted(set(columns["queue"])):
                    conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, queue))
        return [_job(row) for row in rows]

    def _enqueue_each(self, jobs: Sequence[NewJob]) -> list[Job]:
        out: list[Job] = []
        queues: set[str] = set()
        with self._tx() as conn:
            for new in jobs:
                row = conn.execute(
                    """
                    WITH ins AS (
                        INSERT INTO jobs (queue, engine, payload, status, priority, lock,
                            max_attempts, timeout, run_at, dedupe_key)
                        VALUES (%(queue)s, %(engine)s, %(payload)s, 'queued', %(priority)s,
                            %(lock)s, %(max_attempts)s, %(timeout)s,
                            coalesce(%(run_at)s, now()), %(dedupe_key)s)
                        ON CONFLICT (dedupe_key)
                            WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running')
                        DO NOTHING
                        RETURNING *
                    ), logged AS (
                        INSERT INTO events (job_id, kind, data)
                        SELECT id, 'enqueued', jsonb_build_object('queue', queue) FROM ins
                    )
                    SELECT * FROM ins
                    """,
                    {
                        "queue": new.queue,
                        "engine": new.engine,
                        "payload": Jsonb(new.payload),
                        "priority": new.priority,
                        "lock": new.lock,
                        "max_attempts": new.max_attempts,
                        "timeout": new.timeout,
                        "run_at": new.run_at,
                        "dedupe_key": new.dedupe_key,
                    },
                ).fetchone()
                if row is None:
                    row = conn.execute(
                        "SELECT * FROM jobs WHERE dedupe_key = %s "
                        "AND status IN ('queued', 'running')",
                        (new.dedupe_key,),
                    ).fetchone()
                    if row is None:  # the live duplicate finished meanwhile: try once more
                        raise InvalidTransition("dedupe_key", "live", "finished")
                else:
                    queues.add(new.queue)
                out.append(_job(row))
            if self.notify:
                for queue in sorted(queues):
                    conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, queue))
        return out

    def claim(self, job_id: int, worker: str, ttl: float) -> Lease | None:
        sql = f"""
            WITH target AS (
                SELECT j.id, j.status AS old_status FROM jobs j
                WHERE j.id = %(id)s AND (({_READY_ONE}) OR ({_EXPIRED}))
                FOR UPDATE SKIP LOCKED
            ), claimed AS (
                UPDATE jobs SET {_CLAIM_SET}
                FROM target WHERE jobs.id = target.id
                RETURNING jobs.*, target.old_status
            ), closed AS (
                UPDATE runs SET status = 'expired', finished_at = clock_timestamp(),
                    error = 'lease expired'
                WHERE job_id IN (SELECT id FROM claimed WHERE old_status = 'running')
                  AND status = 'running'
                RETURNING job_id, epoch
            ), closed_logged AS (
                INSERT INTO events (job_id, kind, epoch) SELECT job_id, 'lease_expired', epoch
                FROM closed
            ) {_OPEN_RUNS}
        """
        try:
            row = self._one(sql, {"id": job_id, "worker": worker, "ttl": ttl})
        except pg_errors.UniqueViolation:
            return None  # the named lock is held: the index said no
        return None if row is None else _lease(row, ttl)

    def claim_next(
        self,
        worker: str,
        queues: Sequence[str] | None,
        limit: int,
        ttl: float,
        engines: Sequence[str] | None = None,
    ) -> list[Lease]:
        return self._batch([], worker, queues, limit, ttl, engines)[2]

    def complete_many(self, done: Sequence[tuple[Lease, Any]]) -> tuple[list[int], list[int]]:
        if not done:
            return [], []
        ids, plans, _ = self._batch(done, None, None, 0, 0.0)
        return ids, plans

    def complete_and_claim(
        self,
        done: Sequence[tuple[Lease, Any]],
        worker: str,
        queues: Sequence[str] | None,
        limit: int,
        ttl: float,
        engines: Sequence[str] | None = None,
    ) -> tuple[list[int], list[int], list[Lease]]:
        return self._batch(done, worker, queues, limit, ttl, engines)

    def _batch(
        self,
        done: Sequence[tuple[Lease, Any]],
        worker: str | None,
        queues: Sequence[str] | None,
        limit: int,
        ttl: float,
        engines: Sequence[str] | None = None,
    ) -> tuple[list[int], list[int], list[Lease]]:
        """Complete a batch and claim the next in one statement: one round trip, one commit.

        The completing part is fenced per row by (id, epoch, status); the claiming part picks
        with SKIP LOCKED. Both see one snapshot, so a lock freed by this batch's completions
        is only taken by a later claim.
        """
        params: dict[str, Any] = {"worker": worker, "ttl": ttl, "limit": limit}
        ctes: list[str] = []
        if done:
            params["d_ids"] = [lease.job_id for lease, _ in done]
            params["d_epochs"] = [lease.epoch for lease, _ in done]
            params["d_results"] = [
                "null" if result is None else json.dumps(result) for _, result in done
            ]
            ctes.append(_COMPLETE_BATCH)
        claiming = worker is not None and limit > 0
        if claiming:
            queue_filter = queue_filter_e = ""
            for column, values in (("queue", queues), ("engine", engines)):
                if values is not None:
                    params[column] = list(values)
                    queue_filter += f" AND j.{column} = ANY(%({column})s)"
                    queue_filter_e += f" AND e.{column} = ANY(%({column})s)"
            ready = _READY_BATCH.format(queue_filter_e=queue_filter_e)
            ctes.append(_CLAIM_BATCH.format(ready=ready, queue_filter=queue_filter))
        done_cols = (
            "(SELECT coalesce(array_agg(id), '{}') FROM done), "
            "(SELECT coalesce(array_agg(DISTINCT plan_id) FILTER (WHERE plan_id IS NOT NULL),"
            " '{}') FROM done)"
            if done
            else "'{}'::bigint[], '{}'::bigint[]"
        )
        if claiming:
            # One row carries the batch's own values (completed ids, the claim's expiry and
            # time, the runs it opened); every other row is one claimed job's columns.
            # Repeating the completed ids on every row made a batch's result grow with
            # its square.
            final = (
                f"SELECT c.*, d.* FROM (SELECT {done_cols}, "
                "now() + %(ttl)s * interval '1 second', now(), "
                "(SELECT coalesce(array_agg(job_id), '{}') FROM opened), "
                "(SELECT coalesce(array_agg(run_id), '{}') FROM opened)) AS d "
                f"FULL JOIN (SELECT {_CLAIMED_COLUMNS} FROM claimed) AS c ON false"
            )
        else:
            final = f"SELECT {done_cols}"
        sql = "WITH " + ",\n".join(ctes) + "\n" + final
        for _ in range(5):
            try:
                with self._conn() as conn, conn.cursor(row_factory=tuple_row) as cursor:
                    rows = cursor.execute(sql, params).fetchall()
            except pg_errors.UniqueViolation:
                continue  # two claimers met on one named lock; the index refused one
            first = rows[0]
            if not claiming:
                return list(first[0]), list(first[1]), []
            assert worker is not None
            batch_row = next(row for row in rows if row[0] is None)
            done_ids, plan_ids, expires, at, job_ids, run_ids = batch_row[_CLAIMED_WIDTH:]
            run_of = dict(zip(job_ids, run_ids, strict=True))
            leases = [
                _claimed_lease(row, worker, expires, at, run_of[row[0]], ttl)
                for row in rows
                if row[0] is not None
            ]
            leases.sort(key=_claim_order)
            return list(done_ids), list(plan_ids), leases
        return [], [], []

    def _lost(self, conn: psycopg.Connection[Row], lease: Lease) -> LeaseLost:
        row = conn.execute(_LOST_SQL, (lease.job_id,)).fetchone()
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

    def renew(self, lease: Lease, ttl: float) -> Lease:
        with self._conn() as conn:
            row = conn.execute(
                """
                UPDATE jobs SET lease_expires_at = now() + %(ttl)s * interval '1 second',
                    rev = rev + 1, updated_at = now()
                WHERE id = %(id)s AND lease_epoch = %(epoch)s AND status = 'running'
                  AND NOT cancel_requested
                RETURNING lease_expires_at
                """,
                {"id": lease.job_id, "epoch": lease.epoch, "ttl": ttl},
            ).fetchone()
            if row is None:
                raise self._lost(conn, lease)
        return Lease(
            job_id=lease.job_id,
            epoch=lease.epoch,
            worker=lease.worker,
            expires_at=row["lease_expires_at"],
            attempt=lease.attempt,
            run_id=lease.run_id,
            ttl=ttl,
            job=lease.job,
        )

    def _fenced_lost(self, conn: psycopg.Connection[Row], lease: Lease) -> LeaseLost:
        lost = self._lost(conn, lease)
        return LeaseLost(lease.job_id, lease.epoch) if isinstance(lost, JobCancelled) else lost

    def complete(self, lease: Lease, result: Any, output: RunOutput | None) -> None:
        with self._conn() as conn:
            row = conn.execute(
                """
                WITH done AS (
                    UPDATE jobs SET status = 'succeeded', result = %(result)s, error = NULL,
                        finished_at = now(), updated_at = now(), lease_expires_at = NULL,
                        rev = rev + 1
                    WHERE id = %(id)s AND lease_epoch = %(epoch)s AND status = 'running'
                    RETURNING id
                ), closed AS (
                    UPDATE runs SET status = 'succeeded', finished_at = clock_timestamp(),
                        exit_code = %(exit_code)s, stdout = %(stdout)s, stderr = %(stderr)s
                    WHERE job_id IN (SELECT id FROM done) AND epoch = %(epoch)s
                      AND status = 'running'
                ), logged AS (
                    INSERT INTO events (job_id, kind, epoch, worker)
                    SELECT id, 'succeeded', %(epoch)s, %(worker)s FROM done
                )
                SELECT id FROM done
                """,
                {
                    "id": lease.job_id,
                    "epoch": lease.epoch,
                    "worker": lease.worker,
                    "result": Jsonb(result),
                    **_output_params(output),
                },
            ).fetchone()
            if row is None:
                raise self._fenced_lost(conn, lease)

    def fail(
        self, lease: Lease, error: str, retry_delay: float | None, output: RunOutput | None
    ) -> JobStatus:
        with self._conn() as conn:
            row = conn.execute(
                """
                WITH decided AS (
                    SELECT id,
                        CASE WHEN cancel_requested THEN 'cancelled'
                             WHEN %(retry)s AND attempts < max_attempts THEN 'queued'
                             ELSE 'failed' END AS next_status
                    FROM jobs
                    WHERE id = %(id)s AND lease_epoch = %(epoch)s AND status = 'running'
                    FOR UPDATE
                ), done AS (
                    UPDATE jobs SET status = decided.next_status,
                        run_at = CASE WHEN decided.next_status = 'queued'
                                      THEN now() + %(delay)s * interval '1 second'
                                      ELSE run_at END,
                        finished_at = CASE WHEN decided.next_status = 'queued' THEN NULL
                                           ELSE now() END,
                        error = %(error)s, lease_expires_at = NULL, updated_at = now(),
                        rev = rev + 1
                    FROM decided
                    WHERE jobs.id = decided.id AND jobs.lease_epoch = %(epoch)s
                      AND jobs.status = 'running'
                    RETURNING jobs.id, jobs.status, jobs.run_at
                ), closed AS (
                    UPDATE runs SET
                        status = CASE WHEN done.status = 'cancelled' THEN 'cancelled'
                                      ELSE 'failed' END,
                        finished_at = clock_timestamp(), error = %(error)s,
                        exit_code = %(exit_code)s,
                        stdout = %(stdout)s, stderr = %(stderr)s
                    FROM done
                    WHERE runs.job_id = done.id AND runs.epoch = %(epoch)s
                      AND runs.status = 'running'
                ), logged AS (
                    INSERT INTO events (job_id, kind, epoch, worker, data)
                    SELECT id,
                        CASE status WHEN 'queued' THEN 'retry_scheduled' ELSE status END,
                        %(epoch)s, %(worker)s,
                        CASE WHEN status = 'queued'
                             THEN jsonb_build_object('error', %(error)s::text, 'retry_in',
                                  round(extract(epoch FROM run_at - now())::numeric, 3))
                             ELSE jsonb_build_object('error', %(error)s::text) END
                    FROM done
                )
                SELECT status FROM done
                """,
                {
                    "id": lease.job_id,
                    "epoch": lease.epoch,
                    "worker": lease.worker,
                    "error": error,
                    "retry": retry_delay is not None,
                    "delay": retry_delay or 0.0,
                    **_output_params(output),
                },
            ).fetchone()
            if row is None:
                raise self._fenced_lost(conn, lease)
            return JobStatus(row["status"])

    def release(self, lease: Lease, reason: str) -> JobStatus:
        with self._conn() as conn:
            row = conn.execute(
                """
                WITH done AS (
                    UPDATE jobs SET
                        status = CASE WHEN cancel_requested THEN 'cancelled' ELSE 'queued' END,
                        finished_at = CASE WHEN cancel_requested THEN now() END,
                        attempts = attempts - 1, run_at = now(), lease_expires_at = NULL,
                        updated_at = now(), rev = rev + 1
                    WHERE id = %(id)s AND lease_epoch = %(epoch)s AND status = 'running'
                    RETURNING id, status
                ), closed AS (
                    UPDATE runs SET
                        status = CASE WHEN done.status = 'cancelled' THEN 'cancelled'
                                      ELSE 'released' END,
                        finished_at = clock_timestamp(), error = %(reason)s
                    FROM done
                    WHERE runs.job_id = done.id AND runs.epoch = %(epoch)s
                      AND runs.status = 'running'
                ), logged AS (
                    INSERT INTO events (job_id, kind, epoch, worker, data)
                    SELECT id, 'released', %(epoch)s, %(worker)s,
                        jsonb_build_object('reason', %(reason)s::text)
                    FROM done
                )
                SELECT status FROM done
                """,
                {
                    "id": lease.job_id,
                    "epoch": lease.epoch,
                    "worker": lease.worker,
                    "reason": reason,
                },
            ).fetchone()
            if row is None:
                raise self._fenced_lost(conn, lease)
            if self.notify and row["status"] == "queued":
                conn.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))
            return JobStatus(row["status"])

    def cancel_job(self, job_id: int) -> bool:
        with self._conn() as conn:
            row = conn.execute(
                """
                WITH done AS (
                    UPDATE jobs SET
                        status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
                        finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END,
                        cancel_requested = (status = 'running'),
                        updated_at = now(), rev = rev + 1
                    WHERE id = %(id)s
                      AND (status = 'queued' OR (status = 'running' AND NOT cancel_requested))
                    RETURNING id, status, lease_epoch
                ), logged AS (
                    INSERT INTO events (job_id, kind, epoch)
                    SELECT id, CASE WHEN status = 'cancelled' THEN 'cancelled'
                                    ELSE 'cancel_requested' END,
                           CASE WHEN status = 'running' THEN lease_epoch END
                    FROM done
                )
                SELECT id FROM done
                """,
                {"id": job_id},
            ).fetchone()
            if row is not None:
                return True
            if conn.execute("SELECT 1 FROM jobs WHERE id = %s", (job_id,)).fetchone() is None:
                raise JobNotFound(job_id)
            return False

    def retry_job(self, job_id: int) -> Job:
        try:
            with self._conn() as conn:
                row = conn.execute(
                    """
                    WITH done AS (
                        UPDATE jobs SET status = 'queued', attempts = 0, run_at = now(),
                            cancel_requested = false, error = NULL, result = NULL,
                            finished_at = NULL, updated_at = now(), rev = rev + 1
                        WHERE id = %(id)s AND status IN ('failed', 'cancelled')
                        RETURNING *
                    ), logged AS (
                        INSERT INTO events (job_id, kind) SELECT id, 'retried' FROM done
                    )
                    SELECT * FROM done
                    """,
                    {"id": job_id},
                ).fetchone()
                if row is None:
                    current = conn.execute(
                        "SELECT status FROM jobs WHERE id = %s", (job_id,)
                    ).fetchone()
                    if current is None:
                        raise JobNotFound(job_id)
                    raise InvalidTransition(f"job {job_id}", current["status"], "queued")
                if self.notify:
                    conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, row["queue"]))
                return _job(row)
        except pg_errors.UniqueViolation as exc:
            raise InvalidTransition(
                f"job {job_id} (another live job has its dedupe key)", "failed", "queued"
            ) from exc

    def reap_expired(self) -> list[tuple[int, JobStatus]]:
        rows = self._all(
            """
            WITH expired AS (
                SELECT id FROM jobs
                WHERE status = 'running' AND lease_expires_at < now()
                FOR UPDATE SKIP LOCKED
            ), done AS (
                UPDATE jobs SET
                    status = CASE WHEN cancel_requested THEN 'cancelled'
                                  WHEN attempts < max_attempts THEN 'queued'
                                  ELSE 'failed' END,
                    finished_at = CASE WHEN cancel_requested OR attempts >= max_attempts
                                       THEN now() END,
                    error = 'lease expired', lease_expires_at = NULL, run_at = now(),
                    updated_at = now(), rev = rev + 1
                FROM expired
                WHERE jobs.id = expired.id AND jobs.status = 'running'
                  AND jobs.lease_expires_at < now()
                RETURNING jobs.id, jobs.status, jobs.lease_epoch, jobs.worker
            ), closed AS (
                UPDATE runs SET status = 'expired', finished_at = clock_timestamp(),
                    error = 'lease expired'
                FROM done
                WHERE runs.job_id = done.id AND runs.epoch = done.lease_epoch
                  AND runs.status = 'running'
            ), logged AS (
                INSERT INTO events (job_id, kind, epoch, worker, data)
                SELECT id, 'lease_expired', lease_epoch, worker,
                    jsonb_build_object('now', status)
                FROM done
            )
            SELECT id, status FROM done
            """
        )
        if rows and self.notify:
            with self._conn() as conn:
                conn.execute("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))
        return [(row["id"], JobStatus(row["status"])) for row in rows]

    def update_if_match(
        self, collection: str, doc_id: int, expected_rev: int, patch: Mapping[str, Any]
    ) -> MatchResult:
        check_job_patch(collection, patch)
        params: dict[str, Any] = {
            f"p_{key}": Jsonb(value) if key == "payload" else value for key, value in patch.items()
        }
        assignments = ", ".join(f"{key} = %(p_{key})s" for key in patch)
        params.update({"id": doc_id, "rev": expected_rev, "fields": sorted(patch)})
        try:
            with self._conn() as conn:
                row = conn.execute(
                    f"""
                    WITH done AS (
                        UPDATE jobs SET {assignments}, rev = rev + 1, updated_at = now()
                        WHERE id = %(id)s AND rev = %(rev)s
                        RETURNING *
                    ), logged AS (
                        INSERT INTO events (job_id, kind, data)
                        SELECT id, 'updated', jsonb_build_object('fields', %(fields)s::text[])
                        FROM done
                    )
                    SELECT * FROM done
                    """,
                    params,
                ).fetchone()
                if row is None:
                    exists = conn.execute("SELECT 1 FROM jobs WHERE id = %s", (doc_id,)).fetchone()
                    return MatchResult("conflict" if exists else "not_found")
        except pg_errors.UniqueViolation:
            return MatchResult("conflict")
        job = _job(row)
        return MatchResult("ok", job, job.rev)

    def record_output(self, lease: Lease, output: RunOutput) -> None:
        with self._conn() as conn:
            row = conn.execute(
                "UPDATE runs SET stdout = %s, stderr = %s "
                "WHERE job_id = %s AND epoch = %s AND status = 'running' RETURNING id",
                (output.stdout, output.stderr, lease.job_id, lease.epoch),
            ).fetchone()
            if row is None:
                raise self._fenced_lost(conn, lease)

    def fenced_write(self, lease: Lease, key: str, value: Any) -> LedgerEntry:
        # One conditional statement. FOR SHARE makes a write that meets a concurrent claim
        # (or any ending write) wait for it and then re-check the fence against the row it
        # left: a plain snapshot read would accept a write from an epoch already replaced.
        with self._conn() as conn:
            row = conn.execute(
                """
                WITH fence AS (
                    SELECT id, lease_epoch FROM jobs
                    WHERE id = %(id)s AND lease_epoch = %(epoch)s AND status = 'running'
                    FOR SHARE
                )
                INSERT INTO ledger (job_id, key, epoch, value, worker, written_at)
                SELECT id, %(key)s, lease_epoch, %(value)s, %(worker)s, clock_timestamp()
                FROM fence
                ON CONFLICT (job_id, key, epoch) DO UPDATE SET value = excluded.value,
                    worker = excluded.worker, written_at = excluded.written_at
                RETURNING *
                """,
                {
                    "id": lease.job_id,
                    "epoch": lease.epoch,
                    "key": key,
                    "value": Jsonb(value),
                    "worker": lease.worker,
                },
            ).fetchone()
            if row is None:
                raise self._fenced_lost(conn, lease)
        return _ledger_entry(row)

    def ledger(self, job_id: int) -> list[LedgerEntry]:
        rows = self._all("SELECT * FROM ledger WHERE job_id = %s ORDER BY key, epoch", (job_id,))
        return [_ledger_entry(r) for r in rows]

    def worker_seen(
        self, name: str, host: str, pid: int, queues: Sequence[str], concurrency: int
    ) -> None:
        with self._conn() as conn:
            conn.execute(
                """
                INSERT INTO workers (name, host, pid, queues, concurrency)
                VALUES (%s, %s, %s, %s, %s)
                ON CONFLICT (name) DO UPDATE SET host = excluded.host, pid = excluded.pid,
                    queues = excluded.queues, concurrency = excluded.concurrency,
                    last_seen = now(), stopped_at = NULL,
                    started_at = CASE WHEN workers.stopped_at IS NOT NULL
                                      OR workers.pid <> excluded.pid
                                      THEN now() ELSE workers.started_at END
                """,
                (name, host, pid, Jsonb(list(queues)), concurrency),
            )

    def worker_stopped(self, name: str) -> None:
        with self._conn() as conn:
            conn.execute(
                "UPDATE workers SET stopped_at = now() WHERE name = %s AND stopped_at IS NULL",
                (name,),
            )

    def list_workers(self) -> list[WorkerInfo]:
        rows = self._all(
            """
            SELECT w.*, coalesce((SELECT array_agg(j.id ORDER BY j.id) FROM jobs j
                                  WHERE j.status = 'running' AND j.worker = w.name),
                                 '{}') AS running
            FROM workers w ORDER BY w.name
            """
        )
        return [
            WorkerInfo(
                name=r["name"],
                host=r["host"],
                pid=r["pid"],
                queues=tuple(r["queues"]),
                concurrency=r["concurrency"],
                started_at=r["started_at"],
                last_seen=r["last_seen"],
                stopped_at=r["stopped_at"],
                running=tuple(r["running"]),
            )
            for r in rows
        ]

    def wait_for_jobs(self, timeout: float) -> bool:
        """LISTEN on a dedicated connection: wakes within milliseconds of an enqueue."""
        listener = self._listener
        if listener is None or listener.closed:
            listener = psycopg.connect(self.url, autocommit=True)
            listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self._listener = listener
        try:
            for _ in listener.notifies(timeout=max(0.0, timeout), stop_after=1):
                return True
        except psycopg.OperationalError:
            listener.close()
            self._listener = None
        return False

    # -- reads ------------------------------------------------------------------------

    def get_job(self, job_id: int) -> Job:
        row = self._one("SELECT * FROM jobs WHERE id = %s", (job_id,))
        if row is None:
            raise JobNotFound(job_id)
        return _job(row)

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
        where, params = ["true"], []
        for column, value in (("status", status), ("queue", queue), ("engine", engine)):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(str(value))
        if label is not None:
            where.append("payload -> 'labels' ? %s")
            params.append(label)
        sql = f"SELECT * FROM jobs WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT %s OFFSET %s"
        return [_job(r) for r in self._all(sql, (*params, limit, offset))]

    def count_jobs(self) -> dict[tuple[str, str], int]:
        rows = self._all("SELECT queue, status, count(*) AS n FROM jobs GROUP BY queue, status")
        return {(r["queue"], r["status"]): r["n"] for r in rows}

    def runs(self, job_id: int) -> list[Run]:
        rows = self._all("SELECT * FROM runs WHERE job_id = %s ORDER BY epoch", (job_id,))
        return [
            Run(
                id=r["id"],
                job_id=r["job_id"],
                attempt=r["attempt"],
                epoch=r["epoch"],
                worker=r["worker"],
                status=RunStatus(r["status"]),
                started_at=r["started_at"],
                finished_at=r["finished_at"],
                error=r["error"],
                exit_code=r["exit_code"],
                stdout=r["stdout"],
                stderr=r["stderr"],
            )
            for r in rows
        ]

    def events(self, job_id: int | None, after_id: int, limit: int) -> list[Event]:
        if job_id is None:
            rows = self._all(
                "SELECT * FROM events WHERE id > %s ORDER BY id LIMIT %s", (after_id, limit)
            )
        else:
            rows = self._all(
                "SELECT * FROM events WHERE job_id = %s AND id > %s ORDER BY id LIMIT %s",
                (job_id, after_id, limit),
            )
        return [
            Event(
                id=r["id"],
                job_id=r["job_id"],
                kind=r["kind"],
                at=r["at"],
                epoch=r["epoch"],
                worker=r["worker"],
                data=r["data"],
                plan_id=r["plan_id"],
            )
            for r in rows
        ]

    def plan_dialect(self) -> PostgresDialect:
        return PostgresDialect(self, NOTIFY_CHANNEL)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self._pool.close()


def _lost_connection(exc: psycopg.OperationalError) -> bool:
    """The connection broke or the server went away: not a refusal by a statement."""
    if isinstance(exc, PoolTimeout):
        return True
    state = exc.sqlstate
    # No SQLSTATE: the socket broke; 08: connection exception; 57P: the server shut the
    # session down (pg_terminate_backend, a restart, a crash).
    return state is None or state.startswith(("08", "57P"))


@contextmanager
def _unavailable_on_disconnect() -> Iterator[None]:
    try:
        yield
    except psycopg.OperationalError as exc:
        if not _lost_connection(exc):
            raise
        raise StoreUnavailable(
            f"lost the connection to PostgreSQL ({type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'no detail'}); "
            "a write in flight may or may not have been committed"
        ) from exc


def _redact(url: str) -> str:
    """Never print a password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else f"{scheme}://{user}@{host}"
    return url


__all__ = ["NOTIFY_CHANNEL", "PostgresStore"]
