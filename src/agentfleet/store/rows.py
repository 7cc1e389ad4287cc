"""Rows as domain values, for either engine: one reader per table.

Jobs are read by position (JOB_COLUMNS): on the batch paths a lookup per field by name cost
more than the SQL's own work per job. Each dialect hands in its two converters, so a
SQLite row (JSON as text, time as epoch seconds) and a PostgreSQL row (decoded by the
driver) go through the same reader.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from agentfleet.models import (
    Event,
    Job,
    JobStatus,
    Lease,
    LedgerEntry,
    Run,
    RunStatus,
    WorkerInfo,
)

# Job's fields in declaration order; every query that reads jobs names these.
JOB_COLUMNS = (
    "id, queue, engine, payload, status, priority, lock, max_attempts, attempts, lease_epoch,"
    " worker, lease_expires_at, timeout, run_at, dedupe_key, rev, result, error,"
    " cancel_requested, created_at, updated_at, finished_at, plan_id, step"
)
JOB_STATUS_BY_NAME = {status.value: status for status in JobStatus}

JobReader = Callable[[Sequence[Any]], Job]


def sqlite_json(value: Any) -> Any:
    return None if value is None else {} if value == "{}" else json.loads(value)


def sqlite_time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def decoded(value: Any) -> Any:
    """The driver already decoded it (PostgreSQL's JSON and time types)."""
    return value


def job_reader(json_in: Callable[[Any], Any], time_in: Callable[[Any], Any]) -> JobReader:
    """A reader of JOB_COLUMNS rows, given how this engine returns JSON and times."""
    statuses = JOB_STATUS_BY_NAME

    def read(row: Sequence[Any]) -> Job:
        payload = json_in(row[3])
        return Job(
            row[0],
            row[1],
            row[2],
            {} if payload is None else payload,
            statuses[row[4]],
            row[5],
            row[6],
            row[7],
            row[8],
            row[9],
            row[10],
            time_in(row[11]),
            row[12],
            time_in(row[13]),
            row[14],
            row[15],
            json_in(row[16]),
            row[17],
            bool(row[18]),
            time_in(row[19]),
            time_in(row[20]),
            time_in(row[21]),
            row[22],
            row[23],
        )

    return read


def claimed_leases(jobs: Sequence[Job], run_ids: Mapping[int, int], ttl: float) -> list[Lease]:
    """The leases of freshly claimed jobs, in claim order (highest priority, then oldest)."""
    ordered = sorted(jobs, key=lambda job: (-job.priority, job.id))
    return [
        Lease(
            job.id,
            job.lease_epoch,
            job.worker,  # type: ignore[arg-type]
            job.lease_expires_at,  # type: ignore[arg-type]
            job.attempts,
            run_ids[job.id],
            ttl,
            job,
        )
        for job in ordered
    ]


class Readers:
    """Every table's reader for one engine, given how it returns JSON and times."""

    def __init__(self, json_in: Callable[[Any], Any], time_in: Callable[[Any], Any]) -> None:
        self.json_in = json_in
        self.time_in = time_in
        self.job = job_reader(json_in, time_in)

    def run(self, row: Mapping[str, Any]) -> Run:
        time_in = self.time_in
        return Run(
            id=row["id"],
            job_id=row["job_id"],
            attempt=row["attempt"],
            epoch=row["epoch"],
            worker=row["worker"],
            status=RunStatus(row["status"]),
            started_at=time_in(row["started_at"]),
            finished_at=time_in(row["finished_at"]),
            error=row["error"],
            exit_code=row["exit_code"],
            stdout=row["stdout"],
            stderr=row["stderr"],
            host=row["host"],
            pgid=row["pgid"],
            agent=self.json_in(row["agent"]),
        )

    def event(self, row: Mapping[str, Any]) -> Event:
        return Event(
            id=row["id"],
            job_id=row["job_id"],
            kind=row["kind"],
            at=self.time_in(row["at"]),
            epoch=row["epoch"],
            worker=row["worker"],
            data=self.json_in(row["data"]) or {},
            plan_id=row["plan_id"],
        )

    def ledger(self, row: Mapping[str, Any]) -> LedgerEntry:
        return LedgerEntry(
            job_id=row["job_id"],
            key=row["key"],
            epoch=row["epoch"],
            value=self.json_in(row["value"]),
            worker=row["worker"],
            written_at=self.time_in(row["written_at"]),
        )

    def worker(self, row: Mapping[str, Any], running: Sequence[int]) -> WorkerInfo:
        return WorkerInfo(
            name=row["name"],
            host=row["host"],
            pid=row["pid"],
            queues=tuple(self.json_in(row["queues"])),
            concurrency=row["concurrency"],
            started_at=self.time_in(row["started_at"]),
            last_seen=self.time_in(row["last_seen"]),
            stopped_at=self.time_in(row["stopped_at"]),
            running=tuple(running),
        )
