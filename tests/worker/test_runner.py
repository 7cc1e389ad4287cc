"""ProcessRun: its own process group, stdin from /dev/null, output captured, group killed."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from agentfleet.runner import ProcessRun, describe_exit
from tests.worker.helpers import PATIENCE, pid_alive, read_pid, wait_until


def run(cmd: str, **kwargs: object) -> ProcessRun:
    proc = ProcessRun(["/bin/sh", "-c", cmd], **kwargs)  # type: ignore[arg-type]
    proc.start()
    return proc


def test_output_exit_code_env_and_cwd(tmp_path: Path) -> None:
    exited = threading.Event()
    proc = run(
        'echo "out $GREETING"; echo err >&2; pwd; exit 3',
        env={**os.environ, "GREETING": "hi"},
        cwd=str(tmp_path),
        on_exit=exited.set,
    )
    assert proc.wait(PATIENCE) and exited.is_set()
    output = proc.output()
    assert output.exit_code == 3
    assert output.stdout == f"out hi\n{tmp_path}\n"
    assert output.stderr == "err\n"
    outcome = proc.outcome()
    assert (outcome.ok, outcome.error, outcome.retry) == (False, "exit code 3", True)


def test_stdin_is_dev_null_so_readers_do_not_hang() -> None:
    proc = run("cat; echo after-cat")
    assert proc.wait(PATIENCE)
    assert proc.output().stdout == "after-cat\n"
    assert proc.outcome().ok


def test_runs_in_its_own_process_group() -> None:
    proc = run("sleep 30")
    try:
        assert proc.pid is not None
        assert os.getpgid(proc.pid) == proc.pid != os.getpgid(0)
    finally:
        proc.kill()
        assert proc.wait(PATIENCE)
    assert proc.outcome().error == "killed by signal SIGKILL"


def test_terminate_reaches_grandchildren(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    proc = run(f"sleep 30 & echo $! > {pid_file}; wait")
    grandchild = wait_until(lambda: read_pid(pid_file), "the grandchild to start")
    proc.terminate()
    assert proc.wait(PATIENCE)
    wait_until(lambda: not pid_alive(grandchild), "the grandchild to die")


def test_leftovers_are_killed_when_the_leader_exits(tmp_path: Path) -> None:
    pid_file = tmp_path / "daemon.pid"
    proc = run(f"sleep 30 > /dev/null 2>&1 & echo $! > {pid_file}; echo bye")
    assert proc.wait(PATIENCE)
    assert proc.output().stdout == "bye\n"
    leftover = read_pid(pid_file)
    assert leftover is not None
    wait_until(lambda: not pid_alive(leftover), "the leftover process to die")


def test_describe_exit() -> None:
    assert describe_exit(0) == "exit code 0"
    assert describe_exit(-15) == "killed by signal SIGTERM"
