"""A job's stdin is /dev/null whatever the worker's stdin is: a job that reads stdin (as
agent CLIs do when it is not a terminal) gets end-of-file at once, never the worker's input,
and never waits on it.

These start the worker with a stdin that stays open (a pipe holding some text, whose write
end the test keeps open): a job that inherited it would print that text and then wait
forever. (The test runner's own stdin is /dev/null already, so a job started from inside
the test process would prove nothing.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from agentfleet import JobStatus
from tests.conftest import PATIENCE, StoreEnv
from tests.worker.helpers import child_env, stop_process, wait_until

READS_STDIN = "cat; echo after-cat"
WORKER_INPUT = "text on the worker's stdin\n"

RUN_ONE_JOB = f"""
import json
from agentfleet.runner import ProcessRun
run = ProcessRun(["/bin/sh", "-c", {READS_STDIN!r}])
run.start()
finished = run.wait({PATIENCE})
if not finished:
    run.kill()
    run.wait({PATIENCE})
print(json.dumps({{"finished": finished, "stdout": run.output().stdout}}), flush=True)
"""


def _open_stdin(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(WORKER_INPUT.encode())
    proc.stdin.flush()  # ... and the write end stays open until the test ends


def test_a_worker_with_an_open_stdin_gives_its_jobs_eof(
    sqlite_store: StoreEnv, tmp_path: Path
) -> None:
    fleet = sqlite_store.fleet
    job = fleet.enqueue("shell", {"cmd": READS_STDIN}, timeout=PATIENCE * 2, max_attempts=1)
    log = tmp_path / "worker.log"
    cli = [sys.executable, "-m", "agentfleet.cli", "--db", sqlite_store.url]
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [*cli, "worker", "--name", "piped", "--burst"],
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _open_stdin(worker)
        wait_until(
            lambda: fleet.get_job(job.id).status is JobStatus.SUCCEEDED,
            "the job that reads stdin to finish",
        )
        [run] = fleet.runs(job.id)
        assert (run.exit_code, run.stdout) == (0, "after-cat\n"), log.read_text()
    finally:
        stop_process(worker)
        assert worker.stdin is not None
        worker.stdin.close()


def test_a_job_process_gets_eof_when_its_parent_stdin_is_open() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", RUN_ONE_JOB],
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        _open_stdin(parent)
        assert parent.stdout is not None
        report = json.loads(parent.stdout.readline())
        assert report == {"finished": True, "stdout": "after-cat\n"}
        assert parent.wait(PATIENCE) == 0
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(PATIENCE)
        assert parent.stdin is not None
        parent.stdin.close()
