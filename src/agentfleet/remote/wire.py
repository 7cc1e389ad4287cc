"""The worker API's JSON: domain values to dicts and back, losslessly.

The server (:mod:`agentfleet.web.api_worker`) and the client (:class:`RemoteFleet`) share
these, so a value a remote worker gets is the value a direct worker gets. Unlike the public
views of :mod:`agentfleet.serialize`, a leased job's payload is whole here (its ``env``
values included): the worker needs them to run the job.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from agentfleet.agents.usage import Usage
from agentfleet.errors import InvalidArgument, JobCancelled, LeaseLost
from agentfleet.models import Job, JobStatus, Lease, Run, RunOutput, RunStatus
from agentfleet.serialize import job_fields

__all__ = [
    "job_from_wire",
    "job_to_wire",
    "lease_from_wire",
    "lease_to_wire",
    "lost_from_wire",
    "lost_to_wire",
    "output_from_wire",
    "output_to_wire",
    "run_from_wire",
    "run_to_wire",
    "usage_from_wire",
    "usage_to_wire",
]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _time(value: object, what: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(f"{what} must be an ISO 8601 time, not {value!r}") from None
    if moment.tzinfo is None:
        raise InvalidArgument(f"{what} must be an aware time (with its UTC offset)")
    return moment


def _maybe_time(value: object, what: str) -> datetime | None:
    return None if value is None else _time(value, what)


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{key} must be an integer")
    return value


# -- jobs, leases, runs ----------------------------------------------------------------------


def job_to_wire(job: Job) -> dict[str, Any]:
    return job_fields(job)  # the payload whole, env values included


def job_from_wire(data: Mapping[str, Any]) -> Job:
    try:
        return Job(
            id=data["id"],
            queue=data["queue"],
            engine=data["engine"],
            payload=dict(data["payload"]),
            status=JobStatus(data["status"]),
            priority=data["priority"],
            lock=data["lock"],
            max_attempts=data["max_attempts"],
            attempts=data["attempts"],
            lease_epoch=data["lease_epoch"],
            worker=data["worker"],
            lease_expires_at=_maybe_time(data["lease_expires_at"], "lease_expires_at"),
            timeout=data["timeout"],
            run_at=_time(data["run_at"], "run_at"),
            dedupe_key=data["dedupe_key"],
            rev=data["rev"],
            result=data["result"],
            error=data["error"],
            cancel_requested=data["cancel_requested"],
            created_at=_time(data["created_at"], "created_at"),
            updated_at=_time(data["updated_at"], "updated_at"),
            finished_at=_maybe_time(data["finished_at"], "finished_at"),
            plan_id=data.get("plan_id"),
            step=data.get("step"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidArgument(f"not a job: {exc}") from None


def lease_to_wire(lease: Lease, *, with_job: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "job_id": lease.job_id,
        "epoch": lease.epoch,
        "worker": lease.worker,
        "expires_at": lease.expires_at.isoformat(),
        "attempt": lease.attempt,
        "run_id": lease.run_id,
        "ttl": lease.ttl,
    }
    if with_job and lease.job is not None:
        data["job"] = job_to_wire(lease.job)
    return data


def lease_from_wire(data: object) -> Lease:
    if not isinstance(data, Mapping):
        raise InvalidArgument("a lease must be an object")
    worker, ttl = data.get("worker"), data.get("ttl")
    if not isinstance(worker, str) or not worker:
        raise InvalidArgument("a lease's worker must be a non-empty string")
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:
        raise InvalidArgument("a lease's ttl must be a positive number of seconds")
    job = data.get("job")
    return Lease(
        job_id=_int(data, "job_id"),
        epoch=_int(data, "epoch"),
        worker=worker,
        expires_at=_time(data.get("expires_at"), "expires_at"),
        attempt=_int(data, "attempt"),
        run_id=_int(data, "run_id"),
        ttl=float(ttl),
        job=None if job is None else job_from_wire(job),
    )


def run_to_wire(run: Run) -> dict[str, Any]:
    """A run without what it printed: a worker reads runs to find an earlier attempt's
    processes and agent session, never its output."""
    return {
        "id": run.id,
        "job_id": run.job_id,
        "attempt": run.attempt,
        "epoch": run.epoch,
        "worker": run.worker,
        "status": run.status.value,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "error": run.error,
        "exit_code": run.exit_code,
        "host": run.host,
        "pgid": run.pgid,
        "agent": run.agent,
    }


def run_from_wire(data: Mapping[str, Any]) -> Run:
    try:
        return Run(
            id=data["id"],
            job_id=data["job_id"],
            attempt=data["attempt"],
            epoch=data["epoch"],
            worker=data["worker"],
            status=RunStatus(data["status"]),
            started_at=_time(data["started_at"], "started_at"),
            finished_at=_maybe_time(data["finished_at"], "finished_at"),
            error=data["error"],
            exit_code=data["exit_code"],
            stdout=None,
            stderr=None,
            host=data.get("host"),
            pgid=data.get("pgid"),
            agent=data.get("agent"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidArgument(f"not a run: {exc}") from None


# -- what attempts write ------------------------------------------------------------------------


def output_to_wire(output: RunOutput | None) -> dict[str, Any] | None:
    if output is None:
        return None
    return {
        "exit_code": output.exit_code,
        "stdout": output.stdout,
        "stderr": output.stderr,
        "agent": output.agent,
    }


def output_from_wire(data: object) -> RunOutput | None:
    if data is None:
        return None
    if not isinstance(data, Mapping) or set(data) - {"exit_code", "stdout", "stderr", "agent"}:
        raise InvalidArgument("output must be an object of exit_code, stdout, stderr, agent")
    exit_code, stdout, stderr, agent = (
        data.get("exit_code"),
        data.get("stdout"),
        data.get("stderr"),
        data.get("agent"),
    )
    if exit_code is not None and (isinstance(exit_code, bool) or not isinstance(exit_code, int)):
        raise InvalidArgument("output exit_code must be an integer or null")
    for name, text in (("stdout", stdout), ("stderr", stderr)):
        if text is not None and not isinstance(text, str):
            raise InvalidArgument(f"output {name} must be a string or null")
    if agent is not None and not isinstance(agent, dict):
        raise InvalidArgument("output agent must be an object or null")
    return RunOutput(exit_code=exit_code, stdout=stdout, stderr=stderr, agent=agent)


def usage_to_wire(usage: Usage) -> dict[str, Any]:
    return {
        "cost_usd": usage.cost_usd,
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "runs": usage.runs,
    }


def usage_from_wire(data: Mapping[str, Any]) -> Usage:
    return Usage(data.get("cost_usd"), data.get("input_tokens"), data.get("output_tokens"),
                 int(data.get("runs") or 0))  # fmt: skip


# -- a refused write ------------------------------------------------------------------------------


def lost_to_wire(exc: LeaseLost) -> dict[str, Any]:
    """What an error body carries of a LeaseLost (or JobCancelled), to raise it again."""
    return {
        "job_id": exc.job_id,
        "epoch": exc.epoch,
        "current_epoch": exc.current_epoch,
        "status": exc.status,
    }


def lost_from_wire(code: str, data: Mapping[str, Any]) -> LeaseLost:
    job_id, epoch = int(data.get("job_id") or 0), int(data.get("epoch") or 0)
    if code == "job_cancelled":
        return JobCancelled(job_id, epoch)
    current, status = data.get("current_epoch"), data.get("status")
    return LeaseLost(
        job_id,
        epoch,
        current_epoch=current if isinstance(current, int) else None,
        status=status if isinstance(status, str) else None,
    )
