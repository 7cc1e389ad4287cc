"""One JSON view: `--json` on the command line and the HTTP API answer with the same objects,
and every object has exactly the fields its OpenAPI schema documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from pydantic import BaseModel
from typer.testing import CliRunner

import agentfleet
from agentfleet import RunOutput
from agentfleet.cli import app as cli_app
from agentfleet.serialize import (
    event_dict,
    job_dict,
    plan_dict,
    queue_dicts,
    run_dict,
    worker_dict,
    worker_view,
)
from agentfleet.web.app import create_app
from agentfleet.web.schemas import (
    EventOut,
    JobOut,
    PlanOut,
    PlanStepOut,
    QueueOut,
    RunOut,
    WorkerOut,
)
from tests.plans.helpers import drain, gate, plan, shell
from tests.web.conftest import AUTH, TOKEN


def cli_json(url: str, *args: str) -> Any:
    done = CliRunner().invoke(cli_app, ["--db", url, *args, "--json"], catch_exceptions=False)
    assert done.exit_code == 0, done.stderr
    return json.loads(done.stdout)


def same_fields(data: dict[str, Any], schema: type[BaseModel], *, optional: set[str]) -> None:
    """The dict has every field of the schema (bar the named optional ones) and no other."""
    fields = set(schema.model_fields)
    assert fields - optional <= set(data) <= fields, (schema.__name__, sorted(data))
    schema.model_validate(data)


def test_cli_and_http_api_print_the_same_objects(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    with agentfleet.open(url) as fleet:
        job = fleet.enqueue("shell", {"cmd": ["echo", "hi"], "labels": ["nightly"]})
        lease = fleet.claim(job.id, worker="w1")
        assert lease is not None
        fleet.complete(lease, {"ok": True}, output=RunOutput(exit_code=0, stdout="hi\n"))
        fleet.worker_seen("w1", host="h1", pid=10, queues=["default"], concurrency=2)
        fleet.worker_seen("w2", host="h2", pid=20, queues=[], concurrency=1)
        fleet.worker_stopped("w2")
        plan_id = fleet.submit_plan(plan(shell("build"), gate("review", "build"))).id
        drain(fleet)
        client = TestClient(create_app(fleet, token=TOKEN), headers=AUTH)

        shown = cli_json(url, "show", str(job.id))
        assert shown["job"] == client.get(f"/api/jobs/{job.id}").json()
        assert shown["job"]["summary"] == "echo hi" and shown["job"]["labels"] == ["nightly"]
        assert shown["runs"] == client.get(f"/api/jobs/{job.id}/runs").json()["runs"]
        assert shown["runs"][0]["number"] == 1 and shown["runs"][0]["duration"] >= 0
        assert shown["events"] == client.get(f"/api/jobs/{job.id}/events").json()["events"]
        logged = cli_json(url, "logs", str(job.id))["run"]
        with_output = client.get(f"/api/jobs/{job.id}/runs", params={"output": True}).json()
        assert logged == with_output["runs"][-1] and logged["stdout"] == "hi\n"
        assert cli_json(url, "ls") == client.get("/api/jobs").json()["jobs"]
        assert (
            cli_json(url, "plan", "show", str(plan_id))
            == client.get(f"/api/plans/{plan_id}").json()
        )
        assert cli_json(url, "plan", "ls") == client.get("/api/plans").json()["plans"]

        def moment(workers: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{k: v for k, v in w.items() if k != "seconds_since_seen"} for w in workers]

        workers = cli_json(url, "workers")
        assert moment(workers) == moment(client.get("/api/workers").json()["workers"])
        assert {w["name"]: w["state"] for w in workers} == {"w1": "alive", "w2": "stopped"}


def test_every_object_has_exactly_its_schema_fields(tmp_path: Path) -> None:
    with agentfleet.open("memory://") as fleet:
        job = fleet.enqueue("claude", {"prompt": "Fix the bug\nin detail", "labels": ["a"]})
        lease = fleet.claim(job.id, worker="w1")
        assert lease is not None
        running = fleet.runs(job.id)[0]
        fleet.worker_seen("w1", host="h", pid=1, queues=["default"], concurrency=1)
        plan_id = fleet.submit_plan(plan(shell("build"), gate("review", "build"))).id

        same_fields(job_dict(fleet.get_job(job.id)), JobOut, optional=set())
        assert job_dict(job)["summary"] == "Fix the bug"
        unfinished = run_dict(running, 1)
        same_fields(unfinished, RunOut, optional={"stdout", "stderr"})
        assert unfinished["duration"] is None and "stdout" not in unfinished
        same_fields(run_dict(running, 1, output=True), RunOut, optional=set())
        for event in fleet.events(job.id):
            same_fields(event_dict(event), EventOut, optional=set())
        (info,) = fleet.list_workers()
        same_fields(worker_dict(worker_view(info, fleet.now())), WorkerOut, optional=set())
        for queue in queue_dicts(fleet.queue_counts()):
            same_fields(queue, QueueOut, optional=set())
        shown = plan_dict(fleet.get_plan(plan_id))
        same_fields(shown, PlanOut, optional=set())
        spent = plan_dict(fleet.get_plan(plan_id), fleet.plan_usage(plan_id))
        same_fields(spent, PlanOut, optional=set())
        assert spent["usage"] == {
            "total": {"cost_usd": None, "input_tokens": None, "output_tokens": None, "runs": 0},
            "budget_usd": None,
            "steps": {},
        }
        for step in shown["jobs"]:
            same_fields(step, PlanStepOut, optional=set())
