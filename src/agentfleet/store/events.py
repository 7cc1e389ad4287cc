"""The event log: one row per thing that happened to a job or a plan, in the writer's
transaction, so the log and the state it describes commit together."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentfleet.store.dialect import Tx, to_json
from agentfleet.store.ops import Query

_INSERT = (
    "INSERT INTO events (job_id, plan_id, kind, at, epoch, worker, data) "
    "VALUES (:job_id, :plan_id, :kind, {now}, :epoch, :worker, {json:data})"
)


def entry(
    job_id: int | None,
    kind: str,
    *,
    epoch: int | None = None,
    worker: str | None = None,
    data: Mapping[str, Any] | None = None,
    plan_id: int | None = None,
) -> Query:
    """The statement that records one event, for an operation to yield."""
    return Query(
        _INSERT,
        {
            "job_id": job_id,
            "plan_id": plan_id,
            "kind": kind,
            "epoch": epoch,
            "worker": worker,
            "data": to_json(dict(data or {})),
        },
    )


def record(
    tx: Tx,
    job_id: int | None,
    kind: str,
    *,
    epoch: int | None = None,
    worker: str | None = None,
    data: Mapping[str, Any] | None = None,
    plan_id: int | None = None,
) -> None:
    event = entry(job_id, kind, epoch=epoch, worker=worker, data=data, plan_id=plan_id)
    tx.q(event.sql, event.params)
