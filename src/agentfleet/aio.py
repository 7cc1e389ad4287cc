"""The asyncio API: the same fleet, awaited, for async web apps and services.

    import agentfleet.aio

    async with agentfleet.aio.open("postgresql://localhost/app") as fleet:
        job = await fleet.enqueue("shell", {"cmd": "make test"})
        done = await fleet.wait(job.id, timeout=600)

Each verb runs the synchronous `Fleet`'s own (same arguments, same results, same errors)
on a worker thread, so the event loop never blocks on the database and every rule stays
written once. The store's handle is safe across threads: PostgreSQL's connection pool
serves concurrent calls, SQLite serialises its writers. `wait` awaits a job's end without
holding a thread: it sleeps on the loop between cheap reads.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from agentfleet import fleet as sync
from agentfleet.errors import InvalidArgument
from agentfleet.models import TERMINAL_STATUSES, Event, Job, JobStatus, NewJob, Run
from agentfleet.plans.model import Plan, PlanSpec, PlanStatus

P = ParamSpec("P")
R = TypeVar("R")

WAIT_POLL = 0.05  # seconds between reads while `wait` awaits a job's end (backs off to 1 s)


class AsyncFleet:
    """A `Fleet` whose verbs are awaited. `.sync` is the fleet itself, for what is not here."""

    def __init__(self, fleet: sync.Fleet) -> None:
        self.sync = fleet

    async def _call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))

    # -- jobs ---------------------------------------------------------------------------

    async def enqueue(self, engine: str, payload: Mapping[str, Any], **options: Any) -> Job:
        return await self._call(self.sync.enqueue, engine, payload, **options)

    async def enqueue_many(
        self, jobs: Iterable[NewJob], *, conn: object | None = None
    ) -> list[Job]:
        return await self._call(self.sync.enqueue_many, list(jobs), conn=conn)

    async def get_job(self, job_id: int) -> Job:
        return await self._call(self.sync.get_job, job_id)

    async def list_jobs(self, **filters: Any) -> list[Job]:
        return await self._call(self.sync.list_jobs, **filters)

    async def cancel(self, job_id: int) -> bool:
        """Cancel a job (idempotent: False when there was nothing more to cancel)."""
        return await self._call(self.sync.cancel_job, job_id)

    async def retry(self, job_id: int) -> Job:
        return await self._call(self.sync.retry_job, job_id)

    async def runs(self, job_id: int) -> list[Run]:
        return await self._call(self.sync.runs, job_id)

    async def events(self, job_id: int | None = None, **options: Any) -> list[Event]:
        return await self._call(self.sync.events, job_id, **options)

    async def wait(self, job_id: int, timeout: float | None = None) -> Job:
        """The job once it has ended (succeeded, failed, cancelled or skipped). Raises
        TimeoutError after `timeout` seconds; JobNotFound for an unknown id."""
        if timeout is not None and timeout < 0:
            raise InvalidArgument("timeout must be 0 seconds or more")
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = WAIT_POLL
        while True:
            job = await self.get_job(job_id)
            if job.status in TERMINAL_STATUSES:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} is still {job.status.value} after {timeout}s")
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            await asyncio.sleep(pause if left is None else min(pause, left))
            pause = min(pause * 2, 1.0)

    # -- plans --------------------------------------------------------------------------

    async def submit_plan(
        self, plan: PlanSpec | Mapping[str, Any] | str | Path, **options: Any
    ) -> Plan:
        return await self._call(self.sync.submit_plan, plan, **options)

    async def get_plan(self, plan_id: int) -> Plan:
        return await self._call(self.sync.get_plan, plan_id)

    async def list_plans(self, **filters: Any) -> list[Plan]:
        return await self._call(self.sync.list_plans, **filters)

    async def approve(
        self, plan_id: int, response: Any = None, *, checkpoint: str | None = None
    ) -> Plan:
        return await self._call(self.sync.approve, plan_id, response, checkpoint=checkpoint)

    async def reject(
        self, plan_id: int, feedback: str | None = None, *, checkpoint: str | None = None
    ) -> Plan:
        return await self._call(self.sync.reject, plan_id, feedback, checkpoint=checkpoint)

    async def resume(self, plan_id: int) -> Plan:
        return await self._call(self.sync.resume, plan_id)

    async def cancel_plan(self, plan_id: int) -> bool:
        return await self._call(self.sync.cancel_plan, plan_id)

    async def abandon_plan(self, plan_id: int) -> bool:
        return await self._call(self.sync.abandon_plan, plan_id)

    async def wait_plan(self, plan_id: int, timeout: float | None = None) -> Plan:
        """The plan once it has ended or stopped (completed, failed, cancelled, abandoned,
        or paused at a checkpoint). Raises TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = WAIT_POLL
        while True:
            plan = await self.get_plan(plan_id)
            if plan.status not in (PlanStatus.PENDING, PlanStatus.RUNNING):
                return plan
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"plan {plan_id} is still {plan.status.value} after {timeout}s")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)

    # -- the handle ---------------------------------------------------------------------

    async def close(self) -> None:
        await self._call(self.sync.close)

    async def __aenter__(self) -> AsyncFleet:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def open(url: str | None = None, **options: Any) -> AsyncFleet:
    """Open a fleet for asyncio, with the options of `agentfleet.open`."""
    return AsyncFleet(sync.open(url, **options))


__all__ = ["AsyncFleet", "JobStatus", "open"]
