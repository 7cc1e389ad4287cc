"""The asyncio API: the same fleet, awaited, for async web apps and services.

    import agentfleet.aio

    async with agentfleet.aio.open("postgresql://localhost/app") as fleet:
        job = await fleet.enqueue("shell", {"cmd": "make test"})
        done = await fleet.wait(job.id, timeout=600)

On PostgreSQL the hot verbs of a web app (enqueue, enqueue_many, get_job, list_jobs,
cancel, retry, runs, events, and `wait`'s reads) run on psycopg's async connections, from
a pool of the handle's own that opens on the first call: the store's own operations
(store/ops.py), the same statements and rules as the synchronous store's, run by an async
driver. Everything else, and every verb on SQLite and memory (sqlite3 has no async
driver), runs the synchronous `Fleet`'s own verb on a worker thread: same arguments, same
results, same errors, and every rule stays written once. `wait` awaits a job's end without
holding a thread: it sleeps on the loop between cheap reads.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from agentfleet import fleet as sync
from agentfleet import validate
from agentfleet.errors import InvalidArgument
from agentfleet.models import TERMINAL_STATUSES, Event, Job, JobStatus, NewJob, Run
from agentfleet.plans.model import Plan, PlanSpec, PlanStatus
from agentfleet.store import limits
from agentfleet.store.ops import Operation

if TYPE_CHECKING:
    from agentfleet.store.postgres import PostgresStore
    from agentfleet.store.postgres_aio import AsyncPostgres

P = ParamSpec("P")
R = TypeVar("R")

WAIT_POLL = 0.05  # seconds between reads while `wait` awaits a job's end (backs off to 1 s)


class AsyncFleet:
    """A `Fleet` whose verbs are awaited. `.sync` is the fleet itself, for what is not here.

    `native` is True on PostgreSQL: enqueue, enqueue_many, get_job, list_jobs, cancel,
    retry, runs and events (and so `wait`) run on psycopg's async connections; the rest on
    a thread."""

    def __init__(self, fleet: sync.Fleet) -> None:
        self.sync = fleet
        self._pg: AsyncPostgres | None = None
        self._store: PostgresStore | None = None
        if getattr(fleet.store.dialect, "name", None) == "postgresql":
            from agentfleet.store.postgres import PostgresStore
            from agentfleet.store.postgres_aio import AsyncPostgres

            if isinstance(fleet.store, PostgresStore):
                self._store = fleet.store
                self._pg = AsyncPostgres(fleet.store.dialect)

    @property
    def native(self) -> bool:
        return self._pg is not None

    async def _call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))

    async def _run(self, operation: Operation[R]) -> R:
        assert self._pg is not None
        return await self._pg.perform(operation)

    # -- the checks before a write: the Fleet's own ----------------------------------------

    async def _checked(
        self, payloads: Iterable[Mapping[str, Any] | None], fn: Callable[[], R]
    ) -> R:
        """Run a Fleet check on the loop: it is pure, but for locating a worktree's
        repository (git), which goes to a thread."""
        if any(isinstance(p, Mapping) and p.get("workspace") == "worktree" for p in payloads):
            return await asyncio.to_thread(fn)
        return fn()

    async def _check_limits(self, jobs: list[NewJob]) -> None:
        named = sync.limits_named(jobs)
        if named:
            sync.refuse_unset_limits(named, await self._run(limits.names_op()))

    async def _run_at(self, run_at: object) -> datetime | None:
        """`run_at` checked as `new_job` checks it; the store's clock, which a relative one
        needs, read on the async pool."""
        if not isinstance(run_at, timedelta):
            return validate.run_at(run_at, _no_clock)
        from agentfleet.store.postgres import now_op

        now: datetime = await self._run(now_op())
        return validate.run_at(run_at, lambda: now)

    # -- jobs ---------------------------------------------------------------------------

    async def enqueue(
        self, engine: str, payload: Mapping[str, Any] | None = None, **options: Any
    ) -> Job:
        if self._store is None or options.get("conn") is not None:
            return await self._call(self.sync.enqueue, engine, payload, **options)
        options.pop("conn", None)
        run_at = options.pop("run_at", None)
        new = await self._checked(
            [payload], functools.partial(self.sync.new_job, engine, payload, **options)
        )
        if run_at is not None:  # checked as new_job checks it, by the store's clock
            new = replace(new, run_at=await self._run_at(run_at))
        await self._check_limits([new])
        return (await self._run(self._store.enqueue_op([new])))[0]

    async def enqueue_many(
        self, jobs: Iterable[NewJob], *, conn: object | None = None
    ) -> list[Job]:
        if self._store is None or conn is not None:
            return await self._call(self.sync.enqueue_many, list(jobs), conn=conn)
        batch = list(jobs)
        checked = await self._checked(
            [getattr(job, "payload", None) for job in batch],
            functools.partial(self.sync.checked_jobs, batch),
        )
        await self._check_limits(checked)
        if not checked:
            return []
        return await self._run(self._store.enqueue_op(checked))

    async def get_job(self, job_id: int) -> Job:
        if self._store is None:
            return await self._call(self.sync.get_job, job_id)
        return await self._run(self._store.get_job_op(validate.integer(job_id, "job_id")))

    async def list_jobs(self, **filters: Any) -> list[Job]:
        if self._store is None:
            return await self._call(self.sync.list_jobs, **filters)
        return await self._run(self._store.list_jobs_op(**sync.job_filters(**filters)))

    async def cancel(self, job_id: int) -> bool:
        """Cancel a job (idempotent: False when there was nothing more to cancel)."""
        if self._store is None:
            return await self._call(self.sync.cancel_job, job_id)
        job_id = validate.integer(job_id, "job_id")
        cancelled = await self._run(self._store.cancel_job_op(job_id))
        if cancelled:  # a plan's step: its plan moves on (the plans layer, on a thread)
            plan_id = (await self._run(self._store.get_job_op(job_id))).plan_id
            if plan_id is not None:
                await self._call(self.sync.plans.advance, plan_id)
        return cancelled

    async def retry(self, job_id: int) -> Job:
        if self._store is None:
            return await self._call(self.sync.retry_job, job_id)
        return await self._run(self._store.retry_job_op(validate.integer(job_id, "job_id")))

    async def runs(self, job_id: int) -> list[Run]:
        if self._store is None:
            return await self._call(self.sync.runs, job_id)
        return await self._run(self._store.runs_op(validate.integer(job_id, "job_id")))

    async def events(self, job_id: int | None = None, **options: Any) -> list[Event]:
        if self._store is None:
            return await self._call(self.sync.events, job_id, **options)
        return await self._run(self._store.events_op(*sync.event_filters(job_id, **options)))

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
        if self._pg is not None:
            await self._pg.close()
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


def _no_clock() -> datetime:
    raise AssertionError("only a relative run_at reads the store's clock")


def open(url: str | None = None, **options: Any) -> AsyncFleet:
    """Open a fleet for asyncio, with the options of `agentfleet.open`."""
    return AsyncFleet(sync.open(url, **options))


__all__ = ["AsyncFleet", "JobStatus", "open"]
