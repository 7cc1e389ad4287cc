"""A write served but its answer lost on the way back: the client tries again, and the
fence judges the second try as it judged the first."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentfleet.errors import LeaseLost
from agentfleet.models import JobStatus
from agentfleet.remote import RemoteFleet
from tests.remote.helpers import ADMIN, api, job, runs, worker_token
from tests.remote.proxy import Proxy
from tests.web.live import serve_subprocess
from tests.worker.helpers import cli


def test_a_completion_whose_answer_was_lost_is_known_as_its_own(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    assert cli("--db", db, "init").returncode == 0
    token = worker_token(db, "box-l")
    with serve_subprocess(db, ADMIN, tmp_path) as server, api(server.url) as admin:
        proxy = Proxy(int(server.url.rsplit(":", 1)[1].strip("/")))
        fleet = RemoteFleet(proxy.url, token)
        try:
            shell = {"engine": "shell", "payload": {"cmd": "true"}}
            ids = [admin.post("/api/jobs", json=shell).json()["id"] for _ in range(2)]
            first, second = fleet.claim_next(worker="box-l", limit=2)
            proxy.cut_next_answer()
            fleet.complete(first, {"n": 1})  # served, answer lost, tried again: known as ours
            found = job(admin, first.job_id)
            assert (found["status"], found["result"]) == ("succeeded", {"n": 1})
            assert [r["status"] for r in runs(admin, first.job_id)] == ["succeeded"]
            proxy.cut_next_answer()
            # A failure's second try is refused (the first closed the attempt): it says so.
            with pytest.raises(LeaseLost):
                fleet.fail(second, "boom", retry=False)
            assert job(admin, second.job_id)["status"] == JobStatus.FAILED.value
            assert sorted(ids) == sorted([first.job_id, second.job_id])
        finally:
            fleet.close()
            proxy.close()
