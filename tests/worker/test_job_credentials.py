"""Jobs get their own identity and nothing that opens the database: an agent following an
injected prompt must not be able to reach the fleet's database or API. A job that needs
the database opts in with `db_access: true`; a plan step reads its inputs from a file."""

from __future__ import annotations

import json
import os

import pytest

from agentfleet import JobStatus
from tests.conftest import StoreEnv
from tests.worker.helpers import run_burst

SECRETS = {
    "AGENTFLEET_DB": "postgresql://fleet:hunter2@db.example/fleet",
    "AGENTFLEET_TOKEN": "api-token-1234",
    "PGPASSWORD": "hunter2",
    "PGPASSFILE": "/home/fleet/.pgpass",
}
PRINT_ENV = "env | sort"


def _env_of(store: StoreEnv, job_id: int) -> dict[str, str]:
    [run] = store.fleet.runs(job_id)
    pairs = (line.split("=", 1) for line in (run.stdout or "").splitlines() if "=" in line)
    return dict(pairs)


def test_a_job_inherits_none_of_the_fleets_secrets(
    store: StoreEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    job = store.fleet.enqueue("shell", {"cmd": PRINT_ENV, "env": {"MINE": "kept"}})
    run_burst(store.fleet)
    env = _env_of(store, job.id)
    assert store.fleet.get_job(job.id).status is JobStatus.SUCCEEDED
    assert set(SECRETS) & set(env) == set()
    assert "hunter2" not in "".join(env.values())
    assert (env["AGENTFLEET_JOB_ID"], env["MINE"]) == (str(job.id), "kept")
    assert env["AGENTFLEET_LEASE_EPOCH"] == "1" and env["AGENTFLEET_WORKER"]


def test_a_job_may_set_its_own_database_password(
    store: StoreEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", "the-fleets")
    job = store.fleet.enqueue("shell", {"cmd": PRINT_ENV, "env": {"PGPASSWORD": "its-own"}})
    run_burst(store.fleet)
    assert _env_of(store, job.id)["PGPASSWORD"] == "its-own"


def test_a_job_that_opts_in_gets_the_database(
    store: StoreEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", "hunter2")
    job = store.fleet.enqueue("shell", {"cmd": PRINT_ENV, "db_access": True})
    worker = run_burst(store.fleet)
    env = _env_of(store, job.id)
    assert env["AGENTFLEET_DB"] == worker._ctx.db_url and env["PGPASSWORD"] == "hunter2"


def test_a_plan_step_reads_its_inputs_from_a_file(store: StoreEnv) -> None:
    fleet = store.fleet
    plan = fleet.submit_plan(
        {
            "name": "p",
            "jobs": [
                {"name": "build", "engine": "shell", "cmd": "echo built"},
                {
                    "name": "report",
                    "engine": "shell",
                    "cmd": 'cat "$AGENTFLEET_INPUTS"; echo; '
                    'ls -ld "$(dirname "$AGENTFLEET_INPUTS")"',
                    "depends_on": ["build"],
                },
            ],
        }
    )
    run_burst(fleet)
    report = fleet.get_plan(plan.id).step("report")
    [run] = fleet.runs(report.job_id)
    first, listing = (run.stdout or "").splitlines()[:2]
    inputs = json.loads(first)
    assert inputs["build"]["status"] == "succeeded" and inputs["build"]["stdout"] == "built\n"
    assert listing.startswith("drwx------")  # only the worker's user can read it
    folder = listing.split()[-1]
    assert not os.path.exists(folder)  # removed once the step ended
