"""The asyncio API: the same fleet, awaited, for async web apps and services.

    import agentfleet.aio

    async with agentfleet.aio.open("postgresql://localhost/app") as fleet:
        job = await fleet.enqueue("shell", {"cmd": "make test"})
        done = await fleet.wait(job.id, timeout=600)

On PostgreSQL every verb here runs on psycopg's async connections, from a pool of the
handle's own that opens on the first call, with no thread. The hot verbs of a web app
(enqueue, enqueue_many, get_job, list_jobs, cancel, retry, runs, events, and `wait`'s
reads) run the store's own operations (store/ops.py), the same statements and rules as the
synchronous store's, on an async driver. The plan verbs run the Fleet's own verb, the
plans layer's synchronous code, on the loop: `store/awaited.py` runs it in a greenlet whose
every statement is awaited on the async pool (`BridgedPostgres`), so each rule stays
written once. A caller's `psycopg.AsyncConnection` (`conn=`) is joined the same way. What
does blocking IO goes to a thread: reading a plan file, running git to locate a worktree
step's repository, and a caller's synchronous `conn=`. On SQLite and memory every verb
runs the synchronous `Fleet`'s own verb on a worker thread (sqlite3 has no async driver):
same arguments, same results, same errors. `wait` awaits a job's end without holding a
thread: it sleeps on the loop between cheap reads.
"""

from __future__ import annotations

import asyncio
import functools
import json
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
from agentfleet.workspaces.train import is_worktree_step

if TYPE_CHECKING:
    from agentfleet.store.postgres import PostgresStore
    from agentfleet.store.postgres_aio import AsyncPostgres

P = ParamSpec("P")
R = TypeVar("R")

WAIT_POLL = 0.05  # seconds between reads while `wait` awaits a job's end (backs off to 1 s)


class AsyncFleet:
    """A `Fleet` whose verbs are awaited. `.sync` is the fleet itself, for what is not here.

    `native` is True on PostgreSQL: every verb here runs on psycopg's async connections
    (but for the blocking IO named in the module's docstring); elsewhere on a thread."""

    def __init__(self, fleet: sync.Fleet) -> None:
        self.sync = fleet
        self._pg: AsyncPostgres | None = None
        self._store: PostgresStore | None = None
        self._bridged: sync.Fleet | None = None  # the fleet's verbs over the async pool
        if getattr(fleet.store.dialect, "name", None) == "postgresql":
            from agentfleet.store.postgres import PostgresStore
            from agentfleet.store.postgres_aio import AsyncPostgres, BridgedPostgres

            if isinstance(fleet.store, PostgresStore):
                self._store = fleet.store
                self._pg = AsyncPostgres(fleet.store.dialect)
                self._bridged = fleet.on(fleet.store.on(BridgedPostgres(self._pg)))

    @property
    def native(self) -> bool:
        return self._pg is not None

    async def _call(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))

    def _joins(self, conn: object) -> bool:
        """Whether `conn` is the caller's async connection, joined on the loop (a sync one
        is joined by the synchronous fleet, on a thread)."""
        if self._bridged is None or conn is None:
            return False
        import psycopg  # there is a bridge: PostgreSQL's driver is here

        return isinstance(conn, psycopg.AsyncConnection)

    @property
    def _on_loop(self) -> sync.Fleet:
        assert self._bridged is not None
        return self._bridged

    async def _bridge(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """`fn` (a verb of the bridged fleet) run on the loop over the async pool."""
        from agentfleet.store import awaited  # greenlet comes with the postgres extra

        return await awaited.call(fn, *args, **kwargs)

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
        if self._joins(options.get("conn")):
            return await self._bridge(self._on_loop.enqueue, engine, payload, **options)
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
        if self._joins(conn):
            return await self._bridge(self._on_loop.enqueue_many, list(jobs), conn=conn)
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
                assert self._bridged is not None
                await self._bridge(self._bridged.plans.advance, plan_id)
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

    async def _plan_verb(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """The Fleet's own plan verb: on PostgreSQL run on the loop over the async pool
        (`awaited.call`, no thread), elsewhere on a thread."""
        if self._bridged is None:
            return await self._call(getattr(self.sync, name), *args, **kwargs)
        return await self._bridge(getattr(self._bridged, name), *args, **kwargs)

    async def submit_plan(
        self,
        plan: PlanSpec | Mapping[str, Any] | str | Path,
        *,
        engines: Iterable[str] | None = None,
        conn: object | None = None,
    ) -> Plan:
        if self._bridged is None or (conn is not None and not self._joins(conn)):
            return await self._call(self.sync.submit_plan, plan, engines=engines, conn=conn)
        make = functools.partial(self.sync.plan_spec, plan, engines=engines)
        spec = await asyncio.to_thread(make) if _reads_files(plan) else make()
        plan_made: Plan = await self._bridge(self._bridged.submit_spec, spec, conn=conn)
        return plan_made

    async def get_plan(self, plan_id: int) -> Plan:
        plan: Plan = await self._plan_verb("get_plan", plan_id)
        return plan

    async def list_plans(self, **filters: Any) -> list[Plan]:
        plans: list[Plan] = await self._plan_verb("list_plans", **filters)
        return plans

    async def approve(
        self, plan_id: int, response: Any = None, *, checkpoint: str | None = None
    ) -> Plan:
        plan: Plan = await self._plan_verb("approve", plan_id, response, checkpoint=checkpoint)
        return plan

    async def reject(
        self, plan_id: int, feedback: str | None = None, *, checkpoint: str | None = None
    ) -> Plan:
        plan: Plan = await self._plan_verb("reject", plan_id, feedback, checkpoint=checkpoint)
        return plan

    async def resume(self, plan_id: int) -> Plan:
        plan: Plan = await self._plan_verb("resume", plan_id)
        return plan

    async def cancel_plan(self, plan_id: int) -> bool:
        cancelled: bool = await self._plan_verb("cancel_plan", plan_id)
        return cancelled

    async def abandon_plan(self, plan_id: int) -> bool:
        abandoned: bool = await self._plan_verb("abandon_plan", plan_id)
        return abandoned

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


def _reads_files(plan: object) -> bool:
    """Whether making the plan's spec does blocking IO, and so goes to a thread: reading
    a plan file, or locating a worktree step's repository with git (a mapping is judged
    by its text, erring towards the thread)."""
    if isinstance(plan, PlanSpec):
        return any(is_worktree_step(step) for step in plan.steps)
    if isinstance(plan, Mapping):
        return "worktree" in json.dumps(plan, default=str)
    return True


def _no_clock() -> datetime:
    raise AssertionError("only a relative run_at reads the store's clock")


def open(url: str | None = None, **options: Any) -> AsyncFleet:
    """Open a fleet for asyncio, with the options of `agentfleet.open`."""
    return AsyncFleet(sync.open(url, **options))


__all__ = ["AsyncFleet", "JobStatus", "open"]
