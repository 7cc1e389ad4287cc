"""A worker waiting out --kill-grace after a job's timeout sleeps; it does not spin.

The timed-out job ignores SIGTERM, so the worker must wait the whole grace before SIGKILL.
Its CPU time during that wait (read from /proc) must be a small fraction of the wall time:
a loop that keeps the passed deadline in its wake-up list burns a whole core.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import agentfleet
from agentfleet import JobStatus
from tests.worker.helpers import child_env, wait_until

GRACE = 6.0
SAMPLE = 2.0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_waiting_out_the_kill_grace_costs_little_cpu(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    log = tmp_path / "worker.log"
    with agentfleet.open(url) as fleet:
        job = fleet.enqueue("shell", {"cmd": "trap '' TERM; sleep 60"}, timeout=0.5, max_attempts=1)
    with log.open("w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "agentfleet.cli", "--db", url, "worker", "--burst",
             "--kill-grace", f"{GRACE}s"],
            stdout=out, stderr=subprocess.STDOUT, env=child_env(),
        )  # fmt: skip
    try:
        wait_until(lambda: "hit its timeout" in log.read_text(), "the job's timeout")
        before, started = _cpu_seconds(worker.pid), time.monotonic()
        time.sleep(SAMPLE)  # well inside the grace: the job still ignores its SIGTERM
        spent, wall = _cpu_seconds(worker.pid) - before, time.monotonic() - started
        assert worker.poll() is None, "the grace ended early"
        worker.wait(timeout=60)
        with agentfleet.open(url) as fleet:
            assert fleet.get_job(job.id).status is JobStatus.FAILED
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert spent < 0.25 * wall, f"the worker burnt {spent:.2f} s of CPU in {wall:.2f} s"
