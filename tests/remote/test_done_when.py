"""Issue 18's "Done when": `agentfleet serve` on SQLite and two remote workers in other
processes (their own working directories, no database path) run job files and a plan with
an approval; one worker's token is revoked mid-run and its job is taken over."""

from __future__ import annotations

import json
from pathlib import Path

from tests.remote.helpers import ADMIN, api, job, remote_worker, revoke, runs, worker_token
from tests.web.live import serve_subprocess
from tests.worker.helpers import cli, wait_until

JOB_FILES = 6
LONG = (
    'if [ "$AGENTFLEET_LEASE_EPOCH" = 1 ]; then sleep 120; fi; '
    'echo "done at $AGENTFLEET_LEASE_EPOCH"'
)


def ledger_line(ledger: Path) -> str:
    """A shell command that notes, once per run, which job ran where."""
    return f'echo "$AGENTFLEET_JOB_ID $AGENTFLEET_LEASE_EPOCH $AGENTFLEET_WORKER" >> {ledger}'


def test_remote_workers_run_job_files_and_a_plan_and_survive_a_revoked_token(
    tmp_path: Path,
) -> None:
    db = f"sqlite:///{tmp_path / 'fleet.db'}"
    assert cli("--db", db, "init").returncode == 0
    tokens = {name: worker_token(db, name) for name in ("box-a", "box-b")}
    ledger = tmp_path / "ledger.txt"
    folder = tmp_path / "jobs"
    folder.mkdir()
    for n in range(JOB_FILES):
        (folder / f"job{n}.md").write_text(
            f"---\nengine: shell\nlabels: [remote]\n---\n{ledger_line(ledger)}; sleep 0.3\n"
        )
    with (
        serve_subprocess(db, ADMIN, tmp_path) as server,
        api(server.url) as admin,
        remote_worker(server.url, tokens["box-a"], tmp_path / "a", "--ttl", "2s") as box_a,
        remote_worker(
            server.url, tokens["box-b"], tmp_path / "b", "--ttl", "2s", token_in_env=True
        ) as box_b,
    ):
        box_a.wait_started()
        box_b.wait_started()
        workers = {"box-a": box_a, "box-b": box_b}

        # Job files, submitted as a person would, and a plan with an approval gate.
        submitted = cli("--db", db, "submit", str(folder), "--json")
        assert submitted.returncode == 0, submitted.stderr
        spec = {
            "name": "ship",
            "jobs": [
                {"name": "build", "engine": "shell", "cmd": ledger_line(ledger)},
                {"name": "review", "engine": "approval", "depends_on": ["build"]},
                {
                    "name": "deploy",
                    "engine": "shell",
                    "cmd": ledger_line(ledger),
                    "depends_on": ["review"],
                },
            ],
        }
        r = admin.post("/api/plans", json=spec)
        assert r.status_code == 201, r.text
        plan_id = r.json()["id"]
        pending = wait_until(
            lambda: admin.get(f"/api/plans/{plan_id}").json()["pending"], "the plan's gate"
        )
        r = admin.post(f"/api/plans/{plan_id}/approve", json={"checkpoint": pending})
        assert r.status_code == 200, r.text
        wait_until(
            lambda: admin.get(f"/api/plans/{plan_id}").json()["status"] == "completed",
            "the plan to complete",
        )
        listed = admin.get("/api/jobs", params={"label": "remote"}).json()["jobs"]
        assert len(listed) == JOB_FILES
        plan_jobs = [
            step["job_id"]
            for step in admin.get(f"/api/plans/{plan_id}").json()["jobs"]
            if step["engine"] == "shell"
        ]
        ran = [j["id"] for j in listed] + plan_jobs
        wait_until(lambda: all(job(admin, i)["status"] == "succeeded" for i in ran), "every job")

        # Each ran exactly once: one run, one line in the ledger, all at epoch 1.
        lines = [line.split() for line in ledger.read_text().splitlines()]
        assert sorted(int(job_id) for job_id, _, _ in lines) == sorted(ran)
        assert {epoch for _, epoch, _ in lines} == {"1"}
        for i in ran:
            (only,) = runs(admin, i)
            assert only["status"] == "succeeded" and only["worker"] in workers
        assert {worker for _, _, worker in lines} <= set(workers)
        for box in workers.values():  # they worked where they were started, not here
            assert not (box.log_path.parent / ".agentfleet").exists()

        # A long job; its worker's token is revoked while it runs.
        r = admin.post("/api/jobs", json={"engine": "shell", "payload": {"cmd": LONG}})
        long_id = r.json()["id"]
        holder = wait_until(
            lambda: job(admin, long_id)["status"] == "running" and job(admin, long_id)["worker"],
            "the long job to start",
        )
        other = "box-b" if holder == "box-a" else "box-a"
        revoke(db, holder)
        assert workers[holder].proc.wait(30) == 1  # it stops, saying why
        assert "refused the token" in workers[holder].log()
        done = wait_until(
            lambda: job(admin, long_id)["status"] == "succeeded" and job(admin, long_id),
            "the long job to be taken over and finish",
        )
        assert done["lease_epoch"] == 2 and done["worker"] == other
        first, second = runs(admin, long_id, output=True)
        assert (first["epoch"], first["worker"]) == (1, holder)
        assert first["status"] != "succeeded"
        assert (second["epoch"], second["worker"], second["status"]) == (2, other, "succeeded")
        assert second["stdout"].strip() == "done at 2"

        # The revoked worker's late write is refused, and so is a stale epoch's from a live
        # token: nothing changes.
        stale = {
            "job_id": long_id,
            "epoch": 1,
            "worker": holder,
            "expires_at": first["started_at"],
            "attempt": first["attempt"],
            "run_id": first["id"],
            "ttl": 2.0,
        }
        with api(server.url, tokens[holder]) as revoked:
            r = revoked.post("/api/worker/complete", json={"lease": stale, "result": "late"})
            assert r.status_code == 401, r.text
        with api(server.url, tokens[other]) as live:
            r = live.post("/api/worker/complete", json={"lease": stale, "result": "late"})
            assert r.status_code == 409 and r.json()["error"]["code"] == "lease_lost", r.text
        after = job(admin, long_id)
        assert (after["status"], after["lease_epoch"]) == ("succeeded", 2)
        assert after["result"] == done["result"]
        assert json.dumps(after["result"]) != '"late"'
