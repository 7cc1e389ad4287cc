"""A job never outlives its worker: real `agentfleet worker` processes, real job processes.

A SIGKILLed worker's job dies with it, grandchildren and processes that left the group
included; a stopped worker's job is killed before its lease can run out; a worker that
takes a job over on the same host ends the earlier attempt's processes first, and leaves
alone a group it cannot show is that attempt's. The tests own every process they signal:
each worker is started in a session of its own, the rest are its descendants.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from agentfleet import JobStatus, RunStatus
from agentfleet.runner import LEASE_RAN_OUT_ERROR
from tests.conftest import StoreEnv
from tests.worker.helpers import (
    PATIENCE,
    child_env,
    kill_group,
    pid_alive,
    read_pid,
    stop_process,
    wait_until,
    worker_thread,
)


def spawn_own_worker(url: str, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """`agentfleet worker` in a session of its own: the test owns its process group."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "agentfleet.cli", "--db", url, "worker", *args],
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@contextlib.contextmanager
def cleaned_up(pid_files: list[Path]) -> Iterator[None]:
    """However the test ends, kill what its job left (only pids its own worker started)."""
    try:
        yield
    finally:
        for path in pid_files:
            pid = read_pid(path)
            if pid is None or not pid_alive(pid):
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getpgid(pid) == pid:
                    kill_group(pid)  # a group this test's worker made: the job's, or the escapee's
                else:
                    os.kill(pid, signal.SIGKILL)


def family_script(tmp: Path, *, beat: Path) -> tuple[str, list[Path]]:
    """A job that records its pid, starts a grandchild in its group and one that leaves
    the group (setsid, its parent gone: a double fork), then beats forever."""
    leader, child, escaped = tmp / "leader.pid", tmp / "child.pid", tmp / "escaped.pid"
    cmd = (
        f"echo $$ > {leader}; "
        f"sleep 1000 & echo $! > {child}; "
        f"( setsid sleep 1000 & echo $! > {escaped} ); "
        f"while true; do date +%s.%N >> {beat}; sleep 0.05; done"
    )
    return cmd, [leader, child, escaped]


def test_a_sigkilled_workers_job_dies_with_it_grandchildren_included(
    store: StoreEnv, tmp_path: Path
) -> None:
    fleet = store.fleet
    beat = tmp_path / "beat"
    cmd, pid_files = family_script(tmp_path, beat=beat)
    job = fleet.enqueue("shell", {"cmd": cmd})
    proc = spawn_own_worker(store.url, "--ttl", "60s", log=tmp_path / "worker.log")
    with cleaned_up(pid_files):
        try:
            pids = [wait_until(lambda p=p: read_pid(p), f"{p.name}") for p in pid_files]
            wait_until(beat.exists, "the job to beat")
            leader = pids[0]
            assert os.getpgid(pids[1]) == leader
            wait_until(lambda: os.getpgid(pids[2]) != leader, "the escapee to leave the group")
            run = wait_until(lambda: fleet.runs(job.id)[0].pgid, "the run's process group")
            assert run == leader
            assert fleet.runs(job.id)[0].host == socket.gethostname()
            proc.send_signal(signal.SIGKILL)
            proc.wait(PATIENCE)
            for pid in pids:
                wait_until(lambda pid=pid: not pid_alive(pid), f"process {pid} to die")
        finally:
            stop_process(proc)
    # The lease is still the dead worker's (60 s): nothing else ran the job meanwhile.
    assert fleet.get_job(job.id).status is JobStatus.RUNNING


def test_a_stopped_workers_job_is_killed_before_its_lease_runs_out(
    sqlite_store: StoreEnv, tmp_path: Path
) -> None:
    fleet = sqlite_store.fleet
    beat = tmp_path / "beat"
    cmd, pid_files = family_script(tmp_path, beat=beat)
    done = tmp_path / "second.done"
    job = fleet.enqueue(
        "shell",
        {"cmd": f'if [ "$AGENTFLEET_ATTEMPT" = 1 ]; then {cmd}; fi; touch {done}'},
        max_attempts=2,
    )
    proc = spawn_own_worker(
        sqlite_store.url, "--ttl", "6s", "--name", "sleepy", log=tmp_path / "worker.log"
    )
    with cleaned_up(pid_files):
        try:
            pids = [wait_until(lambda p=p: read_pid(p), f"{p.name}") for p in pid_files]
            wait_until(beat.exists, "the job to beat")
            proc.send_signal(signal.SIGSTOP)
            try:
                for pid in pids:
                    wait_until(lambda pid=pid: not pid_alive(pid), f"process {pid} to die")
                # Killed while its first lease still held: nobody could have taken it over.
                held = fleet.get_job(job.id)
                assert (held.status, held.lease_epoch, held.worker) == (
                    JobStatus.RUNNING,
                    1,
                    "sleepy",
                )
                assert held.lease_expires_at is not None
                last_beat = float(beat.read_text().split()[-1])
                assert last_beat < held.lease_expires_at.timestamp()
            finally:
                proc.send_signal(signal.SIGCONT)
            wait_until(lambda: fleet.get_job(job.id).is_terminal, "the job to end")
        finally:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(PATIENCE)
            stop_process(proc)
    first, second = fleet.runs(job.id)
    assert first.status in (RunStatus.FAILED, RunStatus.EXPIRED)
    if first.status is RunStatus.FAILED:  # the worker woke before its lease was reaped
        assert first.error == LEASE_RAN_OUT_ERROR
    assert second.status is RunStatus.SUCCEEDED and done.exists()


def _leftover(job_id: int, epoch: int, *, marked: bool) -> subprocess.Popen[bytes]:
    """A process group this test starts to play an earlier attempt's leftovers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTFLEET_")}
    if marked:
        env.update(AGENTFLEET_JOB_ID=str(job_id), AGENTFLEET_LEASE_EPOCH=str(epoch))
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(1000)"],
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def _claim_and_abandon(store: StoreEnv, job_id: int, pgid: int) -> None:
    """Attempt 1 is claimed by a worker that 'died' here, its process group recorded."""
    lease = store.fleet.claim(job_id, worker="gone", ttl=0.5)
    assert lease is not None
    store.fleet.record_process(lease, host=socket.gethostname(), pgid=pgid)
    store.expire_lease(job_id)


ALIVE = (
    "if [ -e /proc/{pid} ] && ! grep -q zombie /proc/{pid}/status 2>/dev/null; "
    "then echo alive; else echo gone; fi > {out}"
)


def test_a_takeover_here_ends_the_earlier_attempts_processes_first(
    sqlite_store: StoreEnv, tmp_path: Path
) -> None:
    fleet = sqlite_store.fleet
    seen, pid_file = tmp_path / "seen", tmp_path / "leftover.pid"
    job = fleet.enqueue("shell", {"cmd": ALIVE.format(pid=f"$(cat {pid_file})", out=seen)})
    leftover = _leftover(job.id, 1, marked=True)
    try:
        pid_file.write_text(f"{leftover.pid}\n")
        _claim_and_abandon(sqlite_store, job.id, leftover.pid)
        with worker_thread(fleet, name="heir", kill_grace=5.0):
            wait_until(lambda: fleet.get_job(job.id).is_terminal, "the takeover to finish")
        assert seen.read_text() == "gone\n"  # ended before the new attempt started
        assert leftover.wait(PATIENCE) == -signal.SIGTERM  # asked first, not shot at once
    finally:
        kill_group(leftover.pid)
        leftover.wait(PATIENCE)
    done = fleet.get_job(job.id)
    assert (done.status, done.lease_epoch) == (JobStatus.SUCCEEDED, 2)


def test_a_group_not_shown_to_be_the_attempts_is_left_alone(
    sqlite_store: StoreEnv, tmp_path: Path
) -> None:
    fleet = sqlite_store.fleet
    stranger = _leftover(0, 0, marked=False)  # the recorded group id, now someone else's
    try:
        job = fleet.enqueue("shell", {"cmd": "echo ran"})
        _claim_and_abandon(sqlite_store, job.id, stranger.pid)
        with worker_thread(fleet, name="heir", kill_grace=0.5):
            wait_until(lambda: fleet.get_job(job.id).is_terminal, "the takeover to finish")
        assert fleet.get_job(job.id).status is JobStatus.SUCCEEDED
        assert stranger.poll() is None and pid_alive(stranger.pid)
    finally:
        kill_group(stranger.pid)
        stranger.wait(PATIENCE)
