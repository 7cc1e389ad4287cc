"""A server that goes away and comes back: the remote worker waits and tries again, its
job keeps its lease and finishes once, with its epoch."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from tests.remote.helpers import ADMIN, api, job, remote_worker, runs, worker_token
from tests.web.live import free_port, serve_subprocess
from tests.worker.helpers import cli, wait_until

HOLD = 'echo "at $AGENTFLEET_LEASE_EPOCH"; sleep 4'


def test_a_server_restarted_mid_job_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    assert cli("--db", db, "init").returncode == 0
    token = worker_token(db, "box-r")
    port = free_port()
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    with ExitStack() as stack:
        with (
            serve_subprocess(db, ADMIN, tmp_path / "first", port=port) as first,
            api(first.url) as admin,
        ):
            url = first.url
            box = stack.enter_context(remote_worker(url, token, tmp_path / "worker", "--ttl", "9s"))
            box.wait_started()
            r = admin.post("/api/jobs", json={"engine": "shell", "payload": {"cmd": HOLD}})
            job_id = r.json()["id"]
            wait_until(lambda: job(admin, job_id)["status"] == "running", "the job to start")
        # The server is down now, the job still running on the worker.
        wait_until(lambda: "cannot be reached" in box.log(), "the worker to notice")
        with serve_subprocess(db, ADMIN, tmp_path / "second", port=port), api(url) as admin:
            done = wait_until(
                lambda: (
                    job(admin, job_id)["status"] in ("succeeded", "failed") and job(admin, job_id)
                ),
                "the job to finish",
            )
            assert (done["status"], done["lease_epoch"]) == ("succeeded", 1), box.log()
            (run,) = runs(admin, job_id, output=True)
            assert (run["epoch"], run["stdout"].strip()) == (1, "at 1")
            assert box.proc.poll() is None  # it waited for the server, it did not give up
