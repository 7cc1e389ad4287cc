"""Worker processes and signals: SIGTERM hands jobs back at once; SIGKILL loses the lease."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from agentfleet import JobStatus, Lease, LeaseLost, RunOutput, RunStatus
from tests.conftest import StoreEnv
from tests.worker.helpers import (
    PATIENCE,
    kill_group,
    pid_alive,
    read_pid,
    spawn_worker,
    stop_process,
    wait_until,
    worker_thread,
)


def running(env: StoreEnv, *job_ids: int) -> bool:
    return all(env.fleet.get_job(j).status is JobStatus.RUNNING for j in job_ids)


def test_sigterm_lets_short_jobs_finish_and_hands_the_rest_back_at_once(
    store: StoreEnv, tmp_path: Path
) -> None:
    fleet = store.fleet
    short = fleet.enqueue("shell", {"cmd": "sleep 0.5; echo finished"})
    long_pid = tmp_path / "long.pid"
    long = fleet.enqueue("shell", {"cmd": f"echo $$ > {long_pid}; exec sleep 60"})
    log = tmp_path / "worker.log"
    proc = spawn_worker(
        store.url,
        "--concurrency",
        "2",
        "--ttl",
        "60s",
        "--grace",
        "2.5s",
        "--name",
        "w1",
        log=log,
    )
    try:
        wait_until(lambda: running(store, short.id, long.id), "both jobs to run")
        pid = wait_until(lambda: read_pid(long_pid), "the long job's process")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(PATIENCE) == 0, log.read_text()
    finally:
        stop_process(proc)
    assert fleet.get_job(short.id).status is JobStatus.SUCCEEDED
    handed_back = fleet.get_job(long.id)
    # Queued again with its attempt given back, although its 60 s lease had not run out.
    assert (handed_back.status, handed_back.attempts) == (JobStatus.QUEUED, 0)
    assert [r.status for r in fleet.runs(long.id)] == [RunStatus.RELEASED]
    assert "released" in [e.kind for e in fleet.events(long.id)]
    assert not pid_alive(pid)
    [info] = fleet.list_workers()
    assert info.stopped_at is not None


def test_a_second_signal_stops_at_once_and_still_hands_back(
    sqlite_store: StoreEnv, tmp_path: Path
) -> None:
    fleet = sqlite_store.fleet
    job = fleet.enqueue("shell", {"cmd": "trap '' TERM; sleep 60"})
    log = tmp_path / "worker.log"
    proc = spawn_worker(sqlite_store.url, "--ttl", "60s", "--grace", "10m", log=log)
    try:
        wait_until(lambda: running(sqlite_store, job.id), "the job to run")
        proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "stopping:" in log.read_text(), "the worker to start stopping")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(PATIENCE) == 0, log.read_text()  # far sooner than the 10 min grace
    finally:
        stop_process(proc)
    stopped = fleet.get_job(job.id)
    assert (stopped.status, stopped.attempts) == (JobStatus.QUEUED, 0)
    assert "stopping now" in log.read_text()


def test_sigkilled_worker_job_comes_back_and_its_late_writes_are_refused(
    store: StoreEnv, tmp_path: Path
) -> None:
    fleet = store.fleet
    pid_file = tmp_path / "first.pid"
    job = fleet.enqueue(
        "shell",
        {
            "cmd": f'if [ "$AGENTFLEET_ATTEMPT" = 1 ]; then echo $$ > {pid_file}; '
            'exec sleep 60; fi; echo "second try on epoch $AGENTFLEET_LEASE_EPOCH"'
        },
    )
    log = tmp_path / "worker.log"
    proc = spawn_worker(store.url, "--ttl", "2s", "--name", "doomed", log=log)
    try:
        orphan = wait_until(lambda: read_pid(pid_file), "the first attempt to start")
        first = fleet.get_job(job.id)
        [first_run] = fleet.runs(job.id)
        proc.send_signal(signal.SIGKILL)
        proc.wait(PATIENCE)
    finally:
        stop_process(proc)
    stale = Lease(
        job_id=job.id,
        epoch=first.lease_epoch,
        worker="doomed",
        expires_at=first.lease_expires_at,  # type: ignore[arg-type]
        attempt=first_run.attempt,
        run_id=first_run.id,
        ttl=2.0,
    )
    try:
        with worker_thread(fleet, name="rescuer"):
            wait_until(lambda: fleet.get_job(job.id).is_terminal, "another worker to finish it")
    finally:
        kill_group(orphan)
    done = fleet.get_job(job.id)
    assert (done.status, done.worker, done.lease_epoch) == (JobStatus.SUCCEEDED, "rescuer", 2)
    runs = fleet.runs(job.id)
    assert [(r.worker, r.status) for r in runs] == [
        ("doomed", RunStatus.EXPIRED),
        ("rescuer", RunStatus.SUCCEEDED),
    ]
    assert runs[1].stdout == "second try on epoch 2\n"
    for late_write in (
        lambda: fleet.complete(stale, result={"by": "doomed"}),
        lambda: fleet.fail(stale, "late"),
        lambda: fleet.record_output(stale, RunOutput(stdout="late")),
        lambda: fleet.renew(stale),
    ):
        with pytest.raises(LeaseLost):
            late_write()
    assert fleet.get_job(job.id).result == {"exit_code": 0}
