"""The verbs people and the fleet's housekeeping use: cancel, retry, reap, If-Match
patches, the single flight of the reconciler, and workers' presence. Written once over the
dialect, like the rest of the shared SQL store; each is one conditional write, or one
transaction whose first write is conditional."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from agentfleet.errors import InvalidArgument, InvalidTransition, JobNotFound
from agentfleet.models import Job, JobStatus, MatchResult
from agentfleet.store import events, rules
from agentfleet.store.base import check_job_patch
from agentfleet.store.dialect import Dialect, to_json
from agentfleet.store.ops import Notify, Operation, Query, Scope, Steps, perform
from agentfleet.store.rows import JOB_COLUMNS, Readers

_REAP = f"""
    UPDATE jobs SET status = {rules.AFTER_EXPIRY},
        finished_at = {rules.finished_at(rules.AFTER_EXPIRY)},
        error = 'lease expired', lease_expires_at = NULL, run_at = {{now}},
        updated_at = {{now}}, rev = rev + 1
    WHERE id IN (SELECT id FROM jobs WHERE {rules.EXPIRE.guard()} AND lease_expires_at < {{now}}
                 {{skip_locked}})
      AND {rules.EXPIRE.guard()} AND lease_expires_at < {{now}}
    RETURNING id, status, lease_epoch, worker, queue"""

_RETRY = f"""
    UPDATE jobs AS j SET status = 'queued', attempts = 0, run_at = {{now}},
        cancel_requested = FALSE, error = NULL, result = NULL, finished_at = NULL,
        updated_at = {{now}}, rev = rev + 1
    WHERE j.id = :id AND {rules.RETRYABLE}
    RETURNING {JOB_COLUMNS}"""

_WORKER_SEEN = """
    INSERT INTO workers (name, host, pid, queues, concurrency, started_at, last_seen)
    VALUES (:name, :host, :pid, {json:queues}, :concurrency, {now}, {now})
    ON CONFLICT (name) DO UPDATE SET host = excluded.host, pid = excluded.pid,
        queues = excluded.queues, concurrency = excluded.concurrency,
        last_seen = excluded.last_seen, stopped_at = NULL,
        started_at = CASE WHEN workers.stopped_at IS NOT NULL OR workers.pid <> excluded.pid
                          THEN excluded.started_at ELSE workers.started_at END"""

_TAKE_SINGLE_FLIGHT = """
    INSERT INTO single_flight (name, holder, expires_at) VALUES (:name, :holder, {now+:ttl})
    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
    WHERE single_flight.expires_at < {now}
    RETURNING holder"""
# How long a single-flight holder may go before others may take the name over.
SINGLE_FLIGHT_TTL = 120.0

_WHY_NOT_RETRIED = {
    "queued": "is queued: it has not run yet, so there is nothing to retry",
    "waiting": "is waiting for its plan: it has not run yet, so there is nothing to retry",
    "running": "is running: it can be retried once it has ended (cancel it to stop it)",
    "succeeded": "succeeded: only a failed or cancelled job can be retried",
}
_NOT_NULL_FIELDS = frozenset({"priority", "queue", "payload", "run_at", "max_attempts"})


class Verbs:
    """The shared SQL store's operator and housekeeping verbs."""

    dialect: Dialect
    read: Readers

    def cancel_job(self, job_id: int) -> bool:
        return perform(self.dialect, self.cancel_job_op(job_id))

    def cancel_job_op(self, job_id: int) -> Operation[bool]:
        return Operation(self._cancel_job(job_id), Scope.TRANSACTION)

    def _cancel_job(self, job_id: int) -> Steps[bool]:
        rows = yield Query(
            "UPDATE jobs SET status = 'cancelled', finished_at = {now}, updated_at = {now}, "
            f"rev = rev + 1 WHERE id = :id AND {rules.CANCEL.guard()} RETURNING id",
            {"id": job_id},
        )
        if rows:
            yield events.entry(job_id, "cancelled")
            return True
        rows = yield Query(
            "UPDATE jobs SET cancel_requested = TRUE, updated_at = {now}, rev = rev + 1 "
            f"WHERE id = :id AND {rules.ASK_TO_STOP.guard()} AND NOT cancel_requested "
            "RETURNING lease_epoch",
            {"id": job_id},
        )
        if rows:
            yield events.entry(job_id, "cancel_requested", epoch=rows[0]["lease_epoch"])
            return True
        if not (yield Query("SELECT 1 AS one FROM jobs WHERE id = :id", {"id": job_id})):
            raise JobNotFound(job_id)
        return False

    def retry_job(self, job_id: int) -> Job:
        return perform(self.dialect, self.retry_job_op(job_id))

    def retry_job_op(self, job_id: int) -> Operation[Job]:
        return Operation(self._retry_job(job_id), Scope.TRANSACTION)

    def _retry_job(self, job_id: int) -> Steps[Job]:
        try:
            rows = yield Query(_RETRY, {"id": job_id}, tuples=True)
        except Exception as exc:
            if not self.dialect.is_unique_violation(exc):
                raise
            raise InvalidTransition(
                f"job {job_id} (another live job has its dedupe key)", "failed", "queued"
            ) from exc
        if not rows:
            raise (yield from self._not_retryable(job_id))
        job = self.read.job(rows[0])
        yield events.entry(job_id, "retried")
        yield Notify(job.queue)
        return job

    def _not_retryable(self, job_id: int) -> Steps[Exception]:
        """Why a retry found nothing to do, in people's words."""
        rows = yield Query(
            "SELECT j.status, j.plan_id, p.status AS plan_status FROM jobs j "
            "LEFT JOIN plans p ON p.id = j.plan_id WHERE j.id = :id",
            {"id": job_id},
        )
        if not rows:
            return JobNotFound(job_id)
        row = rows[0]
        status, plan = row["status"], row["plan_id"]
        if status in ("failed", "cancelled"):
            plan_status = row["plan_status"]
            message = f"job {job_id} is a step of plan {plan}, which is {plan_status}: " + (
                f"resume the plan to rerun its failed steps (agentfleet plan resume {plan})"
                if plan_status in ("failed", "paused")
                else "the steps of a plan that has ended do not run again"
            )
        else:
            message = f"job {job_id} {_WHY_NOT_RETRIED.get(status, f'is {status}')}"
        return InvalidTransition(f"job {job_id}", status, "queued", message)

    def reap_expired(self) -> list[tuple[int, JobStatus]]:
        with self.dialect.tx() as tx:
            rows = tx.q(_REAP)
            for row in rows:
                tx.q(
                    "UPDATE runs SET status = 'expired', finished_at = {stamp}, "
                    "error = 'lease expired' "
                    "WHERE job_id = :id AND epoch = :epoch AND status = 'running'",
                    {"id": row["id"], "epoch": row["lease_epoch"]},
                )
                events.record(
                    tx,
                    row["id"],
                    "lease_expired",
                    epoch=row["lease_epoch"],
                    worker=row["worker"],
                    data={"now": row["status"]},
                )
            for queue in sorted({r["queue"] for r in rows if r["status"] == "queued"}):
                tx.notify(queue)
        return [(row["id"], JobStatus(row["status"])) for row in rows]

    def update_if_match(
        self, collection: str, doc_id: int, expected_rev: int, patch: Mapping[str, Any]
    ) -> MatchResult:
        check_job_patch(collection, patch)
        nulls = sorted(key for key, value in patch.items() if value is None)
        if set(nulls) & _NOT_NULL_FIELDS:
            raise InvalidArgument(f"{', '.join(nulls)} cannot be null")
        params = {
            f"p_{key}": to_json(value) if key == "payload" else value
            for key, value in patch.items()
        }
        assignments = ", ".join(
            f"{key} = {{json:p_{key}}}" if key == "payload" else f"{key} = :p_{key}"
            for key in patch
        )
        # What a running job's lease stands on cannot change under it: moving its lock
        # would let a second job of the old lock start beside it.
        frozen = sorted(set(patch) & rules.FIXED_WHILE_RUNNING)
        not_running = " AND status <> 'running'" if frozen else ""
        try:
            with self.dialect.tx() as tx:
                rows = tx.tuples(
                    f"UPDATE jobs SET {assignments}, rev = rev + 1, updated_at = {{now}} "
                    f"WHERE id = :id AND rev = :rev{not_running} RETURNING {JOB_COLUMNS}",
                    {**params, "id": doc_id, "rev": expected_rev},
                )
                if not rows:
                    row = tx.one("SELECT status, rev FROM jobs WHERE id = :id", {"id": doc_id})
                    if row is None:
                        return MatchResult("not_found")
                    if frozen and row["status"] == "running" and row["rev"] == expected_rev:
                        raise InvalidTransition(
                            f"job {doc_id}",
                            "running",
                            "running",
                            f"job {doc_id} is running: its {' and '.join(frozen)} cannot change "
                            "until it ends (a job's lock, queue and attempts hold its lease)",
                        )
                    return MatchResult("conflict")
                job = self.read.job(rows[0])
                events.record(tx, doc_id, "updated", data={"fields": sorted(patch)})
        except Exception as exc:
            if self.dialect.is_unique_violation(exc):
                return MatchResult("conflict")
            raise
        return MatchResult("ok", job, job.rev)

    # -- single flight ----------------------------------------------------------------

    @contextmanager
    def single_flight(self, name: str, ttl: float = SINGLE_FLIGHT_TTL) -> Iterator[bool]:
        """Hold `name` alone across the fleet while the block runs; yields whether we do.

        A claim like a job's: one conditional write wins a free or lapsed name, and the lease
        lapses after `ttl` if the holder dies, so a crash never leaves the name taken.
        """
        holder = uuid.uuid4().hex
        with self.dialect.statement() as tx:
            won = tx.one(_TAKE_SINGLE_FLIGHT, {"name": name, "holder": holder, "ttl": ttl})
        if won is None:
            yield False
            return
        try:
            yield True
        finally:
            with self.dialect.statement() as tx:
                tx.q(
                    "DELETE FROM single_flight WHERE name = :name AND holder = :holder",
                    {"name": name, "holder": holder},
                )

    # -- workers ----------------------------------------------------------------------

    def worker_seen(
        self, name: str, host: str, pid: int, queues: Sequence[str], concurrency: int
    ) -> None:
        with self.dialect.statement() as tx:
            tx.q(
                _WORKER_SEEN,
                {
                    "name": name,
                    "host": host,
                    "pid": pid,
                    "queues": to_json(list(queues)),
                    "concurrency": concurrency,
                },
            )

    def worker_stopped(self, name: str) -> None:
        with self.dialect.statement() as tx:
            tx.q(
                "UPDATE workers SET stopped_at = {now} WHERE name = :name AND stopped_at IS NULL",
                {"name": name},
            )
