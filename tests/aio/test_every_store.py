"""The asyncio API on every store: the same verbs, results and errors as the Fleet, awaited,
with a real worker draining what it enqueues; concurrent calls from one event loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from agentfleet import InvalidArgument, JobNotFound, JobStatus, PlanStatus, Worker
from agentfleet.aio import AsyncFleet
from tests.conftest import StoreEnv
from tests.plans.helpers import gate, plan, shell


def test_jobs_and_plans_through_asyncio_with_a_real_worker(env: StoreEnv) -> None:
    if not env.separate_connections:
        pytest.skip("the memory store lives in one process: its worker would share the lock")
    fleet = AsyncFleet(env.open())
    # A ttl of 3 s renews every second: the cancel below is seen at the next renew.
    worker = Worker(env.open(), concurrency=4, ttl=3, poll_min=0.01, poll_max=0.05)
    thread = threading.Thread(target=worker.run, kwargs={"handle_signals": False})
    thread.start()

    async def scenario() -> None:
        jobs = await asyncio.gather(
            *(fleet.enqueue("shell", {"cmd": f"echo {i}"}) for i in range(5))
        )
        done = await asyncio.gather(*(fleet.wait(job.id, timeout=60) for job in jobs))
        assert {job.status for job in done} == {JobStatus.SUCCEEDED}
        assert len(await fleet.runs(jobs[0].id)) == 1
        failing = await fleet.enqueue("shell", {"cmd": "exit 3"}, max_attempts=1)
        assert (await fleet.wait(failing.id, timeout=60)).status is JobStatus.FAILED
        retried = await fleet.retry(failing.id)
        assert retried.status is JobStatus.QUEUED
        await fleet.wait(failing.id, timeout=60)

        p = await fleet.submit_plan(plan(shell("build"), gate("review", "build"),
                                         shell("ship", "review")))  # fmt: skip
        paused = await fleet.wait_plan(p.id, timeout=60)
        assert paused.status is PlanStatus.PAUSED and paused.pending == "review#1"
        await fleet.approve(p.id, response="ok", checkpoint=paused.pending)
        finished = await fleet.wait_plan(p.id, timeout=60)
        assert finished.status is PlanStatus.COMPLETED

        with pytest.raises(JobNotFound):
            await fleet.get_job(99999)
        with pytest.raises(InvalidArgument):
            await fleet.enqueue("shell", {"cmd": "true"}, priority="high")
        slow = await fleet.enqueue("shell", {"cmd": "sleep 30"})
        with pytest.raises(TimeoutError, match="still"):
            await fleet.wait(slow.id, timeout=0.2)
        assert await fleet.cancel(slow.id)
        assert (await fleet.wait(slow.id, timeout=60)).status is JobStatus.CANCELLED

    try:
        asyncio.run(scenario())
    finally:
        worker.stop()
        thread.join(60)


def test_open_as_an_async_context_manager(tmp_path: object) -> None:
    import agentfleet.aio

    async def scenario() -> list[JobStatus]:
        async with agentfleet.aio.open(f"sqlite:///{tmp_path}/fleet.db") as fleet:
            job = await fleet.enqueue("shell", {"cmd": "true"})
            assert (await fleet.list_jobs())[0].id == job.id
            return [j.status for j in await fleet.list_jobs(status="queued")]

    assert asyncio.run(scenario()) == [JobStatus.QUEUED]
