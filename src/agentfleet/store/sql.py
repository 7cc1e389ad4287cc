"""The shared SQL store: every job operation written once, over a dialect.

Each state change is one conditional write, or one transaction whose first write is
conditional: the statement names the status, epoch or rev it expects, and whether it
returned a row says whether it won. The guards and outcomes come from `store.rules`; the
dialect renders the few tokens that differ between engines. A backend extends this class
and overrides only what its engine forces (how it connects and locks, how idle workers are
woken, the batched hot path, bulk enqueue), saying why.
"""

from __future__ import annotations

import copy
import select
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Self

from agentfleet.errors import (
    InvalidTransition,
    JobCancelled,
    LeaseLost,
    SchemaTooNew,
    StoreUnavailable,
)
from agentfleet.models import (
    Job,
    JobStatus,
    Lease,
    LedgerEntry,
    NewJob,
    RunOutput,
)
from agentfleet.store import events, limits, rules
from agentfleet.store.dialect import Dialect, Tx, to_json
from agentfleet.store.ops import Notify, Operation, Query, Scope, Steps, perform, run
from agentfleet.store.reads import SqlReads
from agentfleet.store.rows import JOB_COLUMNS, Readers
from agentfleet.store.verbs import Verbs


def pause(seconds: float, interrupt: int | None) -> bool:
    """Sleep up to `seconds`; True as soon as the descriptor `interrupt` is readable (it is
    not read: its owner drains it)."""
    if interrupt is None:
        time.sleep(max(0.0, seconds))
        return False
    try:
        ready, _, _ = select.select([interrupt], [], [], max(0.0, seconds))
    except (OSError, ValueError):  # closed under us: nobody is waiting any more
        return True
    return bool(ready)


_INSERT_JOB = f"""
    INSERT INTO jobs (queue, engine, payload, status, priority, lock, max_attempts, timeout,
        run_at, dedupe_key, created_at, updated_at, limit_name)
    VALUES (:queue, :engine, {{json:payload}}, 'queued', :priority, :lock, :max_attempts,
        :timeout, coalesce(:run_at, {{now}}), :dedupe_key, {{now}}, {{now}}, :limit_name)
    ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL AND status IN {rules.LIVE}
    DO NOTHING
    RETURNING {JOB_COLUMNS}"""

_LIVE_HOLDER = f"SELECT {JOB_COLUMNS} FROM jobs WHERE dedupe_key = :key AND status IN {rules.LIVE}"

_CLAIM_ONE = f"""
    UPDATE jobs AS j SET {rules.CLAIM_SET}
    WHERE j.id = :id AND (({rules.READY_ONE}) OR ({rules.EXPIRED}))
    RETURNING {JOB_COLUMNS}"""

_FENCE = "id = :id AND lease_epoch = :epoch AND status = 'running'"

_CLOSE_RUN = """
    UPDATE runs SET status = :run_status, finished_at = {stamp}, error = :error,
        exit_code = :exit_code, stdout = :stdout, stderr = :stderr,
        agent = coalesce({json:agent}, agent)
    WHERE job_id = :id AND epoch = :epoch AND status = 'running'"""

_FAIL = f"""
    UPDATE jobs SET status = {rules.AFTER_FAIL},
        run_at = CASE WHEN ({rules.AFTER_FAIL}) = 'queued' THEN {{now+:delay}} ELSE run_at END,
        finished_at = {rules.finished_at(rules.AFTER_FAIL)},
        error = :error, lease_expires_at = NULL, updated_at = {{now}}, rev = rev + 1,
        prefer_host = (SELECT r.host FROM runs r
                       WHERE r.job_id = jobs.id AND r.epoch = jobs.lease_epoch)
    WHERE {_FENCE}
    RETURNING status, run_at, {{now}} AS decided_at"""

_RELEASE = f"""
    UPDATE jobs SET status = {rules.AFTER_RELEASE},
        finished_at = {rules.finished_at(rules.AFTER_RELEASE)},
        attempts = attempts - 1, run_at = {{now}}, lease_expires_at = NULL,
        updated_at = {{now}}, rev = rev + 1
    WHERE {_FENCE}
    RETURNING status, queue"""

# One conditional statement: the ledger row exists only while the lease's epoch still
# holds the running job. FOR SHARE (PostgreSQL) makes a write that meets a concurrent
# claim wait for it and re-check the fence against the row it left.
_FENCED_WRITE = f"""
    INSERT INTO ledger (job_id, key, epoch, value, worker, written_at)
    SELECT id, :key, lease_epoch, {{json:value}}, :worker, {{stamp}} FROM jobs
    WHERE {_FENCE} {{for_share}}
    ON CONFLICT (job_id, key, epoch) DO UPDATE SET value = excluded.value,
        worker = excluded.worker, written_at = excluded.written_at
    RETURNING *"""

# A batch's answer: the ids it completed, their plans, and the leases it claimed.
Batch = tuple[list[int], list[int], list[Lease]]

_FAIL_EVENT = {"queued": "retry_scheduled", "failed": "failed", "cancelled": "cancelled"}


class SqlStore(Verbs, SqlReads, ABC):
    """The Store protocol over one SQL database, through its dialect."""

    url: str

    def __init__(self, dialect: Dialect, *, url: str) -> None:
        self.url = url
        self.dialect = dialect
        self.read = Readers(dialect.json_in, dialect.time_in)

    def now(self) -> datetime:
        return self.dialect.now()

    def on(self, dialect: Dialect) -> Self:
        """This store with its statements sent through `dialect`, another way into the
        same database (the asyncio API's bridge onto its async connections)."""
        other = copy.copy(self)
        other.dialect = dialect
        return other

    def migrate(self, migrations: Sequence[tuple[int, str]], latest: int) -> None:
        """Apply the migrations this database lacks, in one transaction, in order. A
        database already at `latest` is only read, so a read-only one opens for reading."""
        table = self.dialect.schema_table
        if self._current_version() == latest:
            return
        with self.dialect.tx() as tx:
            self.before_migrate(tx)
            tx.script(f"CREATE TABLE IF NOT EXISTS {table} (version INTEGER NOT NULL)")
            row = tx.one(f"SELECT max(version) AS v FROM {table}")
            current = int((row or {}).get("v") or 0)
            if current > latest:
                raise SchemaTooNew(current, latest)
            for version, script in migrations:
                if version > current:
                    tx.script(script)
                    tx.q(f"INSERT INTO {table} (version) VALUES (:v)", {"v": version})
            self.before_commit_of_migration(tx)

    def before_migrate(self, tx: Tx) -> None:
        """What a backend must do before migrating (PostgreSQL: lock out other migrators)."""
        return None

    def before_commit_of_migration(self, tx: Tx) -> None:
        """What a backend checks before the migration commits (SQLite: foreign keys)."""
        return None

    def _current_version(self) -> int | None:
        """The schema version, read without writing; None when there is no schema yet."""
        try:
            return self.schema_version()
        except StoreUnavailable:
            raise
        except Exception:  # no schema table yet: the migration creates it
            return None

    def schema_version(self) -> int:
        with self.dialect.session() as tx:
            row = tx.one(f"SELECT max(version) AS v FROM {self.dialect.schema_table}")
        return int((row or {}).get("v") or 0)

    # -- what each backend does its own way --------------------------------------------

    @abstractmethod
    def batch(self, done: Sequence[tuple[Lease, Any]], claim: rules.Claim | None) -> Batch:
        """Complete `done` (each fenced by its own epoch) and then, if asked, claim: one
        transaction, in each backend's own statement shape (the hot path)."""

    def claim_next(
        self,
        worker: str,
        queues: Sequence[str] | None,
        limit: int,
        ttl: float,
        engines: Sequence[str] | None = None,
        host: str | None = None,
    ) -> list[Lease]:
        return self.batch((), rules.Claim(worker, queues, limit, ttl, engines, host))[2]

    def complete_many(self, done: Sequence[tuple[Lease, Any]]) -> tuple[list[int], list[int]]:
        if not done:
            return [], []
        completed, plans, _ = self.batch(done, None)
        return completed, plans

    def complete_and_claim(
        self,
        done: Sequence[tuple[Lease, Any]],
        worker: str,
        queues: Sequence[str] | None,
        limit: int,
        ttl: float,
        engines: Sequence[str] | None = None,
        host: str | None = None,
    ) -> Batch:
        return self.batch(done, rules.Claim(worker, queues, limit, ttl, engines, host))

    @abstractmethod
    def wait_for_jobs(self, timeout: float, interrupt: int | None = None) -> bool:
        """Each engine wakes idle workers its own way."""

    @abstractmethod
    def close(self) -> None: ...

    # -- enqueue and claim ----------------------------------------------------------

    def enqueue(self, jobs: Sequence[NewJob], conn: object | None = None) -> list[Job]:
        return perform(self.dialect, self.enqueue_op(jobs), conn)

    def enqueue_op(self, jobs: Sequence[NewJob]) -> Operation[list[Job]]:
        """Insert all jobs in one transaction (each, or the live job holding its dedupe
        key), log the new ones and wake their queues' workers at commit."""
        return Operation(self._enqueue_steps(jobs), Scope.TRANSACTION)

    def _enqueue_steps(self, jobs: Sequence[NewJob]) -> Steps[list[Job]]:
        out: list[Job] = []
        queues: set[str] = set()
        for new in jobs:
            job, inserted = yield from self._insert_job(new)
            if inserted:
                yield events.entry(job.id, "enqueued", data={"queue": job.queue})
                queues.add(job.queue)
            out.append(job)
        for queue in sorted(queues):
            yield Notify(queue)
        return out

    def enqueue_in(self, tx: Tx, new: NewJob) -> Job:
        """Enqueue inside a transaction of the caller's (a schedule's slot and its job are
        one write): the job, or the live one holding the same dedupe key."""
        return run(tx, self._enqueue_steps([new]))[0]

    def _insert_job(self, new: NewJob) -> Steps[tuple[Job, bool]]:
        """Insert, or find the live job holding the same dedupe key: (job, inserted)."""
        params = {
            "queue": new.queue,
            "engine": new.engine,
            "payload": to_json(new.payload),
            "priority": new.priority,
            "lock": new.lock,
            "max_attempts": new.max_attempts,
            "timeout": new.timeout,
            "run_at": new.run_at,
            "dedupe_key": new.dedupe_key,
            "limit_name": rules.limit_of(new.payload),
        }
        # The live holder is looked for first: an insert refused by the unique index has
        # already drawn an id, and a repeat would leave a gap before the next new job. The
        # index still decides a race (a holder committed between the two statements), and
        # the holder may finish between them, hence a second round.
        for _ in range(2):
            if new.dedupe_key is not None:
                rows = yield Query(_LIVE_HOLDER, {"key": new.dedupe_key}, tuples=True)
                if rows:
                    return self.read.job(rows[0]), False
            rows = yield Query(_INSERT_JOB, params, tuples=True)
            if rows:
                return self.read.job(rows[0]), True
        raise InvalidTransition("dedupe_key", "live", "finished")

    def claim(self, job_id: int, worker: str, ttl: float) -> Lease | None:
        try:
            with self.dialect.tx() as tx:
                tx.lock_limits()  # the job may name a limit: count its rivals under the lock
                rows = tx.tuples(_CLAIM_ONE, {"id": job_id, "worker": worker, "ttl": ttl})
                if not rows:
                    return None
                job = self.read.job(rows[0])
                self._close_expired_run(tx, job)
                run_id = self._open_run(tx, job)
                if rules.limit_of(job.payload) is not None:
                    limits.record_starts(tx, [job.id])  # its rate counts this start
        except Exception as exc:
            if self.dialect.is_unique_violation(exc):
                return None  # the named lock is held: the index said no
            raise
        return Lease(job.id, job.lease_epoch, worker, job.lease_expires_at, job.attempts,  # type: ignore[arg-type]
                     run_id, ttl, job)  # fmt: skip

    def _close_expired_run(self, tx: Tx, job: Job) -> None:
        """A take-over closes the run of the lease it replaced."""
        closed = tx.q(
            "UPDATE runs SET status = 'expired', finished_at = {stamp}, error = 'lease expired' "
            "WHERE job_id = :id AND status = 'running' AND epoch < :epoch RETURNING epoch",
            {"id": job.id, "epoch": job.lease_epoch},
        )
        for row in closed:
            events.record(tx, job.id, "lease_expired", epoch=row["epoch"])

    def _open_run(self, tx: Tx, job: Job) -> int:
        row = tx.one(
            "INSERT INTO runs (job_id, attempt, epoch, worker, status, started_at) "
            "VALUES (:id, :attempt, :epoch, :worker, 'running', {stamp}) RETURNING id",
            {"id": job.id, "attempt": job.attempts, "epoch": job.lease_epoch, "worker": job.worker},
        )
        assert row is not None
        events.record(
            tx,
            job.id,
            "claimed",
            epoch=job.lease_epoch,
            worker=job.worker,
            data={"attempt": job.attempts},
        )
        return int(row["id"])

    # -- a lease's writes -----------------------------------------------------------

    def _lost(self, tx: Tx, lease: Lease, *, cancelled_is_lost: bool = False) -> LeaseLost:
        """Why a fenced write found nothing: a cancel asked for, or the lease gone."""
        row = tx.one(
            "SELECT status, lease_epoch, cancel_requested FROM jobs WHERE id = :id",
            {"id": lease.job_id},
        )
        if row is None:
            return LeaseLost(lease.job_id, lease.epoch)
        held = row["status"] == "running" and row["lease_epoch"] == lease.epoch
        if held and row["cancel_requested"]:
            if cancelled_is_lost:
                return LeaseLost(lease.job_id, lease.epoch)
            return JobCancelled(lease.job_id, lease.epoch)
        return LeaseLost(
            lease.job_id, lease.epoch, current_epoch=row["lease_epoch"], status=row["status"]
        )

    def renew(self, lease: Lease, ttl: float) -> Lease:
        """One lease's renew is a heartbeat of one: the same fenced statement."""
        (answer,) = self.renew_many([lease], ttl)
        if isinstance(answer, LeaseLost):
            raise answer
        return answer

    def renew_many(self, leases: Sequence[Lease], ttl: float) -> list[Lease | LeaseLost]:
        """Renew every lease in one statement, each fenced by its own epoch: the renewed
        lease, or why it could not be (LeaseLost, or JobCancelled when a cancel is asked)."""
        if not leases:
            return []
        pairs = to_json([[lease.job_id, lease.epoch] for lease in leases])
        with self.dialect.statement() as tx:
            rows = tx.q(
                "UPDATE jobs SET lease_expires_at = {now+:ttl}, rev = rev + 1, "
                "updated_at = {now} WHERE {leases:pairs} AND status = 'running' "
                "AND NOT cancel_requested RETURNING id, lease_expires_at",
                {"pairs": pairs, "ttl": ttl},
            )
            renewed = {int(row["id"]): row["lease_expires_at"] for row in rows}
            lost = {lease.job_id: self._lost(tx, lease) for lease in leases
                    if lease.job_id not in renewed}  # fmt: skip
        answers: list[Lease | LeaseLost] = []
        for lease in leases:
            if lease.job_id in lost:
                answers.append(lost[lease.job_id])
                continue
            expires = self.dialect.time_in(renewed[lease.job_id])
            answers.append(Lease(lease.job_id, lease.epoch, lease.worker, expires,  # type: ignore[arg-type]
                                 lease.attempt, lease.run_id, ttl, lease.job))  # fmt: skip
        return answers

    def _close_run(
        self,
        tx: Tx,
        lease: Lease,
        run_status: str,
        error: str | None,
        output: RunOutput | None,
    ) -> None:
        out = output or RunOutput()
        tx.q(
            _CLOSE_RUN,
            {
                "id": lease.job_id,
                "epoch": lease.epoch,
                "run_status": run_status,
                "error": error,
                "exit_code": out.exit_code,
                "stdout": out.stdout,
                "stderr": out.stderr,
                "agent": None if out.agent is None else to_json(out.agent),
            },
        )

    def complete(self, lease: Lease, result: Any, output: RunOutput | None) -> None:
        with self.dialect.tx() as tx:
            # Once a cancel is recorded a completion is refused (JobCancelled): the job ends
            # cancelled, as the person who cancelled it was told.
            row = tx.one(
                "UPDATE jobs SET status = 'succeeded', result = {json:result}, error = NULL, "
                "finished_at = {now}, updated_at = {now}, lease_expires_at = NULL, "
                f"rev = rev + 1 WHERE {_FENCE} AND NOT cancel_requested RETURNING id",
                {"id": lease.job_id, "epoch": lease.epoch, "result": to_json(result)},
            )
            if row is None:
                raise self._lost(tx, lease)
            self._close_run(tx, lease, "succeeded", None, output)
            events.record(tx, lease.job_id, "succeeded", epoch=lease.epoch, worker=lease.worker)

    def fail(
        self, lease: Lease, error: str, retry_delay: float | None, output: RunOutput | None
    ) -> JobStatus:
        with self.dialect.tx() as tx:
            row = tx.one(
                _FAIL,
                {
                    "id": lease.job_id,
                    "epoch": lease.epoch,
                    "error": error,
                    "retry": retry_delay is not None,
                    "delay": retry_delay or 0.0,
                },
            )
            if row is None:
                raise self._lost(tx, lease, cancelled_is_lost=True)
            status = JobStatus(row["status"])
            run_status = "cancelled" if status is JobStatus.CANCELLED else "failed"
            self._close_run(tx, lease, run_status, error, output)
            data: dict[str, Any] = {"error": error}
            if status is JobStatus.QUEUED:
                run_at, decided = self.dialect.time_in(row["run_at"]), row["decided_at"]
                delay = run_at - self.dialect.time_in(decided)  # type: ignore[operator]
                data["retry_in"] = round(delay.total_seconds(), 3)
            events.record(
                tx,
                lease.job_id,
                _FAIL_EVENT[status],
                epoch=lease.epoch,
                worker=lease.worker,
                data=data,
            )
            return status

    def release(self, lease: Lease, reason: str) -> JobStatus:
        with self.dialect.tx() as tx:
            row = tx.one(_RELEASE, {"id": lease.job_id, "epoch": lease.epoch})
            if row is None:
                raise self._lost(tx, lease, cancelled_is_lost=True)
            status = JobStatus(row["status"])
            run_status = "cancelled" if status is JobStatus.CANCELLED else "released"
            self._close_run(tx, lease, run_status, reason, None)
            events.record(
                tx,
                lease.job_id,
                "released",
                epoch=lease.epoch,
                worker=lease.worker,
                data={"reason": reason},
            )
            if status is JobStatus.QUEUED:
                tx.notify(row["queue"])
            return status

    def record_output(self, lease: Lease, output: RunOutput) -> None:
        with self.dialect.statement() as tx:
            row = tx.one(
                "UPDATE runs SET stdout = :stdout, stderr = :stderr, "
                "agent = coalesce({json:agent}, agent) "
                "WHERE job_id = :id AND epoch = :epoch AND status = 'running' RETURNING id",
                {
                    "id": lease.job_id,
                    "epoch": lease.epoch,
                    "stdout": output.stdout,
                    "stderr": output.stderr,
                    "agent": None if output.agent is None else to_json(output.agent),
                },
            )
            if row is None:
                raise self._lost(tx, lease, cancelled_is_lost=True)

    def record_process(self, lease: Lease, host: str, pgid: int) -> None:
        with self.dialect.statement() as tx:
            row = tx.one(
                "UPDATE runs SET host = :host, pgid = :pgid "
                "WHERE job_id = :id AND epoch = :epoch AND status = 'running' RETURNING id",
                {"id": lease.job_id, "epoch": lease.epoch, "host": host, "pgid": pgid},
            )
            if row is None:
                raise self._lost(tx, lease, cancelled_is_lost=True)

    def fenced_write(self, lease: Lease, key: str, value: Any) -> LedgerEntry:
        with self.dialect.statement() as tx:
            row = tx.one(
                _FENCED_WRITE,
                {
                    "id": lease.job_id,
                    "epoch": lease.epoch,
                    "key": key,
                    "value": to_json(value),
                    "worker": lease.worker,
                },
            )
            if row is None:
                raise self._lost(tx, lease, cancelled_is_lost=True)
        return self.read.ledger(row)
