"""Plain JSON views of the domain values, shared by the API and the dashboard."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agentfleet.models import Event, Job, Run, WorkerInfo
from agentfleet.plans.model import Plan, PlanStep


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def job(j: Job) -> dict[str, Any]:
    return {
        "id": j.id,
        "queue": j.queue,
        "engine": j.engine,
        "status": j.status.value,
        "payload": j.payload,
        "priority": j.priority,
        "lock": j.lock,
        "max_attempts": j.max_attempts,
        "attempts": j.attempts,
        "lease_epoch": j.lease_epoch,
        "worker": j.worker,
        "lease_expires_at": iso(j.lease_expires_at),
        "timeout": j.timeout,
        "run_at": iso(j.run_at),
        "dedupe_key": j.dedupe_key,
        "rev": j.rev,
        "result": j.result,
        "error": j.error,
        "cancel_requested": j.cancel_requested,
        "created_at": iso(j.created_at),
        "updated_at": iso(j.updated_at),
        "finished_at": iso(j.finished_at),
        "labels": labels(j),
        "plan_id": j.plan_id,
        "step": j.step,
    }


def labels(j: Job) -> list[str]:
    raw = j.payload.get("labels")
    return [str(x) for x in raw] if isinstance(raw, list) else []


def run(r: Run, *, output: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": r.id,
        "job_id": r.job_id,
        "attempt": r.attempt,
        "epoch": r.epoch,
        "worker": r.worker,
        "status": r.status.value,
        "started_at": iso(r.started_at),
        "finished_at": iso(r.finished_at),
        "error": r.error,
        "exit_code": r.exit_code,
    }
    if output:
        out["stdout"] = r.stdout
        out["stderr"] = r.stderr
    return out


def event(e: Event) -> dict[str, Any]:
    return {
        "id": e.id,
        "job_id": e.job_id,
        "kind": e.kind,
        "at": iso(e.at),
        "epoch": e.epoch,
        "worker": e.worker,
        "data": e.data,
        "plan_id": e.plan_id,
    }


@dataclass(frozen=True)
class WorkerView:
    """A worker as the server sees it: alive is judged on the store's clock."""

    info: WorkerInfo
    alive: bool
    state: str  # alive | stale | stopped
    seconds_since_seen: float


def worker_view(w: WorkerInfo, now: datetime, window: float) -> WorkerView:
    age = max(0.0, (now - w.last_seen).total_seconds())
    if w.stopped_at is not None:
        state = "stopped"
    elif now - w.last_seen <= timedelta(seconds=window):
        state = "alive"
    else:
        state = "stale"
    return WorkerView(w, state == "alive", state, age)


def worker(v: WorkerView) -> dict[str, Any]:
    w = v.info
    return {
        "name": w.name,
        "host": w.host,
        "pid": w.pid,
        "queues": list(w.queues),
        "concurrency": w.concurrency,
        "started_at": iso(w.started_at),
        "last_seen": iso(w.last_seen),
        "stopped_at": iso(w.stopped_at),
        "running": list(w.running),
        "alive": v.alive,
        "state": v.state,
        "seconds_since_seen": round(v.seconds_since_seen, 3),
    }


def queues(counts: Mapping[tuple[str, str], int]) -> list[dict[str, Any]]:
    from agentfleet.models import JobStatus

    by_queue: dict[str, dict[str, int]] = {}
    for (queue, status), n in counts.items():
        by_queue.setdefault(queue, {s.value: 0 for s in JobStatus})[status] = n
    return [
        {"queue": q, "counts": c, "total": sum(c.values())} for q, c in sorted(by_queue.items())
    ]


def plan_step(s: PlanStep) -> dict[str, Any]:
    return {
        "name": s.name,
        "job_id": s.job_id,
        "engine": s.engine,
        "status": s.status.value,
        "depends_on": list(s.depends_on),
        "attempts": s.attempts,
        "result": s.result,
        "error": s.error,
    }


def plan(p: Plan) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "status": p.status.value,
        "mode": p.mode.value,
        "max_parallel": p.max_parallel,
        "checkpoint": p.checkpoint,
        "checkpoint_context": p.checkpoint_context,
        "completed_at": iso(p.completed_at),
        "pr_url": p.pr_url,
        "metadata": p.metadata,
        "rev": p.rev,
        "created_at": iso(p.created_at),
        "updated_at": iso(p.updated_at),
        "jobs": [plan_step(s) for s in p.jobs],
    }
