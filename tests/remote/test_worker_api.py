"""The worker API over real HTTP (a real `agentfleet serve`): fencing by epoch, leases kept
to their own worker, batches, cancels, the long poll, and what a remote worker's jobs see."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest

from agentfleet.errors import AccessDenied, JobCancelled, LeaseLost
from agentfleet.models import JobStatus, Lease, RunOutput
from agentfleet.remote import RemoteFleet
from agentfleet.remote.wire import lease_to_wire
from tests.remote.helpers import ADMIN, api, job, remote_worker, runs, worker_token
from tests.web.live import ServeProcess, serve_subprocess
from tests.worker.helpers import cli, wait_until


@dataclass
class Served:
    server: ServeProcess
    admin: httpx.Client
    a: RemoteFleet  # the worker token box-a
    b: RemoteFleet  # the worker token box-b
    tokens: dict[str, str]
    folder: Path

    def enqueue(self, queue: str, cmd: str = "true", **payload: object) -> int:
        body = {"engine": "shell", "queue": queue, "payload": {"cmd": cmd, **payload}}
        r = self.admin.post("/api/jobs", json=body)
        assert r.status_code == 201, r.text
        job_id: int = r.json()["id"]
        return job_id


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("worker-api")
    db = f"sqlite:///{folder / 'fleet.db'}"
    assert cli("--db", db, "init").returncode == 0
    tokens = {name: worker_token(db, name) for name in ("box-a", "box-b")}
    with serve_subprocess(db, ADMIN, folder) as server, api(server.url) as admin:
        a, b = RemoteFleet(server.url, tokens["box-a"]), RemoteFleet(server.url, tokens["box-b"])
        try:
            yield Served(server, admin, a, b, tokens, folder)
        finally:
            a.close()
            b.close()


def claim_one(fleet: RemoteFleet, worker: str, queue: str, ttl: float = 30.0) -> Lease:
    (lease,) = fleet.claim_next(worker=worker, queues=[queue], ttl=ttl)
    return lease


def test_a_claim_carries_the_job_whole_and_names_the_tokens_worker(served: Served) -> None:
    job_id = served.enqueue("whole", "echo hi", env={"SECRET": "s3cret"})
    lease = claim_one(served.a, "box-a", "whole")
    assert (lease.job_id, lease.epoch, lease.worker) == (job_id, 1, "box-a")
    assert lease.job is not None and lease.job.payload["env"] == {"SECRET": "s3cret"}
    assert served.a.hello()["name"] == "box-a"
    served.a.complete(lease, {"ok": True}, output=RunOutput(exit_code=0, stdout="hi\n"))
    assert job(served.admin, job_id)["status"] == "succeeded"
    (run,) = runs(served.admin, job_id, output=True)
    assert (run["worker"], run["stdout"], run["exit_code"]) == ("box-a", "hi\n", 0)


def test_a_stale_epochs_writes_over_http_raise_lease_lost(served: Served) -> None:
    job_id = served.enqueue("stale")
    first = claim_one(served.a, "box-a", "stale", ttl=0.3)
    time.sleep(0.5)  # its lease runs out; the next claim reaps it and takes the job again
    second = wait_until(
        lambda: served.a.claim_next(worker="box-a", queues=["stale"], ttl=30.0),
        "the job to be claimed again",
    )[0]
    assert (second.job_id, second.epoch) == (job_id, 2)
    for write in (
        lambda: served.a.complete(first, "stale"),
        lambda: served.a.fail(first, "stale"),
        lambda: served.a.release(first),
        lambda: served.a.record_output(first, RunOutput(stdout="stale")),
        lambda: served.a.record_process(first, host="h", pgid=4242),
        lambda: served.a.renew(first),
    ):
        with pytest.raises(LeaseLost) as lost:
            write()
        assert not isinstance(lost.value, JobCancelled)
        assert (lost.value.job_id, lost.value.epoch) == (job_id, 1)
    (answer,) = served.a.renew_many([first])
    assert isinstance(answer, LeaseLost) and answer.current_epoch == 2
    served.a.complete(second, "fresh")
    found = job(served.admin, job_id)
    assert (found["status"], found["result"], found["lease_epoch"]) == ("succeeded", "fresh", 2)


def test_a_worker_token_cannot_touch_another_workers_lease(served: Served) -> None:
    job_id = served.enqueue("theirs")
    theirs = claim_one(served.b, "box-b", "theirs")
    for write in (
        lambda: served.a.complete(theirs, "stolen"),
        lambda: served.a.fail(theirs, "stolen", retry=False),
        lambda: served.a.release(theirs),
        lambda: served.a.record_output(theirs, RunOutput(stdout="stolen")),
        lambda: served.a.renew(theirs),
    ):
        with pytest.raises(LeaseLost):
            write()
    assert served.a.complete_many([(theirs, "stolen")]) == []  # left out of the batch
    mine = claim_one(served.a, "box-a", "theirs-too") if served.enqueue("theirs-too") else None
    assert mine is not None
    renewed, refused = served.a.renew_many([mine, theirs])  # one heartbeat: each its answer
    assert isinstance(renewed, Lease) and renewed.job_id == mine.job_id
    assert isinstance(refused, LeaseLost) and refused.job_id == job_id
    served.a.complete(mine)
    as_a = {"Authorization": f"Bearer {served.tokens['box-a']}"}
    r = httpx.post(
        f"{served.server.url}api/worker/complete",
        json={"lease": lease_to_wire(theirs), "result": "stolen"},
        headers=as_a,
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_your_lease", r.text
    # Claiming (or showing presence) under the other's name is refused too.
    with pytest.raises(AccessDenied):
        served.a.claim_next(worker="box-b", queues=["theirs"])
    with pytest.raises(AccessDenied):
        served.a.get_job(job_id)  # a job it does not hold: its payload is not for it
    found = job(served.admin, job_id)
    assert (found["status"], found["worker"], found["lease_epoch"]) == ("running", "box-b", 1)
    served.b.complete(theirs, "mine")
    assert job(served.admin, job_id)["result"] == "mine"


def test_completions_and_the_next_claim_are_one_request(served: Served) -> None:
    ids = [served.enqueue("batch") for _ in range(5)]
    leases = served.b.complete_and_claim([], worker="box-b", queues=["batch"], limit=3)[1]
    assert len(leases) == 3
    done = [(lease, {"n": lease.job_id}) for lease in leases]
    completed, more = served.b.complete_and_claim(done, worker="box-b", queues=["batch"], limit=5)
    assert sorted(completed) == sorted(lease.job_id for lease in leases)
    assert len(more) == 2
    assert sorted(served.b.complete_many([(lease, None) for lease in more])) == sorted(
        lease.job_id for lease in more
    )
    for job_id in ids:
        assert job(served.admin, job_id)["status"] == "succeeded"
    renewed = served.b.renew_many(leases)  # a heartbeat of finished leases: each one lost
    assert all(isinstance(answer, LeaseLost) for answer in renewed)


def test_a_cancel_reaches_the_remote_heartbeat_as_job_cancelled(served: Served) -> None:
    job_id = served.enqueue("cancel")
    lease = claim_one(served.b, "box-b", "cancel")
    assert served.admin.post(f"/api/jobs/{job_id}/cancel").status_code == 200
    (answer,) = served.b.renew_many([lease])
    assert isinstance(answer, JobCancelled)
    assert served.b.fail(lease, "cancelled", retry=False) is JobStatus.CANCELLED


def test_only_worker_and_admin_tokens_use_the_worker_api(served: Served) -> None:
    url = f"{served.server.url}api/worker/hello"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer nope-nope-nope"}).status_code == 401
    done = cli(
        "--db", served.server.db_url, "tokens", "create", "--role", "operate", "--name", "ops",
        "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ops = done.stdout.split('"token": "')[1].split('"')[0]
    r = httpx.get(url, headers={"Authorization": f"Bearer {ops}"})
    assert r.status_code == 403 and "worker API" in r.json()["error"]["message"]
    assert served.admin.get("/api/worker/hello").json()["role"] == "admin"
    # and a worker token is still refused everywhere else
    as_a = {"Authorization": f"Bearer {served.tokens['box-a']}"}
    assert httpx.get(f"{served.server.url}api/jobs", headers=as_a).status_code == 403


def test_the_long_poll_wakes_on_an_enqueue_not_at_its_timeout(served: Served) -> None:
    fleet = served.a
    fleet.hello()  # its token's last-used stamp is written now, not during the waits
    fleet.wait_for_jobs(0)  # the first look: it now holds a cursor
    assert fleet.wait_for_jobs(0.3) is False  # nothing changed: the poll times out
    answers: list[bool] = []
    waiting = threading.Thread(target=lambda: answers.append(fleet.wait_for_jobs(60)))
    waiting.start()
    time.sleep(0.2)
    served.enqueue("wake")
    waiting.join(30)
    assert answers == [True]  # woken by the enqueue, long before the 60 s timeout


def test_the_long_poll_ends_when_its_interrupt_is_rung(served: Served) -> None:
    fleet = served.b
    fleet.hello()
    fleet.wait_for_jobs(0)
    read, write = os.pipe()
    answers: list[bool] = []
    waiting = threading.Thread(
        target=lambda: answers.append(fleet.wait_for_jobs(60, interrupt=read))
    )
    waiting.start()
    time.sleep(0.2)
    os.write(write, b"!")
    waiting.join(30)
    assert answers == [False]
    os.close(read)
    os.close(write)
    assert fleet.hello()["name"] == "box-b"  # its other connection was never cut


def test_a_remote_workers_jobs_get_the_servers_address_never_a_database_or_token(
    served: Served,
) -> None:
    cmd = "env | grep '^AGENTFLEET_' | sort"
    plain = served.enqueue("env", cmd)
    opted = served.enqueue("env", cmd, db_access=True)
    with remote_worker(
        served.server.url,
        served.tokens["box-a"],
        served.folder / "env-worker",
        "--queues",
        "env",
        "--burst",
        token_in_env=True,  # the worker's own token is in its environment
    ) as box:
        assert box.proc.wait(60) == 0, box.log()
    for job_id in (plain, opted):
        (run,) = runs(served.admin, job_id, output=True)
        assert run["status"] == "succeeded", run
        names = {line.split("=", 1)[0] for line in run["stdout"].splitlines()}
        assert "AGENTFLEET_DB" not in names and "AGENTFLEET_TOKEN" not in names, names
        assert "AGENTFLEET_JOB_ID" in names and "AGENTFLEET_WORKER" in names
    (run,) = runs(served.admin, opted, output=True)
    assert f"AGENTFLEET_SERVER={served.server.url.rstrip('/')}" in run["stdout"]
