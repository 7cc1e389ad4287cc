"""Worker presence, fenced output records, and the wake-up wait."""

from __future__ import annotations

import os
import threading

import pytest

from agentfleet import InvalidArgument, LeaseLost, RunOutput
from tests.conftest import PATIENCE, StoreEnv


def test_output_is_recorded_while_running_and_fenced(env: StoreEnv) -> None:
    fleet = env.fleet
    job = fleet.enqueue("shell", {})
    lease = fleet.claim(job.id, worker="w", ttl=env.short_ttl)
    assert lease is not None
    fleet.store.record_output(lease, RunOutput(stdout="half way\n", stderr=""))
    assert fleet.runs(job.id)[0].stdout == "half way\n"
    spent = {"engine": "claude", "cost_usd": 0.25}  # what a running agent reported so far
    fleet.store.record_output(lease, RunOutput(stdout="half way\n", agent=spent))
    assert fleet.runs(job.id)[0].agent == spent
    assert fleet.usage(job_id=job.id).cost_usd == 0.25
    env.expire()
    successor = fleet.claim(job.id, worker="w2")
    assert successor is not None
    with pytest.raises(LeaseLost):
        fleet.store.record_output(lease, RunOutput(stdout="late\n"))
    fleet.complete(successor, output=RunOutput(exit_code=0, stdout="done\n", stderr="warn\n"))
    first, second = fleet.runs(job.id)
    assert first.stdout == "half way\n"
    assert (second.exit_code, second.stdout, second.stderr) == (0, "done\n", "warn\n")


def test_an_attempts_host_and_process_group_are_recorded_and_fenced(env: StoreEnv) -> None:
    fleet = env.fleet
    job = fleet.enqueue("shell", {})
    lease = fleet.claim(job.id, worker="w", ttl=env.short_ttl)
    assert lease is not None
    [fresh] = fleet.runs(job.id)
    assert (fresh.host, fresh.pgid) == (None, None)
    fleet.record_process(lease, host="box-1", pgid=4321)
    assert (fleet.runs(job.id)[0].host, fleet.runs(job.id)[0].pgid) == ("box-1", 4321)
    env.expire()
    successor = fleet.claim(job.id, worker="w2")
    assert successor is not None
    with pytest.raises(LeaseLost):
        fleet.record_process(lease, host="box-1", pgid=999)
    fleet.record_process(successor, host="box-2", pgid=77)
    first, second = fleet.runs(job.id)
    assert (first.host, first.pgid, second.host, second.pgid) == ("box-1", 4321, "box-2", 77)


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


def test_a_commit_between_two_waits_wakes_the_next_one(env: StoreEnv) -> None:
    """A worker is busy between two waits (claiming, starting a job): an enqueue that lands
    then must wake its next wait at once, not be missed until the poll comes round."""
    if env.backend == "memory":
        assert env.fleet.store.wait_for_jobs(0.0) is False
        return
    waiter = env.open()
    assert waiter.store.wait_for_jobs(0.0) is False  # starts watching; nothing came
    env.fleet.enqueue("shell", {})
    # SQLite's data_version has changed the moment the commit returns; a notification
    # travels, so PostgreSQL is given time, which it never needs when it works.
    assert waiter.store.wait_for_jobs(0.0 if env.backend == "sqlite" else PATIENCE) is True
    assert waiter.store.wait_for_jobs(0.0) is False  # and the wake is used up


def test_a_wait_returns_when_its_interrupt_becomes_readable(env: StoreEnv) -> None:
    """The worker waits in its loop and must still see a stop request at once: the pipe
    its signal handler writes to ends the wait."""
    read, write = os.pipe()
    returned: list[bool] = []
    waiter = env.open()
    waiter.store.wait_for_jobs(0.0)
    thread = threading.Thread(
        target=lambda: returned.append(waiter.wait_for_jobs(3600.0, interrupt=read)),
        daemon=True,
    )
    try:
        thread.start()
        os.write(write, b"!")
        thread.join(PATIENCE)
        assert not thread.is_alive(), "the wait did not end when its interrupt was readable"
        assert returned == [False]
    finally:
        os.close(write)
        if not thread.is_alive():
            os.close(read)


@pytest.mark.parametrize("interrupt", [-1, True, 1.5, "3"])
def test_a_wait_names_its_interrupt_by_a_file_descriptor(env: StoreEnv, interrupt: object) -> None:
    with pytest.raises(InvalidArgument, match="interrupt must be a file descriptor"):
        env.fleet.wait_for_jobs(0.0, interrupt=interrupt)  # type: ignore[arg-type]
