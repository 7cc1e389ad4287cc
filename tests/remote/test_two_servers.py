"""Many servers, one database: two `agentfleet serve` on one PostgreSQL database, and a
remote worker moved from one to the other mid-job (by a proxy, as a load balancer would).
The job finishes with its epoch through the second server, the first one stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests import pg
from tests.remote.helpers import ADMIN, api, job, remote_worker, runs, worker_token
from tests.remote.proxy import Proxy
from tests.web.live import serve_subprocess
from tests.worker.helpers import cli, wait_until

HOLD = 'echo "started at $AGENTFLEET_LEASE_EPOCH"; sleep 4; echo "done at $AGENTFLEET_LEASE_EPOCH"'


@pytest.fixture
def pg_db() -> Iterator[str]:
    problem = pg.postgres_problem()
    if problem is not None:
        pytest.skip(f"PostgreSQL tests skipped: {problem}")
    url = pg.create_database("agentfleet_remote")
    try:
        yield url
    finally:
        pg.drop_database(url)


def test_a_worker_moved_to_another_server_mid_job_finishes_it_there(
    pg_db: str, tmp_path: Path
) -> None:
    assert cli("--db", pg_db, "init").returncode == 0
    token = worker_token(pg_db, "box-pg")
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    with (
        serve_subprocess(pg_db, ADMIN, tmp_path / "one") as one,
        serve_subprocess(pg_db, ADMIN, tmp_path / "two") as two,
        api(two.url) as admin,
    ):
        port_one, port_two = (int(urlsplit(s.url).port or 0) for s in (one, two))
        proxy = Proxy(port_one)
        try:
            with remote_worker(proxy.url, token, tmp_path / "worker", "--ttl", "2s") as box:
                box.wait_started()
                r = admin.post("/api/jobs", json={"engine": "shell", "payload": {"cmd": HOLD}})
                job_id = r.json()["id"]
                wait_until(lambda: job(admin, job_id)["status"] == "running", "the job to start")
                assert proxy.served[port_two] == 0  # so far, all through the first server
                proxy.switch(port_two)  # the balancer moves the worker...
                one.proc.terminate()  # ...and the first server goes away
                assert one.proc.wait(30) is not None
                done = wait_until(
                    lambda: (
                        job(admin, job_id)["status"] in ("succeeded", "failed")
                        and job(admin, job_id)
                    ),
                    "the job to finish",
                )
                assert proxy.served[port_two] > 0
                assert (done["status"], done["lease_epoch"]) == ("succeeded", 1), box.log()
                (run,) = runs(admin, job_id, output=True)  # one attempt, never taken over
                assert (run["epoch"], run["worker"], run["status"]) == (1, "box-pg", "succeeded")
                assert run["stdout"].split() == ["started", "at", "1", "done", "at", "1"]
                assert "lease lost" not in box.log()
        finally:
            proxy.close()
