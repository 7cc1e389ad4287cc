"""Worker presence, fenced output records, and the wake-up wait."""

from __future__ import annotations

import threading

import pytest

from agentfleet import LeaseLost, RunOutput
from tests.conftest import PATIENCE, StoreEnv


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


def test_workers_report_presence_and_holdings(env: StoreEnv) -> None:
    fleet = env.fleet
    fleet.store.worker_seen("alpha", "host-1", 100, ["default", "gpu"], 4)
    fleet.store.worker_seen("beta", "host-2", 200, ["default"], 1)
    job = fleet.enqueue("shell", {})
    assert fleet.claim(job.id, worker="alpha") is not None
    workers = {w.name: w for w in fleet.store.list_workers()}
    assert workers["alpha"].queues == ("default", "gpu") and workers["alpha"].running == (job.id,)
    assert workers["beta"].running == () and workers["beta"].stopped_at is None
    first_seen, started = workers["alpha"].last_seen, workers["alpha"].started_at
    # The store's clock moves on, so a heartbeat (and a stop) must show a later time.
    env.move_past(max(first_seen, workers["beta"].last_seen))
    fleet.store.worker_seen("alpha", "host-1", 100, ["default", "gpu"], 4)
    fleet.store.worker_stopped("beta")
    workers = {w.name: w for w in fleet.store.list_workers()}
    assert workers["alpha"].last_seen > first_seen
    assert workers["alpha"].started_at == started  # the same worker, not a restart
    assert workers["beta"].stopped_at is not None
    assert workers["beta"].stopped_at > workers["beta"].last_seen


def test_a_worker_is_listed_as_it_reported_itself_and_restarts_with_a_new_pid(
    env: StoreEnv,
) -> None:
    fleet = env.fleet
    fleet.store.worker_seen("alpha", "host-1", 100, ["default"], 4)
    [first] = fleet.store.list_workers()
    assert (first.name, first.host, first.pid, first.queues, first.concurrency) == (
        "alpha",
        "host-1",
        100,
        ("default",),
        4,
    )
    assert first.started_at == first.last_seen  # first seen when it started
    env.move_past(first.last_seen)
    fleet.store.worker_seen("alpha", "host-2", 101, ["gpu"], 2)  # the same name, restarted
    [again] = fleet.store.list_workers()
    assert (again.host, again.pid, again.queues, again.concurrency) == ("host-2", 101, ("gpu",), 2)
    assert again.started_at == again.last_seen > first.started_at


def test_wait_for_jobs_wakes_on_enqueue_from_another_connection(env: StoreEnv) -> None:
    """PostgreSQL by NOTIFY, SQLite by the file's data_version; memory has no one else.

    The waiter waits far longer than the test allows itself: it must return True, woken by
    the enqueue, rather than False at its timeout. Jobs are enqueued until it wakes, so a
    first commit that lands before the waiter starts looking cannot leave it waiting."""
    if env.backend == "memory":
        assert env.fleet.store.wait_for_jobs(0.01) is False
        return
    waiter = env.open()
    assert waiter.store.wait_for_jobs(0.05) is False  # starts listening; nothing came
    woke: list[bool] = []
    returned = threading.Event()

    def wait() -> None:
        woke.append(waiter.store.wait_for_jobs(PATIENCE * 2))
        returned.set()

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    enqueued = 0
    while not returned.wait(0.1):
        env.fleet.enqueue("shell", {"n": enqueued})
        enqueued += 1
        assert enqueued < PATIENCE * 10, "the waiter never woke"
    thread.join(PATIENCE)
    assert woke == [True] and enqueued >= 1
    # A waiter that woke can wait again (PostgreSQL may still hold a later enqueue's notice).
    assert waiter.store.wait_for_jobs(0.05) in (True, False)
