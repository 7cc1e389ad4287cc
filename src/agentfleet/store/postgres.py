"""PostgreSQL backend: for fleets that span machines.

The job operations are the shared SQL store's; this module adds only what PostgreSQL
brings or forces: a connection pool that reports a lost server as StoreUnavailable, the
server's `now()` as the one clock of the fleet, row locks (`FOR UPDATE SKIP LOCKED` so
racing claimers never wait on each other's rows), LISTEN/NOTIFY wake-ups, and the batched
hot path and bulk enqueue as single statements (data-modifying CTEs keep the job rows,
their runs and their events in one atomic step and one round trip).
"""

from __future__ import annotations

import json
import re
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any, cast

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import ConnectionPool, PoolTimeout

from agentfleet.errors import InvalidArgument, StoreUnavailable
from agentfleet.logs import redact_url
from agentfleet.models import Job, JobStatus, Lease, NewJob
from agentfleet.store import limits, rules
from agentfleet.store.dialect import Dialect, Params, Row, Syntax, Tx, bind_with, not_joinable
from agentfleet.store.ops import Operation, Query, Scope, Steps, perform
from agentfleet.store.postgres_connect import (
    DATABASE_OF,
    JOINED_SEARCH_PATH,
    NOTIFY,
    NOTIFY_CHANNEL,
    SET_SEARCH_PATH,
    check_open_transaction,
    checked_pool_size,
    listen,
    split_url_options,
    unavailable_on_disconnect,
    use_schema,
    wait_on,
)
from agentfleet.store.postgres_schema import LATEST_VERSION, MIGRATIONS, SCHEMA
from agentfleet.store.rows import JOB_COLUMNS, decoded
from agentfleet.store.sql import Batch, SqlStore, pause

_LIMITS_LOCK_KEY = 0x61666C696D6974  # "aflimit": serialises claims of jobs that name a limit
LOCK_PLAN = "SELECT id FROM plans WHERE id = %s FOR UPDATE"
LOCK_LIMITS = f"SELECT pg_advisory_xact_lock({_LIMITS_LOCK_KEY})"
DEFAULT_POOL_SIZE = 4
_MIGRATION_LOCK_KEY = 0x6166_0001  # "af" + 1: serialises concurrent migrators
_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")

_bind = bind_with(lambda value: value, list)


class PostgresTx(Tx):
    def __init__(self, dialect: PostgresDialect, conn: psycopg.Connection[Row]) -> None:
        self._dialect = dialect
        self.conn = conn

    def q(self, sql: str, params: Params | None = None) -> list[Row]:
        cursor = self.conn.execute(self._dialect.render(sql), _bind(params or {}))
        return list(cursor.fetchall()) if cursor.description else []

    def tuples(self, sql: str, params: Params | None = None) -> list[tuple[Any, ...]]:
        with self.conn.cursor(row_factory=tuple_row) as cursor:
            cursor.execute(self._dialect.render(sql), _bind(params or {}))
            return list(cursor.fetchall()) if cursor.description else []

    def script(self, text: str) -> None:
        self.conn.execute(text.encode())

    def lock_plan(self, plan_id: int) -> None:
        self.conn.execute(LOCK_PLAN, (plan_id,))

    def lock_limits(self) -> None:
        self.conn.execute(LOCK_LIMITS)

    def notify(self, queue: str = "") -> None:
        if self._dialect.notify:
            self.conn.execute(NOTIFY, (NOTIFY_CHANNEL, queue))


class CallersPostgresTx(PostgresTx):
    """A caller's connection, whatever its row factory: rows come back as dicts."""

    def q(self, sql: str, params: Params | None = None) -> list[Row]:
        with self.conn.cursor(row_factory=dict_row) as cursor:
            cursor.execute(self._dialect.render(sql), _bind(params or {}))
            return list(cursor.fetchall()) if cursor.description else []


class PostgresDialect(Dialect):
    """PostgreSQL's pool, clock and syntax."""

    syntax = Syntax(
        now="now()",
        stamp="clock_timestamp()",
        row_locks=True,
        shifted="(now() {sign} :{param} * interval '1 second')",
        # A rate's window ends when the claim's statement starts, after the limits lock was
        # taken, not at its transaction's start: measured from there it would see starts
        # made while it waited for the lock as older than they are. statement_timestamp(),
        # not clock_timestamp(): it is stable within the statement, so the planner keeps
        # the claim's plan (a volatile call in it halved the worker's drain rate).
        ago="(statement_timestamp() - {column} * interval '1 second')",
        member_of="{column} = ANY(:{param})",
        json="CAST(:{param} AS jsonb)",
        has_label="payload -> 'labels' ? :{param}",
        leases="(id, lease_epoch) IN (SELECT (p ->> 0)::bigint, (p ->> 1)::bigint "
        "FROM jsonb_array_elements(CAST(:{param} AS jsonb)) AS p)",
    )
    json_in = time_in = staticmethod(decoded)  # the driver decodes JSON and times
    name, schema_table = "postgresql", "schema_version"

    def __init__(
        self, conninfo: str, *, pool_size: int, notify: bool, application_name: str
    ) -> None:
        self.conninfo = conninfo
        self.notify = notify
        self.pool_size = pool_size
        # One connection in all: once the handle first waits for jobs it also LISTENs, and
        # waits for notifications between the queries of its one user (a worker's loop), so
        # the handle needs no second connection.
        self.shared_listen = pool_size == 1
        self.listening: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()
        self._database: tuple[Any, ...] | None = None  # the fleet's, read when first joined
        # The URL's own application_name, when it has one, wins (libpq's fallback rule).
        self.connect_kwargs: dict[str, Any] = {"fallback_application_name": application_name}
        try:
            # Probe once so that a wrong URL fails at once instead of after the pool's retries.
            psycopg.connect(conninfo, connect_timeout=10, **self.connect_kwargs).close()
            self.pool = ConnectionPool(
                conninfo,
                min_size=1,
                max_size=pool_size,
                kwargs={"autocommit": True, "row_factory": dict_row, **self.connect_kwargs},
                # A SET, not the `options` startup parameter, which PgBouncer refuses.
                configure=use_schema,
                open=False,
                name="agentfleet",
            )
            self.pool.open(wait=True, timeout=15)
        except (psycopg.Error, Exception) as exc:
            raise StoreUnavailable(
                f"cannot connect to PostgreSQL at {redact_url(conninfo)}: {redact_url(str(exc))}"
            ) from exc

    def placeholder(self, text: str) -> str:
        return _PARAM.sub(r"%(\1)s", text.replace("%", "%%"))

    def is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, pg_errors.UniqueViolation)

    def now(self) -> datetime:
        return perform(self, now_op())

    # -- connections and transactions -------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[PostgresTx]:
        with unavailable_on_disconnect(), self.pool.connection() as conn:
            yield PostgresTx(self, cast("psycopg.Connection[Row]", conn))

    def statement(self) -> AbstractContextManager[PostgresTx]:
        return self.session()  # one statement is its own transaction: one round trip

    @contextmanager
    def tx(self) -> Iterator[PostgresTx]:
        with unavailable_on_disconnect(), self.pool.connection() as conn, conn.transaction():
            yield PostgresTx(self, cast("psycopg.Connection[Row]", conn))

    @contextmanager
    def joined(self, conn: object) -> Iterator[PostgresTx]:
        """The caller's transaction on its own psycopg connection, in a savepoint. The
        store's schema is on the search path for these statements only: the caller's
        comes back before the savepoint is released (or with its rollback). NOTIFY in the
        caller's transaction is sent by the server when, and only if, it commits."""
        caller, search_path = self._joinable(conn)
        with unavailable_on_disconnect(), caller.transaction():
            caller.execute(SET_SEARCH_PATH, (JOINED_SEARCH_PATH,))
            yield CallersPostgresTx(self, caller)
            caller.execute(SET_SEARCH_PATH, (search_path,))

    def _joinable(self, conn: object) -> tuple[psycopg.Connection[Row], str]:
        """`conn` and its search path, if the store can write in its transaction; else why
        not, in words. On a connection that is not in autocommit this read opens its
        transaction, as any statement of the caller's would."""
        if not isinstance(conn, psycopg.Connection):
            raise not_joinable(conn, "a psycopg.Connection to the fleet's database")
        check_open_transaction(conn)
        with unavailable_on_disconnect(), conn.cursor(row_factory=tuple_row) as cursor:
            row = cursor.execute(DATABASE_OF).fetchone()
        assert row is not None
        return cast("psycopg.Connection[Row]", conn), self.search_path_on_fleets(row)

    def search_path_on_fleets(
        self,
        row: tuple[Any, ...],
        session: Callable[[], AbstractContextManager[Tx]] | None = None,
    ) -> str:
        """The caller's search path, from its connection's `DATABASE_OF` row, if that is
        the fleet's own database; else why not (the fleet's is read once, by `session`)."""
        name, oid, started, search_path = row
        ours = self._fleet_database(session=session)
        if (oid, started) != ours[1:3]:
            ours = self._fleet_database(again=True, session=session)
        if (oid, started) != ours[1:3]:
            where = "another server's database" if name == ours[0] else "database"
            raise InvalidArgument(
                f"conn is connected to {where} {name!r}, not to the fleet's database "
                f"{ours[0]!r}: a job can only be written in a transaction on the fleet's "
                "own database"
            )
        return str(search_path)

    def _fleet_database(
        self,
        *,
        again: bool = False,
        session: Callable[[], AbstractContextManager[Tx]] | None = None,
    ) -> tuple[Any, ...]:
        if self._database is None or again:
            with (session or self.session)() as tx:
                self._database = tx.tuples(DATABASE_OF)[0]
        return self._database


# The batch's completing part: fenced per row by (id, epoch, status).
_COMPLETE_BATCH = """
    input AS (
        SELECT * FROM unnest(:d_ids::bigint[], :d_epochs::bigint[], :d_results::text[])
            AS t (id, epoch, result)
    ), done AS (
        UPDATE jobs SET status = 'succeeded', result = input.result::jsonb, error = NULL,
            finished_at = now(), updated_at = now(), lease_expires_at = NULL, rev = jobs.rev + 1
        FROM input
        WHERE jobs.id = input.id AND jobs.lease_epoch = input.epoch AND jobs.status = 'running'
          AND NOT jobs.cancel_requested
        RETURNING jobs.id, jobs.lease_epoch, jobs.worker, jobs.plan_id
    ), closed AS (
        UPDATE runs SET status = 'succeeded', finished_at = clock_timestamp()
        FROM done
        WHERE runs.job_id = done.id AND runs.epoch = done.lease_epoch AND runs.status = 'running'
    ), done_logged AS (
        INSERT INTO events (job_id, kind, epoch, worker)
        SELECT id, 'succeeded', lease_epoch, worker FROM done
    )"""

# The batch's claiming part: picks with SKIP LOCKED, opens the runs, logs the claims. Run
# stamps use clock_timestamp(), taken after the snapshot, so they order like the commits.
_CLAIM_BATCH = f"""
    picked AS (
        SELECT j.id FROM jobs j
        WHERE {{ready}}
        ORDER BY j.priority DESC, j.id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE jobs SET {rules.CLAIM_SET}
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

# What a claimed row returns: the columns that differ per job. Status, worker, expiry and
# updated_at are the same for every row of one claim and come once, with the batch.
_CLAIMED_COLUMNS = (
    "id, queue, engine, payload, priority, lock, max_attempts, attempts, lease_epoch,"
    " timeout, run_at, dedupe_key, rev, result, error, cancel_requested, created_at,"
    " finished_at, plan_id, step"
)
_CLAIMED_WIDTH = _CLAIMED_COLUMNS.count(",") + 1

_ENQUEUE_BULK = f"""
    WITH ins AS (
        INSERT INTO jobs (queue, engine, payload, status, priority, lock, max_attempts,
            timeout, run_at, limit_name)
        SELECT queue, engine, payload::jsonb, 'queued', priority, lock, max_attempts, timeout,
            coalesce(run_at, now()), limit_name
        FROM unnest(:queue::text[], :engine::text[], :payload::text[], :priority::int[],
                    :lock::text[], :max_attempts::int[], :timeout::float8[],
                    :run_at::timestamptz[], :limit_name::text[])
            WITH ORDINALITY AS t (queue, engine, payload, priority, lock, max_attempts,
                                  timeout, run_at, limit_name, ord)
        ORDER BY ord
        RETURNING {JOB_COLUMNS}
    ), logged AS (
        INSERT INTO events (job_id, kind, data)
        SELECT id, 'enqueued', jsonb_build_object('queue', queue) FROM ins
    ), woken AS (  -- idle workers are told at commit, as by the shared path's NOTIFY
        SELECT count(pg_notify(:channel, queue)) AS n
        FROM (SELECT DISTINCT queue FROM ins WHERE :notify) AS queues
    )
    SELECT ins.* FROM ins, woken ORDER BY id"""


class PostgresStore(SqlStore):
    """The shared SQL store over a psycopg 3 connection pool."""

    dialect: PostgresDialect

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        notify: bool = True,
        application_name: str = "agentfleet",
    ) -> None:
        conninfo, url_pool_size = split_url_options(url)
        dialect = PostgresDialect(
            conninfo,
            pool_size=checked_pool_size(pool_size if url_pool_size is None else url_pool_size),
            notify=notify,
            application_name=application_name,
        )
        super().__init__(dialect, url=url)
        self._listener: psycopg.Connection[Any] | None = None
        self.migrate(MIGRATIONS, LATEST_VERSION)

    @property
    def notify(self) -> bool:
        return self.dialect.notify

    def before_migrate(self, tx: Tx) -> None:
        tx.q("SELECT pg_advisory_xact_lock(:key)", {"key": _MIGRATION_LOCK_KEY})
        tx.script(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")

    # -- bulk enqueue -----------------------------------------------------------------
    # Differs by necessity: unnest and a data-modifying CTE insert a batch without dedupe
    # keys, and log it, in one statement; dedupe keys need the shared per-job path.

    def enqueue_op(self, jobs: Sequence[NewJob]) -> Operation[list[Job]]:
        # Differs by necessity: jobs without dedupe keys (one or many) go in one statement
        # (its own transaction: one round trip), which only data-modifying CTEs allow.
        if not jobs or any(job.dedupe_key is not None for job in jobs):
            return super().enqueue_op(jobs)
        return Operation(self._enqueue_bulk(jobs), Scope.STATEMENT)

    def _enqueue_bulk(self, jobs: Sequence[NewJob]) -> Steps[list[Job]]:
        columns: dict[str, list[Any]] = {
            "queue": [j.queue for j in jobs],
            "engine": [j.engine for j in jobs],
            "payload": [json.dumps(j.payload) for j in jobs],
            "priority": [j.priority for j in jobs],
            "lock": [j.lock for j in jobs],
            "max_attempts": [j.max_attempts for j in jobs],
            "timeout": [j.timeout for j in jobs],
            "run_at": [j.run_at for j in jobs],
            "limit_name": [rules.limit_of(j.payload) for j in jobs],
        }
        params = {**columns, "channel": NOTIFY_CHANNEL, "notify": self.dialect.notify}
        rows = yield Query(_ENQUEUE_BULK, params, tuples=True)
        return [self.read.job(row) for row in rows]

    # -- the batched hot path ---------------------------------------------------------
    # Differs by necessity: completing a batch and claiming the next is one statement, one
    # round trip and one commit, which only data-modifying CTEs allow.

    def batch(self, done: Sequence[tuple[Lease, Any]], claim: rules.Claim | None) -> Batch:
        """Complete a batch and claim the next in one statement. Both parts see one
        snapshot, so a lock freed by this batch's completions is only taken by a later
        claim. Jobs that name a fleet-wide limit are claimed after it, under a lock."""
        for _ in range(5):
            try:
                with self.dialect.statement() as tx:
                    completed, plans, leases, limited = self._batch_in(tx, done, claim, False)
            except pg_errors.UniqueViolation:
                continue  # two claimers met on one named lock; the index refused one
            if claim is not None and limited and len(leases) < claim.limit:
                more = replace(claim, limit=claim.limit - len(leases))
                leases = sorted([*leases, *self._claim_limited(more)], key=_claim_order)
            return completed, plans, leases
        # Claimers kept meeting on named locks: complete alone, so that no completion is
        # ever dropped for the sake of the claim (that can wait for the next batch).
        return self.batch(done, None) if done else ([], [], [])

    def _claim_limited(self, claim: rules.Claim) -> list[Lease]:
        """Differs by necessity: under READ COMMITTED two claimers would both count the
        same running jobs of a limit. This claim first takes one advisory lock, and its
        statement's snapshot then sees every limited claim committed before it."""
        for _ in range(5):
            try:
                with self.dialect.tx() as tx:
                    tx.lock_limits()
                    leases = self._batch_in(tx, (), claim, True)[2]
                    limits.record_starts(tx, [lease.job_id for lease in leases])
                    return leases
            except pg_errors.UniqueViolation:
                continue
        return []

    def _batch_in(
        self,
        tx: PostgresTx,
        done: Sequence[tuple[Lease, Any]],
        claim: rules.Claim | None,
        limited: bool,
    ) -> tuple[list[int], list[int], list[Lease], bool]:
        """One batch statement: (completed ids, their plans, leases, whether jobs naming a
        limit wait). `limited` claims only those jobs, else only the others."""
        claiming = claim is not None and claim.limit > 0
        ready, params = claim.ready(limited) if claim is not None else ("", {})
        ctes: list[str] = []
        if done:
            params["d_ids"] = [lease.job_id for lease, _ in done]
            params["d_epochs"] = [lease.epoch for lease, _ in done]
            params["d_results"] = [
                "null" if result is None else json.dumps(result) for _, result in done
            ]
            ctes.append(_COMPLETE_BATCH)
        if claiming:
            ctes.append(_CLAIM_BATCH.replace("{ready}", ready))
        done_cols = (
            "(SELECT coalesce(array_agg(id), '{}') FROM done), "
            "(SELECT coalesce(array_agg(DISTINCT plan_id) FILTER (WHERE plan_id IS NOT NULL),"
            " '{}') FROM done)"
            if done
            else "'{}'::bigint[], '{}'::bigint[]"
        )
        if not claiming:
            rows = tx.tuples("WITH " + ",\n".join(ctes) + f"\nSELECT {done_cols}", params)
            return list(rows[0][0]), list(rows[0][1]), [], False
        assert claim is not None
        # One row carries the batch's own values (completed ids, the claim's expiry and
        # time, the runs it opened, whether limited jobs wait); every other row is one
        # claimed job's columns. Repeating the completed ids on every row made a batch's
        # result grow with its square.
        final = (
            f"SELECT c.*, d.* FROM (SELECT {done_cols}, {{now+:ttl}}, now(), "
            "(SELECT coalesce(array_agg(job_id), '{}') FROM opened), "
            "(SELECT coalesce(array_agg(run_id), '{}') FROM opened), "
            f"{rules.LIMITED_WAITING}) AS d "
            f"FULL JOIN (SELECT {_CLAIMED_COLUMNS} FROM claimed) AS c ON false"
        )
        rows = tx.tuples("WITH " + ",\n".join(ctes) + "\n" + final, params)
        batch_row = next(row for row in rows if row[0] is None)
        done_ids, plan_ids, expires, at, job_ids, run_ids, waiting = batch_row[_CLAIMED_WIDTH:]
        run_of = dict(zip(job_ids, run_ids, strict=True))
        leases = [
            _claimed_lease(row, claim.worker, expires, at, run_of[row[0]], claim.ttl)
            for row in rows
            if row[0] is not None
        ]
        leases.sort(key=_claim_order)
        return list(done_ids), list(plan_ids), leases, bool(waiting) and not limited

    # -- wake-ups ---------------------------------------------------------------------

    def wait_for_jobs(self, timeout: float, interrupt: int | None = None) -> bool:
        """LISTEN/NOTIFY: wakes within milliseconds of an enqueue.

        With a pool of one connection that connection LISTENs (from the first wait on) and
        the wait holds it: the handle's one user waits between its queries. Otherwise a
        dedicated connection LISTENs. Notifications that arrive during other queries are
        kept by the driver and wake the next wait at once. A handle that never waits never
        listens, so nothing piles up for it."""
        try:
            if self.dialect.shared_listen:
                with self.dialect.pool.connection(timeout=max(timeout, 0.01)) as conn:
                    if conn not in self.dialect.listening:  # new, or replaced by the pool
                        listen(conn)
                        self.dialect.listening.add(conn)
                    return wait_on(conn, timeout, interrupt)
            listener = self._listener
            if listener is None or listener.closed:
                listener = psycopg.connect(
                    self.dialect.conninfo, autocommit=True, **self.dialect.connect_kwargs
                )
                listen(listener)
                self._listener = listener
            try:
                return wait_on(listener, timeout, interrupt)
            except psycopg.OperationalError:
                listener.close()
                self._listener = None
                raise
        except (psycopg.OperationalError, PoolTimeout):
            pause(timeout, interrupt)  # the server is away: the caller's polls go on
            return False

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self.dialect.pool.close()


def now_op() -> Operation[datetime]:
    """The server's clock, the one clock of the fleet."""
    return Operation(_now(), Scope.READ)


def _now() -> Steps[datetime]:
    rows = yield Query("SELECT now() AS now")
    value: datetime = rows[0]["now"]
    return value


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


__all__ = ["DEFAULT_POOL_SIZE", "NOTIFY_CHANNEL", "PostgresStore", "split_url_options"]
