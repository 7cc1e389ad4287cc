"""The asyncio API on PostgreSQL's async connections: enqueue, enqueue_many, get_job,
list_jobs, cancel, retry and wait run on the handle's async pool, with no thread and no
synchronous connection, and answer as the synchronous Fleet does: the same jobs, the same
errors. Many at once from one event loop all land; a lost server is StoreUnavailable."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

import agentfleet
import agentfleet.aio
from agentfleet import (
    Fleet,
    InvalidArgument,
    InvalidTransition,
    JobNotFound,
    JobStatus,
    PlanStatus,
    StoreUnavailable,
    Worker,
)
from agentfleet.aio import AsyncFleet
from agentfleet.tasks import TaskRegistry
from tests.aio.helpers import errors_both_ways, off_the_loop_refused
from tests.conftest import PATIENCE
from tests.plans.helpers import plan, shell
from tests.worker.helpers import wait_until

NATIVE_VERBS = (
    "enqueue",
    "enqueue_many",
    "get_job",
    "list_jobs",
    "cancel_job",
    "retry_job",
    "runs",
    "events",
)


def test_the_native_verbs_run_on_the_async_pool_with_no_thread(
    url: str, sync_fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = agentfleet.open(url)
    fleet = AsyncFleet(handle)
    assert fleet.native
    sync_fleet.set_limit("gpu", 1)
    off_the_loop_refused(monkeypatch, handle, NATIVE_VERBS)

    async def scenario() -> dict[str, Any]:
        job = await fleet.enqueue("shell", {"cmd": "true"}, queue="web", priority=5)
        keyed = await fleet.enqueue("shell", {"cmd": "true"}, dedupe_key="build-1")
        repeat = await fleet.enqueue("shell", {"cmd": "other"}, dedupe_key="build-1")
        later = await fleet.enqueue("shell", {"cmd": "true"}, run_at=timedelta(hours=1))
        gpu = await fleet.enqueue("shell", {"cmd": "true"}, limit="gpu")
        many = await fleet.enqueue_many(
            [handle.new_job("shell", {"cmd": f"echo {i}", "labels": ["x"]}) for i in range(3)]
        )
        assert await fleet.enqueue_many([]) == []
        got = await fleet.get_job(job.id)
        listed = await fleet.list_jobs(queue="web")
        labelled = await fleet.list_jobs(label="x", status="queued", limit=2)
        errors: dict[str, type[BaseException]] = {}
        for name, call in {
            "unknown id": fleet.get_job(999_999),
            "bad id": fleet.get_job("seven"),  # type: ignore[arg-type]
            "bad priority": fleet.enqueue("shell", {"cmd": "true"}, priority="high"),
            "unset limit": fleet.enqueue("shell", {"cmd": "true"}, limit="tpu"),
            "bad status": fleet.list_jobs(status="done"),
            "not a NewJob": fleet.enqueue_many([{"engine": "shell"}]),  # type: ignore[list-item]
            "cancel unknown": fleet.cancel(999_999),
            "retry queued": fleet.retry(job.id),
            "retry unknown": fleet.retry(999_999),
        }.items():
            try:
                await call
            except Exception as exc:
                errors[name] = type(exc)
        cancelled = await fleet.cancel(job.id)
        again = await fleet.cancel(job.id)
        ended = await fleet.wait(job.id, timeout=5)
        retried = await fleet.retry(job.id)
        with pytest.raises(TimeoutError, match="still queued"):
            await fleet.wait(job.id, timeout=0.1)
        runs = await fleet.runs(job.id)
        job_events = await fleet.events(job.id)
        all_events = await fleet.events(after_id=job_events[0].id, limit=3)
        monkeypatch.undo()
        await fleet.close()
        return locals()

    seen = asyncio.run(scenario())

    job, keyed, repeat = seen["job"], seen["keyed"], seen["repeat"]
    assert (job.queue, job.priority, job.status) == ("web", 5, JobStatus.QUEUED)
    assert repeat == keyed  # the live job holding the dedupe key, not a new one
    assert seen["later"].run_at == sync_fleet.get_job(seen["later"].id).run_at
    assert seen["later"].run_at > sync_fleet.now() + timedelta(minutes=59)
    assert seen["gpu"].payload["limit"] == "gpu"
    assert [j.payload["cmd"] for j in seen["many"]] == ["echo 0", "echo 1", "echo 2"]
    assert seen["got"] == job  # enqueue's answer is the row as stored
    assert seen["listed"] == [job]
    assert seen["labelled"] == sync_fleet.list_jobs(label="x", status="queued", limit=2)
    assert [j.id for j in seen["labelled"]] == [seen["many"][2].id, seen["many"][1].id]
    assert seen["errors"] == {
        "unknown id": JobNotFound,
        "bad id": InvalidArgument,
        "bad priority": InvalidArgument,
        "unset limit": InvalidArgument,
        "bad status": InvalidArgument,
        "not a NewJob": InvalidArgument,
        "cancel unknown": JobNotFound,
        "retry queued": InvalidTransition,
        "retry unknown": JobNotFound,
    }
    assert (seen["cancelled"], seen["again"]) == (True, False)
    assert seen["ended"].status is JobStatus.CANCELLED
    assert seen["retried"].status is JobStatus.QUEUED
    assert sync_fleet.get_job(job.id) == seen["retried"]
    assert seen["runs"] == sync_fleet.runs(job.id) == []
    assert seen["job_events"] == sync_fleet.events(job.id)
    assert [e.kind for e in seen["job_events"]] == ["enqueued", "cancelled", "retried"]
    # each write is one transaction, so its rows carry its one time (PostgreSQL's now())
    enqueued, cancelled, retried = seen["job_events"]
    assert enqueued.at == job.created_at
    assert cancelled.at == seen["ended"].finished_at
    assert retried.at == seen["retried"].updated_at
    assert seen["all_events"] == sync_fleet.events(after_id=seen["job_events"][0].id, limit=3)
    assert [e.kind for e in sync_fleet.events(keyed.id)] == ["enqueued"]


def test_the_errors_match_the_sync_fleets(url: str, sync_fleet: Fleet) -> None:
    """Each bad call refused by the async verb with the sync verb's exception and message."""
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("enqueue", ("shell", {"cmd": "true"}), {"priority": "high"}),
        ("enqueue", ("approval", {}), {}),
        ("enqueue", ("shell", {"cmd": "true"}), {"limit": "nope"}),
        ("enqueue", ("shell", {"cmd": "true"}), {"run_at": timedelta(days=4_000_000)}),
        ("enqueue", ("shell", {"cmd": "true"}), {"run_at": datetime(2030, 1, 1)}),
        ("enqueue", ("shell", {"cmd": "true"}), {"run_at": "soon", "priority": 2**40}),
        ("enqueue", ("shell", ["not", "a", "mapping"]), {}),
        ("enqueue", ("", {}), {}),
        ("enqueue_many", ([1],), {}),
        ("get_job", (424242,), {}),
        ("get_job", (-1,), {}),
        ("list_jobs", (), {"status": "done"}),
        ("list_jobs", (), {"limit": 0}),
        ("runs", ("one",), {}),
        ("events", (), {"after_id": "x"}),
        ("events", (), {"limit": 0}),
        ("events", ("one",), {}),
        ("cancel", (424242,), {}),
        ("retry", (424242,), {}),
    ]
    sync_name = {"cancel": "cancel_job", "retry": "retry_job"}

    expected, got = errors_both_ways(url, sync_fleet, calls, sync_name)
    assert "no error" not in expected
    assert got == expected


def test_200_concurrent_enqueues_all_land_and_a_real_worker_runs_them(url: str) -> None:
    registry = TaskRegistry()
    registry.register(lambda n: n * 2, "double")
    worker = Worker(
        agentfleet.open(url, tasks=registry), concurrency=8, poll_min=0.01, poll_max=0.05
    )
    thread = threading.Thread(target=worker.run, kwargs={"handle_signals": False})
    thread.start()

    async def scenario() -> list[Any]:
        async with agentfleet.aio.open(url) as fleet:
            jobs = await asyncio.gather(
                *(fleet.enqueue("python", {"func": "double", "args": [i]}) for i in range(200))
            )
            assert len({job.id for job in jobs}) == 200
            return await asyncio.gather(*(fleet.wait(job.id, timeout=PATIENCE) for job in jobs))

    try:
        done = asyncio.run(scenario())
    finally:
        worker.stop()
        thread.join(PATIENCE)
    assert [job.status for job in done] == [JobStatus.SUCCEEDED] * 200
    assert [job.result for job in done] == [i * 2 for i in range(200)]
    with agentfleet.open(url) as fleet:
        assert fleet.queue_counts() == {("default", "succeeded"): 200}


def _terminate(url: str, application: str) -> int:
    with psycopg.connect(url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application,),
        ).fetchall()
    return len(rows)


def test_a_terminated_async_connection_is_store_unavailable_then_recovers(url: str) -> None:
    application = f"aio-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        async with agentfleet.aio.open(f"{url}?application_name={application}&pool_size=1") as f:
            job = await f.enqueue("shell", {"cmd": "true"})
            assert _terminate(url, application) >= 1  # the async pool's and the sync pool's
            with pytest.raises(StoreUnavailable, match="lost the connection to PostgreSQL"):
                await f.get_job(job.id)
            deadline = time.monotonic() + PATIENCE
            while True:  # the pool replaces the connection it lost
                try:
                    assert (await f.get_job(job.id)).id == job.id
                    break
                except StoreUnavailable:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.05)
            again = await f.enqueue("shell", {"cmd": "true"})
            assert [j.id for j in await f.list_jobs()] == [again.id, job.id]

    asyncio.run(scenario())


def test_a_native_cancel_of_a_plans_step_moves_its_plan_on_as_the_sync_cancel_does(
    url: str, sync_fleet: Fleet
) -> None:
    def step_of(plan_id: int) -> int:
        (job,) = [j for j in sync_fleet.list_jobs() if j.plan_id == plan_id and j.step == "a"]
        return job.id

    by_sync = sync_fleet.submit_plan(plan(shell("a"), shell("b", "a")))
    assert sync_fleet.cancel_job(step_of(by_sync.id))

    async def scenario() -> Any:
        async with agentfleet.aio.open(url) as fleet:
            by_aio = await fleet.submit_plan(plan(shell("a"), shell("b", "a")))
            assert await fleet.cancel(step_of(by_aio.id))
            return await fleet.get_plan(by_aio.id)

    moved = asyncio.run(scenario())
    expected = sync_fleet.get_plan(by_sync.id)
    assert moved.status is expected.status
    assert moved.status is not PlanStatus.RUNNING
    steps = {j.step: j.status for j in sync_fleet.list_jobs() if j.plan_id == moved.id}
    assert steps == {j.step: j.status for j in sync_fleet.list_jobs() if j.plan_id == by_sync.id}


def test_the_async_pool_serves_the_event_loop_it_opened_in(url: str) -> None:
    fleet = agentfleet.aio.open(url)
    job = asyncio.run(fleet.enqueue("shell", {"cmd": "true"}))
    with pytest.raises(InvalidArgument, match="one fleet per event loop"):
        asyncio.run(fleet.get_job(job.id))
    fleet.sync.close()


def test_a_closed_fleet_lets_its_connections_go_and_serves_a_later_event_loop(url: str) -> None:
    application = f"aio-{uuid.uuid4().hex[:8]}"
    fleet = agentfleet.aio.open(f"{url}?application_name={application}")

    def connections() -> int:
        with psycopg.connect(url, autocommit=True) as admin:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                (application,),
            ).fetchone()
        return int(row[0]) if row else 0

    async def enqueue_and_close() -> int:
        job = await fleet.enqueue("shell", {"cmd": "true"})
        await fleet.close()
        # while the loop still runs: the close itself let them go, not the loop's end
        wait_until(lambda: connections() == 0, "the closed pool's connections to end")
        return job.id

    job_id = asyncio.run(enqueue_and_close())

    async def read_and_close() -> JobStatus:
        job = await fleet.get_job(job_id)
        await fleet.close()
        return job.status

    assert asyncio.run(read_and_close()) is JobStatus.QUEUED  # a new loop, after the close
    wait_until(lambda: connections() == 0, "the closed pool's connections to end")
    fleet.sync.close()


def test_a_server_that_does_not_answer_is_store_unavailable_naming_it_without_the_password() -> (
    None
):
    async def scenario() -> str:
        with pytest.raises(StoreUnavailable) as refused:
            async with agentfleet.aio.open("postgresql://postgres:hunter2@127.0.0.1:9/x") as f:
                await f.list_jobs()
        return str(refused.value)

    said = asyncio.run(scenario())
    assert said.startswith("cannot connect to PostgreSQL at postgresql://postgres:[redacted]@")
    assert "127.0.0.1:9/x" in said and "Connection refused" in said
    assert "hunter2" not in said
