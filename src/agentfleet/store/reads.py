"""What the shared SQL store reads: jobs, runs, events, the ledger and the workers.

Plain reads on one connection, outside any transaction; nothing here decides a race.
"""

from __future__ import annotations

from typing import Any

from agentfleet.errors import JobNotFound
from agentfleet.models import Event, Job, JobStatus, LedgerEntry, Run, WorkerInfo
from agentfleet.store.dialect import Dialect, Tx
from agentfleet.store.ops import Operation, Query, Scope, Steps, perform
from agentfleet.store.rows import JOB_COLUMNS, Readers


def run_agents(
    tx: Tx, dialect: Dialect, *, job_id: int | None = None, plan_id: int | None = None
) -> list[tuple[int, int, Any]]:
    """What agents said of their runs (``Run.agent``) as (run id, job id, agent): one job's
    runs, or every run of a plan's jobs; runs with nothing said are left out."""
    where = "r.job_id = :job" if plan_id is None else "j.plan_id = :plan"
    rows = tx.q(
        "SELECT r.id, r.job_id, r.agent FROM runs r JOIN jobs j ON j.id = r.job_id "
        f"WHERE {where} AND r.agent IS NOT NULL ORDER BY r.id",
        {"job": job_id, "plan": plan_id},
    )
    return [(r["id"], r["job_id"], dialect.json_in(r["agent"])) for r in rows]


class SqlReads:
    """The Store protocol's reads, over a dialect."""

    dialect: Dialect
    read: Readers

    def list_workers(self) -> list[WorkerInfo]:
        with self.dialect.session() as tx:
            rows = tx.q("SELECT * FROM workers ORDER BY name")
            held = tx.q("SELECT worker, id FROM jobs WHERE status = 'running' ORDER BY id")
        running: dict[str, list[int]] = {}
        for h in held:
            running.setdefault(h["worker"], []).append(h["id"])
        return [self.read.worker(r, running.get(r["name"], ())) for r in rows]

    def get_job(self, job_id: int) -> Job:
        return perform(self.dialect, self.get_job_op(job_id))

    def get_job_op(self, job_id: int) -> Operation[Job]:
        return Operation(self._get_job(job_id), Scope.READ)

    def _get_job(self, job_id: int) -> Steps[Job]:
        rows = yield Query(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = :id", {"id": job_id}, True)
        if not rows:
            raise JobNotFound(job_id)
        return self.read.job(rows[0])

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
        return perform(
            self.dialect,
            self.list_jobs_op(
                status=status, queue=queue, engine=engine, label=label, limit=limit, offset=offset
            ),
        )

    def list_jobs_op(
        self,
        *,
        status: JobStatus | None,
        queue: str | None,
        engine: str | None,
        label: str | None,
        limit: int,
        offset: int,
    ) -> Operation[list[Job]]:
        where = ["1 = 1"]
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        for column, value in (("status", status), ("queue", queue), ("engine", engine)):
            if value is not None:
                where.append(f"{column} = :{column}")
                params[column] = str(value)
        if label is not None:
            where.append("{has_label:label}")
            params["label"] = label
        sql = (
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE {' AND '.join(where)} "
            "ORDER BY id DESC LIMIT :limit OFFSET :offset"
        )
        return Operation(self._read_jobs(Query(sql, params, tuples=True)), Scope.READ)

    def _read_jobs(self, query: Query) -> Steps[list[Job]]:
        rows = yield query
        return [self.read.job(r) for r in rows]

    def count_jobs(self) -> dict[tuple[str, str], int]:
        with self.dialect.session() as tx:
            rows = tx.q("SELECT queue, status, count(*) AS n FROM jobs GROUP BY queue, status")
        return {(r["queue"], r["status"]): r["n"] for r in rows}

    def runs(self, job_id: int) -> list[Run]:
        return perform(self.dialect, self.runs_op(job_id))

    def runs_op(self, job_id: int) -> Operation[list[Run]]:
        return Operation(self._runs(job_id), Scope.READ)

    def _runs(self, job_id: int) -> Steps[list[Run]]:
        rows = yield Query("SELECT * FROM runs WHERE job_id = :id ORDER BY epoch", {"id": job_id})
        return [self.read.run(r) for r in rows]

    def run_agents(
        self, *, job_id: int | None = None, plan_id: int | None = None
    ) -> list[tuple[int, int, Any]]:
        with self.dialect.session() as tx:
            return run_agents(tx, self.dialect, job_id=job_id, plan_id=plan_id)

    def events(self, job_id: int | None, after_id: int, limit: int) -> list[Event]:
        return perform(self.dialect, self.events_op(job_id, after_id, limit))

    def events_op(self, job_id: int | None, after_id: int, limit: int) -> Operation[list[Event]]:
        return Operation(self._events(job_id, after_id, limit), Scope.READ)

    def _events(self, job_id: int | None, after_id: int, limit: int) -> Steps[list[Event]]:
        where = "id > :after" if job_id is None else "job_id = :job AND id > :after"
        rows = yield Query(
            f"SELECT * FROM events WHERE {where} ORDER BY id LIMIT :limit",
            {"job": job_id, "after": after_id, "limit": limit},
        )
        return [self.read.event(r) for r in rows]

    def ledger(self, job_id: int) -> list[LedgerEntry]:
        with self.dialect.session() as tx:
            rows = tx.q(
                "SELECT * FROM ledger WHERE job_id = :id ORDER BY key, epoch", {"id": job_id}
            )
        return [self.read.ledger(r) for r in rows]
