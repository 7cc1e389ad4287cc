"""`plan show` and the plan's page say where a loop stands and which limit a step counts
against: the earlier iterations by their own names, the loop's step with its iteration."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import agentfleet
from tests.cli.conftest import Invoke
from tests.plans.helpers import claim_all, plan, shell


def _looping_plan(tmp_path: Path, db: str) -> int:
    spec = plan(
        shell("fix", loop={"until": "steps.fix.result.green", "max_iterations": 3}, limit="ci"),
        shell("ship", "fix"),
    )
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(spec))
    with agentfleet.open(db) as fleet:
        fleet.set_limit("ci", 2)
        plan_id = fleet.submit_plan(path).id
        [first] = claim_all(fleet)
        fleet.complete(first, result={"green": False})  # iteration 2 waits to be claimed
    return plan_id


def test_plan_show_draws_the_iterations_and_the_limit(run: Invoke, db: str, tmp_path: Path) -> None:
    plan_id = _looping_plan(tmp_path, db)
    shown = run("plan", "show", str(plan_id))
    assert shown.code == 0, shown.err
    lines = shown.out.splitlines()
    [old] = [line for line in lines if "fix (iteration 1)" in line]
    assert "succeeded" in old
    [current] = [line for line in lines if "⟳" in line]
    assert " fix " in current and "queued" in current
    assert "⟳ iteration 2 of 3, until steps.fix.result.green" in current
    assert "- · limit ci" in current
    data = run("plan", "show", str(plan_id), "--json").json()
    steps = {s["name"]: s for s in data["jobs"]}
    assert steps["fix"]["loop"] == {
        "name": "fix", "iteration": 2, "max_iterations": 3, "until": "steps.fix.result.green",
    }  # fmt: skip
    assert steps["fix"]["limit"] == "ci" and steps["ship"]["limit"] is None


def test_the_plan_page_draws_the_iterations_and_the_limit(db: str, tmp_path: Path) -> None:
    pytest.importorskip("fastapi", reason="the web extra is not installed")
    from fastapi.testclient import TestClient

    from agentfleet.web.app import create_app

    plan_id = _looping_plan(tmp_path, db)
    with agentfleet.open(db) as fleet:
        client = TestClient(create_app(fleet, token="t" * 24), headers={
            "Authorization": "Bearer " + "t" * 24})  # fmt: skip
        html = client.get(f"/plans/{plan_id}").text
        api = client.get(f"/api/plans/{plan_id}").json()
    assert 'data-step="fix (iteration 1)"' in html
    assert "iteration 2 of 3" in html and "limit ci" in html
    assert {s["name"] for s in api["jobs"]} == {"fix (iteration 1)", "fix", "ship"}
    assert next(s for s in api["jobs"] if s["name"] == "fix")["loop"]["iteration"] == 2
