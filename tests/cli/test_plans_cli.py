"""`agentfleet plan ...` and `reconcile`: the plan walkthrough through the command line."""

from __future__ import annotations

from pathlib import Path

import agentfleet
from tests.cli.conftest import Invoke

PLAN = """\
name: checkout
mode: supervised
max_parallel: 2
jobs:
  - name: backend
    engine: shell
    cmd: "echo backend"
  - name: review
    engine: approval
    message: Check the API first.
    on_reject: backend
    depends_on: [backend]
  - name: frontend
    engine: shell
    cmd: "echo frontend"
    depends_on: [review]
"""


def _drain(db: str, fail: str | None = None) -> None:
    with agentfleet.open(db) as fleet:
        while leases := fleet.claim_next(worker="w", limit=10):
            for lease in leases:
                if lease.job is not None and lease.job.step == fail:
                    fleet.fail(lease, f"{fail} broke", retry=False)
                else:
                    fleet.complete(lease, result={"step": lease.job.step if lease.job else None})


def test_submit_show_approve_reject_resume_cancel(run: Invoke, db: str, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN)
    submitted = run("plan", "submit", str(plan_file), "--json")
    assert submitted.code == 0, submitted.err
    plan_id = submitted.json()["id"]
    assert [j["status"] for j in submitted.json()["jobs"]] == ["queued", "waiting", "waiting"]

    _drain(db)
    shown = run("plan", "show", str(plan_id))
    assert shown.code == 0
    assert "waiting at approval gate review#1" in shown.out
    assert f"plan approve {plan_id} --at review#1" in shown.out
    assert "waiting for approval" in shown.out and "backend" in shown.out

    rejected = run("plan", "reject", str(plan_id), "--feedback", "add tests", "--json")
    assert rejected.code == 0 and rejected.json()["status"] == "running"
    assert f"answering review#1 (the checkpoint plan {plan_id} waits at)" in rejected.err
    _drain(db)
    stale = run("plan", "approve", str(plan_id), "--at", "review#1")  # the pause before rework
    assert stale.code == 1 and "no longer waits at review#1: it now waits at review#2" in stale.err
    approved = run("plan", "approve", str(plan_id), "--at", "review#2", "-r", "ship it", "--json")
    assert approved.code == 0 and approved.json()["status"] == "running"
    assert "answering" not in approved.err
    _drain(db, fail="frontend")
    stopped = run("plan", "show", str(plan_id), "--json").json()
    assert (stopped["status"], stopped["checkpoint"]) == ("paused", "on_error")
    assert "stopped on an error" in run("plan", "show", str(plan_id)).out

    resumed = run("plan", "resume", str(plan_id), "--json")
    assert resumed.code == 0 and resumed.json()["status"] == "running"
    again = run("plan", "resume", str(plan_id))
    assert again.code == 1 and "not resumable (status: running)" in again.err

    listed = run("plan", "ls", "--json").json()
    assert [p["id"] for p in listed] == [plan_id]
    assert run("plan", "cancel", str(plan_id)).code == 0
    second = run("plan", "cancel", str(plan_id))
    assert second.code == 1 and "nothing to cancel" in second.err


def test_plan_errors_have_documented_exit_codes(run: Invoke, tmp_path: Path) -> None:
    assert run("plan", "show", "99").code == 3
    assert run("plan", "resume", "99").code == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\njobs:\n  - name: a\n    engine: shell\n    cmd: x\n    depends_on: [a]\n"
    )
    refused = run("plan", "submit", str(bad))
    assert refused.code == 2 and "depends on itself" in refused.err
    assert run("plan", "ls", "--status", "nope").code == 2


def test_reconcile_and_inputs(run: Invoke, db: str, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN)
    plan_id = run("plan", "submit", str(plan_file), "--json").json()["id"]
    with agentfleet.open(db) as fleet:
        [lease] = fleet.claim_next(worker="w")
        fleet.store.complete(lease, {"built": True}, None)  # the plan misses this event
        review_id = fleet.get_plan(plan_id).step("review").job_id
    repaired = run("reconcile")
    assert repaired.code == 0 and f"repaired plan {plan_id}" in repaired.out
    assert "nothing to repair" in run("reconcile").out
    inputs = run("plan", "inputs", str(review_id)).json()
    assert inputs["backend"]["result"] == {"built": True}


def test_abandon_a_failed_plan(run: Invoke, db: str, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN.replace("mode: supervised", "mode: auto"))
    plan_id = run("plan", "submit", str(plan_file), "--json").json()["id"]
    refused = run("plan", "abandon", str(plan_id))
    assert refused.code == 1 and f"cancel it (agentfleet plan cancel {plan_id})" in refused.err
    _drain(db, fail="backend")
    with agentfleet.open(db) as fleet:
        assert fleet.get_plan(plan_id).status.value in ("failed", "running")
        _drain(db, fail="backend")  # the retries fail too
        assert fleet.get_plan(plan_id).status.value == "failed"
    done = run("plan", "abandon", str(plan_id))
    assert done.code == 0 and f"plan {plan_id} abandoned" in done.out
    again = run("plan", "abandon", str(plan_id), "--json")
    assert again.code == 1 and again.json() == {
        "plan": plan_id,
        "abandoned": False,
        "status": "abandoned",
    }
    shown = run("plan", "show", str(plan_id))
    assert "approve" not in shown.out and "resume" not in shown.out


def test_plan_show_at_a_gate_shows_what_to_review(run: Invoke, db: str, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN)
    plan_id = run("plan", "submit", str(plan_file), "--json").json()["id"]
    with agentfleet.open(db) as fleet:
        [lease] = fleet.claim_next(worker="w")
        out = "".join(f"endpoint {i} ready\n" for i in range(20))
        fleet.complete(lease, {"endpoints": 20}, output=agentfleet.RunOutput(0, out))
    shown = run("plan", "show", str(plan_id)).out
    assert 'backend (#1) succeeded: {"endpoints": 20}' in shown
    assert "endpoint 19 ready" in shown and "endpoint 2 ready" not in shown
    assert "agentfleet logs 1" in shown
