"""The Store protocol: the small set of atomic primitives every backend implements.

Each method that changes state is one conditional write (or one transaction whose first
write is conditional): the statement names the state it expects and reports whether it
won. The Fleet layer validates arguments and computes policy (backoff); stores only decide
races, in the database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from agentfleet.errors import InvalidArgument, LeaseLost
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
    WorkerInfo,
)
from agentfleet.store.dialect import Dialect, Tx

# Fields of a job that update_if_match may change; status, epochs and leases only move
# through the lifecycle verbs.
JOB_PATCHABLE_FIELDS = frozenset(
    {"priority", "queue", "payload", "run_at", "max_attempts", "timeout", "lock"}
)


def check_job_patch(collection: str, patch: Mapping[str, Any]) -> None:
    """The one rule for update_if_match: only jobs, only the patchable fields."""
    if collection != "jobs":
        raise InvalidArgument(f"unknown collection {collection!r}; expected 'jobs'")
    bad = set(patch) - JOB_PATCHABLE_FIELDS
    if bad or not patch:
        raise InvalidArgument(
            f"cannot patch {sorted(bad) or 'nothing'}; patchable: {sorted(JOB_PATCHABLE_FIELDS)}"
        )


@runtime_checkable
class Store(Protocol):
    """Atomic primitives over jobs, runs and events."""

    url: str

    @property
    def dialect(self) -> Dialect:
        """The public way into the store's database, for the layers above it."""
        ...

    def schema_version(self) -> int: ...

    def now(self) -> datetime:
        """The store's clock: the only clock leases and schedules are judged by."""
        ...

    def enqueue(self, jobs: Sequence[NewJob], conn: object | None = None) -> list[Job]:
        """Insert all jobs in one transaction; a live job sharing a dedupe_key is returned.
        With `conn`, the transaction is the caller's, open on that connection (see
        `Dialect.joined`): the jobs exist if and only if the caller commits."""
        ...

    def enqueue_in(self, tx: Tx, new: NewJob) -> Job:
        """Insert one job inside the caller's transaction (a schedule's slot and its job)."""
        ...

    def claim(self, job_id: int, worker: str, ttl: float) -> Lease | None: ...

    def claim_next(
        self,
        worker: str,
        queues: Sequence[str] | None,
        limit: int,
        ttl: float,
        engines: Sequence[str] | None = None,
        host: str | None = None,
    ) -> list[Lease]:
        """Claim up to `limit` ready jobs of these queues and engines (None: any), for a
        worker on `host` (a retried job waits a while for the host it failed on)."""
        ...

    def complete_many(self, done: Sequence[tuple[Lease, Any]]) -> tuple[list[int], list[int]]:
        """Complete each (lease, result) still owning its job; (completed ids, their plans)."""
        ...

    def complete_and_claim(
        self,
        done: Sequence[tuple[Lease, Any]],
        worker: str,
        queues: Sequence[str] | None,
        limit: int,
        ttl: float,
        engines: Sequence[str] | None = None,
        host: str | None = None,
    ) -> tuple[list[int], list[int], list[Lease]]:
        """complete_many and claim_next in one transaction: (completed, their plans, leases)."""
        ...

    def renew(self, lease: Lease, ttl: float) -> Lease: ...

    def renew_many(self, leases: Sequence[Lease], ttl: float) -> list[Lease | LeaseLost]:
        """Renew many leases in one statement: each renewed, or why not (a heartbeat)."""
        ...

    def complete(self, lease: Lease, result: Any, output: RunOutput | None) -> None: ...

    def fail(
        self, lease: Lease, error: str, retry_delay: float | None, output: RunOutput | None
    ) -> JobStatus:
        """Close the attempt; re-queue after retry_delay when given and attempts remain.
        Returns the status this write left: a plan step's plan may move it on at once."""
        ...

    def release(self, lease: Lease, reason: str) -> JobStatus:
        """Hand a job back to the queue at once, giving back its attempt (graceful stop).
        Returns the status this write left, as `fail` does."""
        ...

    def cancel_job(self, job_id: int) -> bool: ...

    def retry_job(self, job_id: int) -> Job: ...

    def reap_expired(self) -> list[tuple[int, JobStatus]]: ...

    def get_job(self, job_id: int) -> Job: ...

    def list_jobs(
        self,
        *,
        status: JobStatus | None,
        queue: str | None,
        engine: str | None,
        label: str | None,
        limit: int,
        offset: int,
    ) -> list[Job]: ...

    def count_jobs(self) -> dict[tuple[str, str], int]:
        """Jobs per (queue, status)."""
        ...

    def runs(self, job_id: int) -> list[Run]: ...

    def run_agents(
        self, *, job_id: int | None = None, plan_id: int | None = None
    ) -> list[tuple[int, int, Any]]:
        """(run id, job id, ``Run.agent``) of one job's runs or of all of a plan's runs."""
        ...

    def events(self, job_id: int | None, after_id: int, limit: int) -> list[Event]: ...

    def update_if_match(
        self, collection: str, doc_id: int, expected_rev: int, patch: Mapping[str, Any]
    ) -> MatchResult: ...

    def record_output(self, lease: Lease, output: RunOutput) -> None:
        """Store a running attempt's output so far; fenced like every lease write."""
        ...

    def record_process(self, lease: Lease, host: str, pgid: int) -> None:
        """Note on the attempt's run where its processes run; fenced like every lease write."""
        ...

    def fenced_write(self, lease: Lease, key: str, value: Any) -> LedgerEntry:
        """Write `value` under `key` in the job's ledger, in one statement that also checks
        that the lease's epoch still holds the running job; raises LeaseLost otherwise."""
        ...

    def ledger(self, job_id: int) -> list[LedgerEntry]:
        """The job's ledger entries, by key then epoch."""
        ...

    def single_flight(self, name: str, ttl: float = ...) -> AbstractContextManager[bool]:
        """Hold `name` alone across the fleet while the block runs; yields whether we do."""
        ...

    def worker_seen(
        self, name: str, host: str, pid: int, queues: Sequence[str], concurrency: int
    ) -> None:
        """Register or refresh a worker's presence."""
        ...

    def worker_stopped(self, name: str) -> None: ...

    def list_workers(self) -> list[WorkerInfo]: ...

    def wait_for_jobs(self, timeout: float, interrupt: int | None = None) -> bool:
        """Block until new work may be ready (True), or the timeout passes or the file
        descriptor `interrupt` becomes readable (False; the descriptor is not read).

        A change made between two calls wakes the next one: nothing is lost while the
        caller was busy. The first call of a handle (and thread, on SQLite) starts watching.
        """
        ...

    def close(self) -> None: ...
