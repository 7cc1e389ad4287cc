"""Worker presence, fenced output records, and the wake-up wait."""

from __future__ import annotations

import threading
import time

import pytest

from agentfleet import Fleet, LeaseLost, RunOutput
from tests.conftest import StoreEnv


def test_output_is_recorded_while_running_and_fenced(env: StoreEnv) -> None:
    fleet = env.fleet
    job = fleet.enqueue("shell", {})
    lease = fleet.claim(job.id, worker="w", ttl=env.short_ttl)
    assert lease is not None
    fleet.store.record_output(lease, RunOutput(stdout="half way\n", stderr=""))
    assert fleet.runs(job.id)[0].stdout == "half way\n"
    env.expire()
    successor = fleet.claim(job.id, worker="w2")
    assert successor is not None
    with pytest.raises(LeaseLost):
        fleet.store.record_output(lease, RunOutput(stdout="late\n"))
    fleet.complete(successor, output=RunOutput(exit_code=0, stdout="done\n", stderr="warn\n"))
    first, second = fleet.runs(job.id)
    assert first.stdout == "half way\n"
    assert (second.exit_code, second.stdout, second.stderr) == (0, "done\n", "warn\n")


def test_workers_report_presence_and_holdings(fleet: Fleet) -> None:
    fleet.store.worker_seen("alpha", "host-1", 100, ["default", "gpu"], 4)
    fleet.store.worker_seen("beta", "host-2", 200, ["default"], 1)
    job = fleet.enqueue("shell", {})
    assert fleet.claim(job.id, worker="alpha") is not None
    workers = {w.name: w for w in fleet.store.list_workers()}
    assert workers["alpha"].queues == ("default", "gpu") and workers["alpha"].running == (job.id,)
    assert workers["beta"].running == () and workers["beta"].stopped_at is None
    first_seen = workers["alpha"].last_seen
    time.sleep(0.01)
    fleet.store.worker_seen("alpha", "host-1", 100, ["default", "gpu"], 4)
    fleet.store.worker_stopped("beta")
    workers = {w.name: w for w in fleet.store.list_workers()}
    assert workers["alpha"].last_seen >= first_seen
    assert workers["beta"].stopped_at is not None


def test_wait_for_jobs_wakes_on_enqueue_from_another_connection(env: StoreEnv) -> None:
    """PostgreSQL by NOTIFY, SQLite by the file's data_version; memory has no one else."""
    if env.backend == "memory":
        assert env.fleet.store.wait_for_jobs(0.01) is False
        return
    waiter = env.open()
    assert waiter.store.wait_for_jobs(0.05) is False  # starts listening
    woke: list[float] = []

    def wait() -> None:
        start = time.monotonic()
        if waiter.store.wait_for_jobs(5.0):
            woke.append(time.monotonic() - start)

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.2)
    env.fleet.enqueue("shell", {})
    thread.join()
    assert woke and woke[0] < 2.0
