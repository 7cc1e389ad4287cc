"""The worker in a thread: running, finishing, heartbeats, timeouts, cancel, lost leases."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import agentfleet
from agentfleet import JobStatus, RunStatus, Worker
from agentfleet.errors import InvalidArgument
from agentfleet.tasks import TaskRegistry
from tests.conftest import StoreEnv
from tests.worker.helpers import pid_alive, read_pid, run_burst, wait_until, worker_thread

TASKS = TaskRegistry()


@TASKS.register
def add(a: int, b: int) -> int:
    return a + b


def fails(message: str) -> None:
    raise ValueError(message)


def unstorable() -> object:
    return object()


def test_shell_jobs_run_with_output_env_and_retries(store: StoreEnv, tmp_path: Path) -> None:
    fleet = store.fleet
    ok = fleet.enqueue(
        "shell",
        {
            "cmd": 'echo "$AGENTFLEET_JOB_ID $AGENTFLEET_LEASE_EPOCH $AGENTFLEET_ATTEMPT '
            '$AGENTFLEET_DB $GREETING"; pwd; echo warn >&2',
            "cwd": str(tmp_path),
            "env": {"GREETING": "hi"},
        },
    )
    argv = fleet.enqueue("shell", {"cmd": ["printf", "%s|", "a b", "c"]})
    bad = fleet.enqueue("shell", {"cmd": "echo trying; exit 3"}, max_attempts=2)
    worker = run_burst(fleet, name="w1", concurrency=2)
    assert fleet.get_job(ok.id).status is JobStatus.SUCCEEDED
    assert fleet.get_job(ok.id).result == {"exit_code": 0}
    [run] = fleet.runs(ok.id)
    assert (run.worker, run.exit_code, run.stderr) == ("w1", 0, "warn\n")
    assert run.stdout == f"{ok.id} 1 1  hi\n{tmp_path}\n"  # no AGENTFLEET_DB unless opted in
    assert fleet.runs(argv.id)[0].stdout == "a b|c|"
    failed = fleet.get_job(bad.id)
    assert (failed.status, failed.attempts, failed.error) == (JobStatus.FAILED, 2, "exit code 3")
    assert [(r.status, r.exit_code, r.stdout) for r in fleet.runs(bad.id)] == [
        (RunStatus.FAILED, 3, "trying\n")
    ] * 2
    assert worker.stats.succeeded == 2 and worker.stats.failed == 2


def test_sqlite_url_given_to_jobs_is_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with agentfleet.open("sqlite:///rel/fleet.db") as fleet:
        job = fleet.enqueue("shell", {"cmd": "echo $AGENTFLEET_DB", "cwd": "/", "db_access": True})
        run_burst(fleet)
        assert fleet.runs(job.id)[0].stdout == f"sqlite:///{tmp_path}/rel/fleet.db\n"


def test_python_tasks(sqlite_store: StoreEnv) -> None:
    with agentfleet.open(sqlite_store.url, tasks=TASKS) as fleet:
        by_name = fleet.enqueue("python", {"func": agentfleet.task_name(add), "args": [2, 3]})
        by_import = fleet.enqueue("python", {"func": "os.path:join", "args": ["a"], "kwargs": {}})
        raising = fleet.enqueue(
            "python", {"func": f"{__name__}:fails", "args": ["nope"]}, max_attempts=1
        )
        missing = fleet.enqueue("python", {"func": "no_such_module_xyz:f"})
        bad_result = fleet.enqueue("python", {"func": f"{__name__}:unstorable"})
        run_burst(fleet)
        assert fleet.get_job(by_name.id).result == 5
        assert fleet.get_job(by_import.id).result == "a"
        job = fleet.get_job(raising.id)
        assert (job.status, job.error) == (JobStatus.FAILED, "ValueError: nope")
        assert "Traceback" in (fleet.runs(raising.id)[0].stderr or "")
        for never_retried in (missing, bad_result):
            job = fleet.get_job(never_retried.id)
            assert (job.status, job.attempts) == (JobStatus.FAILED, 1)
        assert "cannot import module 'no_such_module_xyz'" in (
            fleet.get_job(missing.id).error or ""
        )
        assert "result cannot be stored" in (fleet.get_job(bad_result.id).error or "")


def test_missing_executable_fails_once_with_a_clear_reason(store: StoreEnv, tmp_path: Path) -> None:
    fleet = store.fleet
    agent = fleet.enqueue("codex", {"prompt": "hi", "env": {"PATH": str(tmp_path)}})
    shell = fleet.enqueue("shell", {"cmd": ["no-such-program-xyz", "x"]})
    gone = fleet.enqueue("shell", {"cmd": "true", "cwd": str(tmp_path / "missing")})
    run_burst(fleet)
    for job_id, fragment in (
        (agent.id, "engine 'codex' needs the 'codex' executable on PATH"),
        (shell.id, "needs the 'no-such-program-xyz' executable on PATH"),
        (gone.id, "does not exist on this worker"),
    ):
        job = fleet.get_job(job_id)
        assert (job.status, job.attempts) == (JobStatus.FAILED, 1)
        assert fragment in (job.error or "") and "Traceback" not in (job.error or "")


def test_approval_and_unknown_engines_are_never_claimed(store: StoreEnv) -> None:
    fleet = store.fleet
    plan = fleet.submit_plan(
        {"name": "p", "jobs": [{"name": "gate", "engine": "approval", "message": "ship it?"}]}
    )
    custom = fleet.enqueue("someone-elses-agent", {"prompt": "x"})
    shell = fleet.enqueue("shell", {"cmd": "true"})
    worker = run_burst(fleet)
    assert "approval" not in worker.engines
    assert fleet.get_job(shell.id).status is JobStatus.SUCCEEDED
    job = fleet.get_job(custom.id)
    assert (job.status, job.lease_epoch) == (JobStatus.QUEUED, 0)
    gate = fleet.get_job(plan.step("gate").job_id)
    assert gate.lease_epoch == 0 and fleet.get_plan(plan.id).pending == "gate#1"


def test_an_approval_job_outside_a_plan_is_refused(store: StoreEnv) -> None:
    with pytest.raises(InvalidArgument, match="only exists as a gate inside a plan"):
        store.fleet.enqueue("approval", {"message": "ship it?"})
    assert store.fleet.list_jobs() == []


def test_a_job_longer_than_its_ttl_stays_alive(store: StoreEnv) -> None:
    fleet = store.fleet
    job = fleet.enqueue("shell", {"cmd": "sleep 3.5; echo done"})
    run_burst(fleet, ttl=1.5, reap_every=0.1)  # heartbeat every 0.5 s, reaper racing it
    done = fleet.get_job(job.id)
    assert (done.status, done.attempts, done.lease_epoch) == (JobStatus.SUCCEEDED, 1, 1)
    assert [r.status for r in fleet.runs(job.id)] == [RunStatus.SUCCEEDED]
    assert "lease_expired" not in [e.kind for e in fleet.events(job.id)]


def test_timeout_kills_the_whole_group_including_grandchildren(
    store: StoreEnv, tmp_path: Path
) -> None:
    fleet = store.fleet
    pid_file = tmp_path / "grandchild.pid"
    # Both ignore SIGTERM, so the worker must escalate to SIGKILL after kill_grace.
    job = fleet.enqueue(
        "shell",
        {"cmd": f"trap '' TERM; sleep 60 & echo $! > {pid_file}; echo started; wait"},
        timeout=0.5,
        max_attempts=1,
    )
    run_burst(fleet, kill_grace=0.3)
    grandchild = read_pid(pid_file)
    assert grandchild is not None
    failed = fleet.get_job(job.id)
    assert (failed.status, failed.error) == (JobStatus.FAILED, "timeout")
    [run] = fleet.runs(job.id)
    assert (run.error, run.exit_code, run.stdout) == ("timeout", -9, "started\n")
    wait_until(lambda: not pid_alive(grandchild), "the grandchild to be gone")


def test_cancel_stops_a_running_job(store: StoreEnv, tmp_path: Path) -> None:
    fleet = store.fleet
    pid_file = tmp_path / "job.pid"
    job = fleet.enqueue("shell", {"cmd": f"echo $$ > {pid_file}; exec sleep 60"})
    with worker_thread(fleet, ttl=1.5):
        pid = wait_until(lambda: read_pid(pid_file), "the job to start")
        assert fleet.cancel_job(job.id) is True
        wait_until(lambda: fleet.get_job(job.id).is_terminal, "the job to end")
    ended = fleet.get_job(job.id)
    assert (ended.status, ended.error) == (JobStatus.CANCELLED, "cancelled")
    assert [r.status for r in fleet.runs(job.id)] == [RunStatus.CANCELLED]
    wait_until(lambda: not pid_alive(pid), "the job's process to be gone")


def test_lost_lease_kills_the_process_and_writes_nothing(
    sqlite_store: StoreEnv, tmp_path: Path
) -> None:
    fleet, clock = sqlite_store.fleet, sqlite_store.clock
    assert clock is not None
    pid_file = tmp_path / "job.pid"
    job = fleet.enqueue("shell", {"cmd": f"echo $$ > {pid_file}; exec sleep 60"})
    other = sqlite_store.open()
    with worker_thread(fleet, ttl=1.0) as worker:
        pid = wait_until(lambda: read_pid(pid_file), "the job to start")

        def take_over() -> object:
            clock.advance(60)  # the worker's lease looks expired to the store...
            return other.claim(job.id, worker="thief", ttl=600)  # ...and is taken over

        thief = wait_until(take_over, "another worker to take the job over")
        wait_until(lambda: not pid_alive(pid), "the fenced job's process to be killed")
        wait_until(lambda: worker.stats.lost == 1 and not worker.running_jobs, "the drop")
    current = fleet.get_job(job.id)
    assert (current.status, current.worker, current.lease_epoch) == (JobStatus.RUNNING, "thief", 2)
    assert [r.status for r in fleet.runs(job.id)] == [RunStatus.EXPIRED, RunStatus.RUNNING]
    other.complete(thief)  # type: ignore[arg-type]


def test_output_is_recorded_while_running(store: StoreEnv, tmp_path: Path) -> None:
    fleet = store.fleet
    gate = tmp_path / "go"
    job = fleet.enqueue(
        "shell", {"cmd": f"echo first; while [ ! -e {gate} ]; do sleep 0.05; done; echo second"}
    )
    with worker_thread(fleet, output_every=0.1):
        wait_until(lambda: [r.stdout for r in fleet.runs(job.id)] == ["first\n"], "partial output")
        gate.touch()
        wait_until(lambda: fleet.get_job(job.id).is_terminal, "the job to end")
    assert fleet.runs(job.id)[0].stdout == "first\nsecond\n"


def test_worker_presence_and_bad_options(store: StoreEnv) -> None:
    fleet = store.fleet
    with worker_thread(fleet, name="present", queues=["q1"], concurrency=2):
        wait_until(
            lambda: any(w.name == "present" and not w.stopped_at for w in fleet.list_workers()),
            "the worker to publish its presence",
        )
    [info] = [w for w in fleet.list_workers() if w.name == "present"]
    assert (info.queues, info.concurrency, info.pid) == (("q1",), 2, os.getpid())
    assert info.stopped_at is not None
    for kwargs in ({"concurrency": 0}, {"ttl": 0}, {"queues": "q"}, {"grace": -1}):
        with pytest.raises(InvalidArgument):
            Worker(fleet, **kwargs)  # type: ignore[arg-type]


def test_jobs_beyond_capacity_wait_their_turn(store: StoreEnv, tmp_path: Path) -> None:
    fleet = store.fleet
    log = tmp_path / "log"
    jobs = [
        fleet.enqueue("shell", {"cmd": f"echo start >> {log}; sleep 0.2; echo end >> {log}"})
        for _ in range(4)
    ]
    run_burst(fleet, concurrency=2)
    assert all(fleet.get_job(j.id).status is JobStatus.SUCCEEDED for j in jobs)
    depth, deepest = 0, 0
    for line in log.read_text().split():
        depth += 1 if line == "start" else -1
        deepest = max(deepest, depth)
    assert deepest <= 2
    assert json.dumps(fleet.get_job(jobs[0].id).result) == '{"exit_code": 0}'
