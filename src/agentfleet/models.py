"""The domain model: plain values and the status rules, with no I/O.

The rules here are stated once and mirrored by the stores as the WHERE clauses of their
conditional writes; nothing in this module decides a race.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from agentfleet.errors import InvalidTransition


class JobStatus(StrEnum):
    WAITING = "waiting"  # a plan step whose dependencies or plan are not ready yet
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # a plan step its condition or trigger rule left out: never run


TERMINAL_STATUSES = frozenset(
    {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.SKIPPED}
)


# Which status may follow which. `running -> queued` is a retry or an expired lease handed
# back; `failed|cancelled -> queued` is an explicit retry by a person.
# `waiting <-> queued` is a plan promoting a ready step, or holding it back while paused;
# `succeeded -> waiting` is a plan sending a finished step back for rework after a rejection.
JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.WAITING: frozenset(
        {JobStatus.QUEUED, JobStatus.SUCCEEDED, JobStatus.CANCELLED, JobStatus.SKIPPED}
    ),
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.WAITING}),
    JobStatus.RUNNING: frozenset(
        {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.QUEUED, JobStatus.CANCELLED}
    ),
    JobStatus.SUCCEEDED: frozenset({JobStatus.WAITING}),
    JobStatus.FAILED: frozenset({JobStatus.QUEUED, JobStatus.WAITING}),
    JobStatus.CANCELLED: frozenset({JobStatus.QUEUED, JobStatus.WAITING}),
    JobStatus.SKIPPED: frozenset({JobStatus.WAITING}),
}


def can_transition(current: JobStatus, wanted: JobStatus) -> bool:
    return wanted in JOB_TRANSITIONS[current]


def check_transition(current: JobStatus, wanted: JobStatus) -> None:
    if not can_transition(current, wanted):
        raise InvalidTransition("job", current.value, wanted.value)


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"  # the lease ran out and the job was taken back
    CANCELLED = "cancelled"
    RELEASED = "released"  # handed back unfinished by a worker that was stopping


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    queue: str
    engine: str
    payload: dict[str, Any]
    status: JobStatus
    priority: int
    lock: str | None
    max_attempts: int
    attempts: int
    lease_epoch: int
    worker: str | None
    lease_expires_at: datetime | None
    timeout: float | None
    run_at: datetime
    dedupe_key: str | None
    rev: int
    result: Any
    error: str | None
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    plan_id: int | None = None
    step: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True, slots=True)
class Lease:
    """Proof of a claim. Every write a worker makes about the job names this epoch."""

    job_id: int
    epoch: int
    worker: str
    expires_at: datetime
    attempt: int
    run_id: int
    ttl: float
    job: Job | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Run:
    """One attempt: opened by the claim that started it, closed by the write that ended it."""

    id: int
    job_id: int
    attempt: int
    epoch: int
    worker: str
    status: RunStatus
    started_at: datetime
    finished_at: datetime | None
    error: str | None
    exit_code: int | None
    stdout: str | None
    stderr: str | None
    host: str | None = None  # where its processes ran, once started
    pgid: int | None = None  # their process group on that host
    agent: dict[str, Any] | None = None  # what an agent CLI said of the run (see agents/)


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    job_id: int | None
    kind: str
    at: datetime
    epoch: int | None
    worker: str | None
    data: dict[str, Any]
    plan_id: int | None = None


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker's self-reported presence; `last_seen` is on the store's clock."""

    name: str
    host: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    started_at: datetime
    last_seen: datetime
    stopped_at: datetime | None
    running: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class NewJob:
    """A validated request to enqueue: what the Fleet hands the store."""

    engine: str
    payload: dict[str, Any]
    queue: str = "default"
    priority: int = 0
    lock: str | None = None
    max_attempts: int = 3
    timeout: float | None = None
    run_at: datetime | None = None
    dedupe_key: str | None = None


@dataclass(frozen=True, slots=True)
class RunOutput:
    """What a run printed, kept with the run record when it closes."""

    exit_code: int | None = None
    stdout: str | None = None
    stderr: str | None = None
    agent: dict[str, Any] | None = None  # the agent's summary so far: session, cost, tokens


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """A value a job wrote through the coordinator under its lease (a fenced write).

    The ledger keeps one entry per (job, key, epoch): a stale epoch's write is refused, so
    entries of one key only ever come from leases that held the job when they wrote.
    """

    job_id: int
    key: str
    epoch: int
    value: Any
    worker: str
    written_at: datetime


MatchStatus = Literal["ok", "conflict", "not_found"]


@dataclass(frozen=True, slots=True)
class MatchResult:
    """Answer of update_if_match: the document-store If-Match primitive."""

    status: MatchStatus
    document: Job | None = None
    rev: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def utc_from_timestamp(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)
