"""The JSON API under /api: each route is a thin call of one Fleet operation."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from agentfleet import logs
from agentfleet.fleet import Fleet
from agentfleet.models import Event, Job, JobStatus
from agentfleet.serialize import (
    event_dict,
    job_dict,
    queue_dicts,
    run_dict,
    schedule_dict,
    worker_dict,
    worker_view,
)
from agentfleet.web.auth import Principal, read_access, write_access
from agentfleet.web.errors import ApiError
from agentfleet.web.schemas import (
    CancelResult,
    EnqueueRequest,
    ErrorOut,
    EventList,
    JobOut,
    JobPage,
    LogList,
    QueueList,
    RetryResult,
    RunList,
    ScheduleList,
    WorkerList,
)

log = logging.getLogger("agentfleet.web")

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No token, or a wrong one (code unauthorized)"},
    404: {"model": ErrorOut, "description": "No such job (code not_found)"},
    422: {"model": ErrorOut, "description": "Bad input (code invalid)"},
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    409: {"model": ErrorOut, "description": "Not allowed in the current state (code conflict)"},
    413: {"model": ErrorOut, "description": "Body over the size limit (code too_large)"},
}

Reader = Annotated[Principal, Depends(read_access)]
Writer = Annotated[Principal, Depends(write_access)]


def fleet_of(request: Request) -> Fleet:
    fleet: Fleet = request.app.state.fleet
    return fleet


FleetDep = Annotated[Fleet, Depends(fleet_of)]

router = APIRouter(prefix="/api", responses=ERRORS)


# -- jobs ---------------------------------------------------------------------------------


@router.get("/jobs", response_model=JobPage, tags=["jobs"], summary="List jobs, newest first")
def list_jobs(
    fleet: FleetDep,
    _: Reader,
    status: Annotated[JobStatus | None, Query()] = None,
    queue: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    engine: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    label: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> dict[str, Any]:
    jobs = fleet.list_jobs(
        status=status, queue=queue, engine=engine, label=label, limit=limit, offset=offset
    )
    return {
        "jobs": [job_dict(j) for j in jobs],
        "limit": limit,
        "offset": offset,
        "next_offset": offset + len(jobs) if len(jobs) == limit else None,
    }


@router.post(
    "/jobs",
    response_model=JobOut,
    status_code=201,
    tags=["jobs"],
    summary="Enqueue a job",
    responses=WRITE_ERRORS,
)
def enqueue(request: Request, body: EnqueueRequest, fleet: FleetDep, _: Writer) -> dict[str, Any]:
    return job_dict(enqueue_job(request, body, fleet))


def enqueue_job(request: Request, body: EnqueueRequest, fleet: Fleet) -> Job:
    """An enqueue request's job, refused (422) for an engine no worker of this server's
    fleet knows: the rule of every route that enqueues."""
    known: frozenset[str] = request.app.state.engines
    if body.engine not in known:
        raise ApiError(
            422,
            "invalid",
            f"unknown engine {body.engine!r}: no worker would take the job, so it would wait "
            f"for ever; known engines: {', '.join(sorted(known))} (serve --engines FILE adds "
            "custom ones)",
        )
    if body.run_at is not None and body.delay is not None:
        raise ApiError(422, "invalid", "give run_at or delay, not both")
    run_at = body.run_at if body.delay is None else timedelta(seconds=body.delay)
    job = fleet.enqueue(
        body.engine,
        body.payload,
        queue=body.queue,
        priority=body.priority,
        lock=body.lock,
        max_attempts=body.max_attempts,
        timeout=None if body.timeout is None else float(body.timeout),
        run_at=run_at,
        dedupe_key=body.dedupe_key,
    )
    logs.event(log, "job.enqueue_completed", job=job.id, queue=job.queue, engine=job.engine)
    return job


@router.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"], summary="One job")
def show_job(job_id: int, fleet: FleetDep, _: Reader) -> dict[str, Any]:
    return job_dict(fleet.get_job(job_id))


@router.get(
    "/jobs/{job_id}/runs",
    response_model=RunList,
    response_model_exclude_unset=True,
    tags=["jobs"],
    summary="A job's attempts",
)
def job_runs(
    job_id: int,
    fleet: FleetDep,
    _: Reader,
    output: Annotated[bool, Query(description="Include stdout and stderr")] = False,
) -> dict[str, Any]:
    fleet.get_job(job_id)  # 404 for a job that does not exist, rather than an empty list
    return {
        "runs": [run_dict(r, n, output=output) for n, r in enumerate(fleet.runs(job_id), start=1)]
    }


@router.get(
    "/jobs/{job_id}/logs",
    response_model=LogList,
    tags=["jobs"],
    summary="What each attempt printed (stdout and stderr)",
)
def job_logs(
    job_id: int,
    fleet: FleetDep,
    _: Reader,
    attempt: Annotated[int | None, Query(ge=1, description="Only this attempt")] = None,
) -> dict[str, Any]:
    fleet.get_job(job_id)
    runs = [r for r in fleet.runs(job_id) if attempt is None or r.attempt == attempt]
    return {
        "job_id": job_id,
        "logs": [
            {
                "run_id": r.id,
                "attempt": r.attempt,
                "epoch": r.epoch,
                "status": r.status.value,
                "exit_code": r.exit_code,
                "stdout": r.stdout or "",
                "stderr": r.stderr or "",
            }
            for r in runs
        ],
    }


@router.get(
    "/jobs/{job_id}/events",
    response_model=EventList,
    tags=["jobs"],
    summary="A job's events, oldest first",
)
def job_events(
    job_id: int,
    fleet: FleetDep,
    _: Reader,
    after_id: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    fleet.get_job(job_id)
    return _event_page(fleet.events(job_id, after_id=after_id, limit=limit), after_id)


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=CancelResult,
    tags=["jobs"],
    summary="Cancel a queued job, or ask a running job's worker to stop it",
    responses=WRITE_ERRORS,
)
def cancel_job(job_id: int, fleet: FleetDep, _: Writer) -> dict[str, Any]:
    cancelled = fleet.cancel_job(job_id)
    if cancelled:
        message = f"Job {job_id} cancelled; if it was running, its worker stops it now"
    else:
        message = f"Nothing to cancel: job {job_id} has finished or is already being cancelled"
    logs.event(log, f"job.cancel_{'completed' if cancelled else 'skipped'}", job=job_id)
    return {"job_id": job_id, "cancelled": cancelled, "message": message}


@router.post(
    "/jobs/{job_id}/retry",
    response_model=RetryResult,
    tags=["jobs"],
    summary="Queue a failed or cancelled job again with fresh attempts",
    responses=WRITE_ERRORS,
)
def retry_job(job_id: int, fleet: FleetDep, _: Writer) -> dict[str, Any]:
    job = fleet.retry_job(job_id)
    logs.event(log, "job.retry_completed", job=job_id)
    return {"job": job_dict(job), "message": f"Job {job_id} is queued again"}


# -- events, workers, queues ------------------------------------------------------------


@router.get("/events", response_model=EventList, tags=["events"], summary="All events, in order")
def all_events(
    fleet: FleetDep,
    _: Reader,
    after_id: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    return _event_page(fleet.events(after_id=after_id, limit=limit), after_id)


def _event_page(events: list[Event], after_id: int) -> dict[str, Any]:
    """A page of events and the cursor for the next one (unchanged when it was empty)."""
    return {
        "events": [event_dict(e) for e in events],
        "next_after_id": events[-1].id if events else after_id,
    }


@router.get(
    "/workers",
    response_model=WorkerList,
    tags=["workers"],
    summary="Workers: who is alive (on the store's clock), what each holds",
)
def list_workers(fleet: FleetDep, _: Reader, request: Request) -> dict[str, Any]:
    window: float = request.app.state.worker_window
    now = fleet.now()
    views = [worker_view(w, now, window) for w in fleet.list_workers()]
    return {
        "now": now.isoformat(),
        "window": window,
        "workers": [worker_dict(v) for v in views],
    }


@router.get(
    "/schedules",
    response_model=ScheduleList,
    tags=["schedules"],
    summary="Schedules, with their next runs and what their last slot did",
)
def list_schedules(fleet: FleetDep, _: Reader) -> dict[str, Any]:
    return {"schedules": [schedule_dict(s) for s in fleet.schedules.all()]}


@router.get("/queues", response_model=QueueList, tags=["queues"], summary="Jobs per status")
def list_queues(fleet: FleetDep, _: Reader) -> dict[str, Any]:
    return {"queues": queue_dicts(fleet.queue_counts())}
