"""What a person gets wrong when joining a worker to a server, and a worker cut off with
nobody left to take its job: each answered in words, none left hanging."""

from __future__ import annotations

from pathlib import Path

from tests.remote.helpers import ADMIN, api, job, remote_worker, revoke, worker_token
from tests.web.live import free_port, serve_subprocess
from tests.worker.helpers import cli, wait_until


def test_a_burst_worker_with_a_wrong_address_says_so_and_exits(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    assert cli("--db", db, "init").returncode == 0
    token = worker_token(db, "box-a")
    closed = f"http://127.0.0.1:{free_port()}"
    away = cli("worker", "--server", closed, "--token", token, "--burst", timeout=60)
    assert away.returncode == 4, away
    assert "cannot be reached" in away.stderr and "check --server" in away.stderr
    with serve_subprocess(db, ADMIN, tmp_path) as server:
        https = server.url.replace("http://", "https://")
        mixed = cli("worker", "--server", https, "--token", token, "--burst", timeout=60)
    assert mixed.returncode == 2, mixed
    assert "did not speak TLS" in mixed.stderr and "http:// address" in mixed.stderr


def test_a_cut_off_workers_job_comes_back_with_no_other_worker_running(tmp_path: Path) -> None:
    """The server reaps expired leases itself: a revoked worker's job does not read
    `running` for ever when no worker is left to claim."""
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    assert cli("--db", db, "init").returncode == 0
    token = worker_token(db, "box-a")
    with (
        serve_subprocess(db, ADMIN, tmp_path) as server,
        api(server.url) as admin,
        remote_worker(server.url, token, tmp_path / "a", "--ttl", "2s") as box,
    ):
        box.wait_started()
        r = admin.post("/api/jobs", json={"engine": "shell", "payload": {"cmd": "sleep 60"}})
        job_id = r.json()["id"]
        wait_until(lambda: job(admin, job_id)["status"] == "running", "the job to start")
        revoke(db, "box-a")
        assert box.proc.wait(30) == 1
        assert "they come back after their lease's ttl" in box.log()
        assert "handing them back" not in box.log()
        back = wait_until(
            lambda: job(admin, job_id)["status"] == "queued" and job(admin, job_id),
            "the server to hand the job back",
        )
    assert (back["attempts"], back["lease_epoch"]) == (1, 1)  # back, not yet run again
