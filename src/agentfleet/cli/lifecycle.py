"""Commands that change a job's lifecycle: cancel, retry, reap."""

from __future__ import annotations

import typer
from rich.markup import escape

from agentfleet.cli.app import (
    ExitCode,
    JobArg,
    JsonOpt,
    app,
    console,
    err,
    handled,
    open_fleet,
    print_json,
)
from agentfleet.models import JobStatus
from agentfleet.serialize import job_dict

# -- lifecycle ------------------------------------------------------------------------


@app.command()
def cancel(ctx: typer.Context, job_id: JobArg, as_json: JsonOpt = False) -> None:
    """Cancel a queued job, or stop a running one.

    A running job's worker sees the cancel at its next heartbeat (ttl/3), stops the job's
    process group and the job ends cancelled. Exit code 1 when there is nothing to cancel.

    Example: agentfleet cancel 42
    """
    with handled(), open_fleet(ctx) as fleet:
        changed = fleet.cancel_job(job_id)
        job = fleet.get_job(job_id)
    if as_json:
        print_json(
            {
                "job": job_id,
                "cancelled": changed,
                "status": job.status,
                "cancel_requested": job.cancel_requested,
            }
        )
    elif changed and job.status is JobStatus.CANCELLED:
        console.print(f"job {job_id} cancelled")
    elif changed:
        console.print(
            f"job {job_id} is running on {escape(job.worker or '?')}: asked it to stop; "
            "it ends cancelled at the worker's next heartbeat"
        )
    elif job.cancel_requested and job.status is JobStatus.RUNNING:
        err.print(f"job {job_id}: a cancel is already pending", highlight=False)
    else:
        err.print(f"nothing to cancel: job {job_id} has already ended ({job.status.value})",
                  highlight=False)  # fmt: skip
    if not changed:
        raise typer.Exit(int(ExitCode.REFUSED))


@app.command()
def retry(ctx: typer.Context, job_id: JobArg, as_json: JsonOpt = False) -> None:
    """Put a failed or cancelled job back in the queue with fresh attempts.

    Exit code 1 when the job is not failed or cancelled.

    Example: agentfleet retry 42
    """
    with handled(), open_fleet(ctx) as fleet:
        job = fleet.retry_job(job_id)
    if as_json:
        print_json(job_dict(job))
    else:
        console.print(f"job {job_id} queued again with {job.max_attempts} fresh attempts")


@app.command()
def reap(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Send jobs whose lease expired (their worker vanished) back to the queue now.

    Workers do this as they go; this is for when none is running.

    Example: agentfleet reap
    """
    with handled(), open_fleet(ctx) as fleet:
        reaped = fleet.reap_expired()
    if as_json:
        print_json([{"job": job_id, "status": status} for job_id, status in reaped])
    elif not reaped:
        console.print("no expired leases")
    else:
        for job_id, status in reaped:
            console.print(f"job {job_id}: lease expired, now {status.value}")
