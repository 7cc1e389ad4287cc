"""The one JSON view of the domain values, for every surface.

The HTTP API answers with these dicts (their field names are its public contract, described
by the OpenAPI schemas in :mod:`agentfleet.web.schemas`), and the command line's ``--json``
prints the very same ones. Times are ISO 8601 strings (UTC), statuses their value.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Literal

from agentfleet.agents.usage import Usage
from agentfleet.models import Event, Job, JobStatus, Run, WorkerInfo
from agentfleet.plans.model import Plan, PlanStep
from agentfleet.schedules import Schedule

__all__ = [
    "WORKER_WINDOW",
    "WorkerView",
    "event_dict",
    "job_dict",
    "job_fields",
    "job_labels",
    "job_summary",
    "jsonable",
    "plan_dict",
    "queue_dicts",
    "run_dict",
    "worker_dict",
    "worker_view",
]

# A worker is alive while its last heartbeat is at most this many seconds old (on the
# store's clock); older, it is stale. The default of every surface that says so.
WORKER_WINDOW = 60.0

WorkerState = Literal["alive", "stale", "stopped"]


def jsonable(value: Any) -> Any:
    """Datetimes as ISO 8601 (UTC), enums as their value, tuples as lists."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# -- jobs, runs, events ---------------------------------------------------------------------


def job_summary(job: Job, width: int = 60) -> str:
    """One line saying what the job does: the prompt's first line, the command, the call."""
    payload = job.payload
    if job.engine == "shell":
        cmd = payload.get("cmd")
        text = shlex.join(str(c) for c in cmd) if isinstance(cmd, list) else str(cmd or "")
    elif job.engine == "python":
        text = f"{payload.get('func', '?')}(...)"
    elif job.engine == "approval":
        text = str(payload.get("message") or "approval")
    else:
        text = str(payload.get("prompt") or "")
    lines = text.strip().splitlines()
    first = lines[0] if lines else ""
    return first if len(first) <= width else first[: width - 1] + "…"


def job_labels(job: Job) -> list[str]:
    raw = job.payload.get("labels")
    return [str(x) for x in raw] if isinstance(raw, list) else []


MASK = "***"


def shown_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A payload as people and API clients see it: the names of its `env` variables, never
    their values (tokens and passwords live there)."""
    env = payload.get("env")
    if not isinstance(env, Mapping) or not env:
        return dict(payload)
    return {**payload, "env": dict.fromkeys(env, MASK)}


def job_fields(job: Job) -> dict[str, Any]:
    """Every field of a job as JSON, in the dataclass's order: the one list of a job's
    fields, which the public view below and the worker API's (remote/wire.py) extend."""
    return {field.name: _field_json(getattr(job, field.name)) for field in fields(Job)}


def _field_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


def job_dict(job: Job) -> dict[str, Any]:
    """The public view: the payload as shown (secrets hidden), with labels and a summary."""
    return {
        **job_fields(job),
        "payload": shown_payload(job.payload),
        "labels": job_labels(job),
        "summary": job_summary(job),
    }


def run_dict(run: Run, number: int, *, output: bool = False) -> dict[str, Any]:
    """A run; ``number`` is its 1-based place in the job's run list (as ``logs --run``).

    ``stdout`` and ``stderr`` are there only with ``output``.
    """
    data: dict[str, Any] = {
        "id": run.id,
        "number": number,
        "job_id": run.job_id,
        "attempt": run.attempt,
        "epoch": run.epoch,
        "worker": run.worker,
        "status": run.status.value,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration": None
        if run.finished_at is None
        else round((run.finished_at - run.started_at).total_seconds(), 3),
        "error": run.error,
        "exit_code": run.exit_code,
        "host": run.host,
        "pgid": run.pgid,
        "agent": run.agent,
    }
    if output:
        data["stdout"] = run.stdout
        data["stderr"] = run.stderr
    return data


def event_dict(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "job_id": event.job_id,
        "kind": event.kind,
        "at": _iso(event.at),
        "epoch": event.epoch,
        "worker": event.worker,
        "data": event.data,
        "plan_id": event.plan_id,
    }


# -- workers and queues ---------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerView:
    """A worker as seen at ``now`` on the store's clock: alive, stale or stopped."""

    info: WorkerInfo
    state: WorkerState
    seconds_since_seen: float

    @property
    def alive(self) -> bool:
        return self.state == "alive"


def worker_view(w: WorkerInfo, now: datetime, window: float = WORKER_WINDOW) -> WorkerView:
    state: WorkerState
    if w.stopped_at is not None:
        state = "stopped"
    elif now - w.last_seen <= timedelta(seconds=window):
        state = "alive"
    else:
        state = "stale"
    return WorkerView(w, state, max(0.0, (now - w.last_seen).total_seconds()))


def worker_dict(view: WorkerView) -> dict[str, Any]:
    w = view.info
    return {
        "name": w.name,
        "host": w.host,
        "pid": w.pid,
        "queues": list(w.queues),
        "concurrency": w.concurrency,
        "started_at": _iso(w.started_at),
        "last_seen": _iso(w.last_seen),
        "stopped_at": _iso(w.stopped_at),
        "running": list(w.running),
        "alive": view.alive,
        "state": view.state,
        "seconds_since_seen": round(view.seconds_since_seen, 3),
    }


def queue_dicts(counts: Mapping[tuple[str, str], int]) -> list[dict[str, Any]]:
    """Jobs per status in each queue (every status present), by queue name."""
    by_queue: dict[str, dict[str, int]] = {}
    for (queue, status), n in counts.items():
        by_queue.setdefault(queue, {s.value: 0 for s in JobStatus})[status] = n
    return [
        {"queue": q, "counts": c, "total": sum(c.values())} for q, c in sorted(by_queue.items())
    ]


# -- plans ------------------------------------------------------------------------------------


def _plan_step_dict(s: PlanStep) -> dict[str, Any]:
    return {
        "name": s.name,
        "job_id": s.job_id,
        "engine": s.engine,
        "status": s.status.value,
        "depends_on": list(s.depends_on),
        "attempts": s.attempts,
        "result": s.result,
        "error": s.error,
        "when": s.when,
        "trigger_rule": s.trigger_rule,
        "loop": s.loop,
        "limit": s.limit,
    }


def plan_usage_dict(plan: Plan, usage: Mapping[int, Usage]) -> dict[str, Any]:
    """What a plan's agents spent: in all, and per step (by name)."""
    total = sum(usage.values(), Usage())
    return {
        "total": total.as_dict(),
        "budget_usd": plan.budget_usd,
        "steps": {s.name: usage[s.job_id].as_dict() for s in plan.jobs if s.job_id in usage},
    }


def plan_dict(plan: Plan, usage: Mapping[int, Usage] | None = None) -> dict[str, Any]:
    """A plan; with ``usage`` (``Fleet.plan_usage``), what its agents spent too (lists
    leave it null: one sum per plan is a read per plan)."""
    found = {
        "id": plan.id,
        "name": plan.name,
        "status": plan.status.value,
        "mode": plan.mode.value,
        "max_parallel": plan.max_parallel,
        "checkpoint": plan.checkpoint,
        "pending": plan.pending,
        "pauses": plan.pauses,
        "checkpoint_context": plan.checkpoint_context,
        "completed_at": _iso(plan.completed_at),
        "pr_url": plan.pr_url,
        "metadata": plan.metadata,
        "rev": plan.rev,
        "created_at": _iso(plan.created_at),
        "updated_at": _iso(plan.updated_at),
        "budget_usd": plan.budget_usd,
        "jobs": [_plan_step_dict(s) for s in plan.jobs],
    }
    found["usage"] = None if usage is None else plan_usage_dict(plan, usage)
    return found


def schedule_dict(schedule: Schedule) -> dict[str, Any]:
    """A schedule with its next three runs (none while paused)."""
    return {
        "name": schedule.name,
        "cron": schedule.cron,
        "tz": schedule.tz,
        "kind": schedule.kind,
        "source": schedule.source,
        "paused": schedule.paused,
        "catch_up": schedule.catch_up,
        "overlap": schedule.overlap,
        "next_runs": [_iso(t) for t in schedule.upcoming(3)],
        "last_slot": _iso(schedule.last_slot),
        "last_outcome": schedule.last_outcome,
        "last_job_id": schedule.last_job_id,
        "last_plan_id": schedule.last_plan_id,
    }
