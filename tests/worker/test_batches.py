"""The worker's batched path: python tasks completed with the next claim, one heartbeat
statement for every lease, task threads reused. Each job keeps its lease, epoch, run and
events; a completion the store refuses is written on its own and says why."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import agentfleet
from agentfleet import Fleet, JobStatus, RunStatus
from agentfleet.tasks import THREADS, TaskRegistry, TaskThreads
from tests.conftest import StoreEnv
from tests.worker.helpers import PATIENCE, cli, run_burst, wait_until, worker_thread


def _registry(fleet_url: str) -> TaskRegistry:
    registry = TaskRegistry()

    def ok(n: int) -> dict[str, int]:
        return {"n": n}

    def broken() -> None:
        raise ValueError("no")

    def not_json() -> object:
        return object()

    def cancel_own_queue() -> str:
        """Asks for its own job's cancel, then returns: the success comes too late."""
        with agentfleet.open(fleet_url) as other:
            for job in other.list_jobs(queue="selfcancel", status=JobStatus.RUNNING):
                other.cancel_job(job.id)
        return "done"

    for fn in (ok, broken, not_json, cancel_own_queue):
        registry.register(fn, fn.__name__)
    return registry


def _fleet(env: StoreEnv) -> Fleet:
    return agentfleet.open(env.url, tasks=_registry(env.url))


def test_a_batch_of_python_tasks_ends_each_job_as_its_own_call_did(store: StoreEnv) -> None:
    with _fleet(store) as fleet:
        good = [fleet.enqueue("python", {"func": "ok", "args": [i]}) for i in range(40)]
        bad = fleet.enqueue("python", {"func": "broken"}, max_attempts=1)
        odd = fleet.enqueue("python", {"func": "not_json"})
        shell = fleet.enqueue("shell", {"cmd": "echo out"})
        worker = run_burst(fleet, concurrency=16)

        for i, job in enumerate(good):
            done = fleet.get_job(job.id)
            assert (done.status, done.result) == (JobStatus.SUCCEEDED, {"n": i})
            (run,) = fleet.runs(job.id)
            assert run.status is RunStatus.SUCCEEDED and run.epoch == 1
            assert run.finished_at is not None and run.worker == worker.name
            kinds = [e.kind for e in fleet.events(job_id=job.id)]
            assert kinds[-2:] == ["claimed", "succeeded"], kinds
        failed = fleet.get_job(bad.id)
        assert failed.status is JobStatus.FAILED and "ValueError: no" in (failed.error or "")
        (run,) = fleet.runs(bad.id)
        assert "Traceback" in (run.stderr or "")
        rejected = fleet.get_job(odd.id)
        assert rejected.status is JobStatus.FAILED
        assert "result cannot be stored" in (rejected.error or "")
        echoed = fleet.get_job(shell.id)
        assert echoed.status is JobStatus.SUCCEEDED
        assert fleet.runs(shell.id)[0].stdout == "out\n"  # a process's output is kept
        assert worker.stats.succeeded == 41 and worker.stats.failed == 2
        assert worker.stats.claimed == 43 and worker.stats.lost == 0


def test_a_task_cancelled_before_its_batch_is_written_ends_cancelled(store: StoreEnv) -> None:
    """The batch refuses its completion (a cancel is asked for); written on its own, the
    job ends cancelled, as the person who cancelled it was told."""
    with _fleet(store) as fleet:
        job = fleet.enqueue("python", {"func": "cancel_own_queue"}, queue="selfcancel")
        others = [
            fleet.enqueue("python", {"func": "ok", "args": [i]}, queue="selfcancel")
            for i in range(5)
        ]
        worker = run_burst(fleet, concurrency=8, queues=["selfcancel"])
        assert fleet.get_job(job.id).status is JobStatus.CANCELLED
        assert fleet.runs(job.id)[0].status is RunStatus.CANCELLED
        statuses = {fleet.get_job(other.id).status for other in others}
        assert statuses <= {JobStatus.SUCCEEDED, JobStatus.CANCELLED}
        assert worker.stats.cancelled >= 1 and worker.stats.lost == 0


def test_one_heartbeat_renews_every_running_lease_at_once(sqlite_store: StoreEnv) -> None:
    """On SQLite the store's clock is read once per transaction, so leases renewed by one
    statement share one expiry; renewed one by one, each would get its own."""
    fleet = sqlite_store.fleet
    jobs = [fleet.enqueue("shell", {"cmd": "sleep 30"}) for _ in range(4)]
    with worker_thread(fleet, concurrency=4, ttl=3.0) as worker:
        wait_until(lambda: len(worker.running_jobs) == 4, "four running jobs")
        first = {job.id: fleet.get_job(job.id).lease_expires_at for job in jobs}

        def renewed() -> dict[int, Any] | None:
            now = {job.id: fleet.get_job(job.id).lease_expires_at for job in jobs}
            return now if all(now[i] != first[i] for i in now) else None

        expiries = wait_until(renewed, "a heartbeat")
        assert len(set(expiries.values())) == 1, expiries
        for job in jobs:
            fleet.cancel_job(job.id)


def test_task_threads_are_reused_and_a_task_never_waits_behind_blocked_ones() -> None:
    threads = TaskThreads(size=2, idle_exit=PATIENCE)
    names: list[int] = []
    done = threading.Semaphore(0)

    def note() -> None:
        names.append(threading.get_ident())
        done.release()

    for _ in range(20):  # one at a time: each finds the last one's thread idle
        threads.submit(note)
        assert done.acquire(timeout=PATIENCE)
        time.sleep(0.001)  # let that thread get back to waiting
    assert len(set(names)) <= 2, "a thread was started per task"

    release = threading.Event()
    started = threading.Semaphore(0)

    def hold() -> None:
        started.release()
        release.wait(PATIENCE)

    for _ in range(5):  # five at once, each blocking: beyond the two threads, the watchdog
        threads.submit(hold)  # sees no progress and starts a thread for each waiting one
    for _ in range(5):
        assert started.acquire(timeout=PATIENCE), "a task waited behind a blocked one"
    release.set()


def test_idle_task_threads_leave() -> None:
    threads = TaskThreads(idle_exit=0.05)
    ran = threading.Event()
    before = threading.active_count()
    threads.submit(ran.set)
    assert ran.wait(PATIENCE)
    wait_until(lambda: threading.active_count() <= before, "the idle thread to leave")
    assert THREADS is not threads  # the process-wide threads are a different set


def test_python_tasks_log_a_line_per_batch_and_each_job_with_verbose(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    with agentfleet.open(url) as fleet:
        first = [
            fleet.enqueue("python", {"func": "os.path:join", "args": ["a", "b"]}) for _ in range(3)
        ]
        plain = cli("--db", url, "worker", "--burst", "--concurrency", "8")
        assert plain.returncode == 0, plain.stderr
        ids = [job.id for job in first]
        assert f"3 python task(s) succeeded (jobs {ids[0]}-{ids[-1]})" in plain.stderr
        assert f"job {ids[0]} claimed" not in plain.stderr
        assert all(fleet.get_job(i).result == "a/b" for i in ids)

        again = fleet.enqueue("python", {"func": "os.path:join", "args": ["c", "d"]})
        verbose = cli("--db", url, "worker", "--burst", "--verbose")
        assert verbose.returncode == 0, verbose.stderr
        assert f"job {again.id} claimed (python" in verbose.stderr
        assert f"job {again.id} succeeded" in verbose.stderr

    both = cli("--db", url, "worker", "--quiet", "--verbose")
    assert both.returncode != 0 and "--quiet and --verbose" in both.stderr
