"""Plain JSON-ready dicts of the domain values, for ``--json`` output and other surfaces."""

from __future__ import annotations

import dataclasses
import shlex
from datetime import datetime
from enum import Enum
from typing import Any

from agentfleet.models import Event, Job, Run, WorkerInfo

__all__ = ["event_dict", "job_dict", "job_summary", "jsonable", "run_dict", "worker_dict"]


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


def _fields(value: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        f.name: jsonable(getattr(value, f.name))
        for f in dataclasses.fields(value)
        if f.name not in skip
    }


def job_summary(job: Job, width: int = 60) -> str:
    """One line saying what the job does: the prompt's first line, the command, the call."""
    payload = job.payload
    if job.engine == "shell":
        cmd = payload.get("cmd")
        text = shlex.join(cmd) if isinstance(cmd, list) else str(cmd or "")
    elif job.engine == "python":
        text = f"{payload.get('func', '?')}(...)"
    elif job.engine == "approval":
        text = str(payload.get("message") or "approval")
    else:
        text = str(payload.get("prompt") or "")
    lines = text.strip().splitlines()
    first = lines[0] if lines else ""
    return first if len(first) <= width else first[: width - 1] + "…"


def job_dict(job: Job) -> dict[str, Any]:
    data = _fields(job)
    data["labels"] = list(job.payload.get("labels") or [])
    data["summary"] = job_summary(job)
    return data


def run_dict(run: Run, number: int | None = None, *, output: bool = False) -> dict[str, Any]:
    """A run; ``number`` is its 1-based position in the job's run list (as ``logs --run``)."""
    data = _fields(run, () if output else ("stdout", "stderr"))
    if number is not None:
        data = {"number": number, **data}
    if run.finished_at is not None:
        data["duration"] = round((run.finished_at - run.started_at).total_seconds(), 3)
    return data


def event_dict(event: Event) -> dict[str, Any]:
    return _fields(event)


def worker_dict(worker: WorkerInfo) -> dict[str, Any]:
    return _fields(worker)
