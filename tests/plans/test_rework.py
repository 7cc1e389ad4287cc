"""A rejection's rework is exact: the target and every step between it and the gate rerun,
in DAG order, and the gate pauses again only after they have all succeeded."""

from __future__ import annotations

from agentfleet import Fleet, JobStatus, PlanStatus
from tests.plans.helpers import claim_all, drain, gate, plan, shell


def test_rework_reruns_the_target_and_every_step_up_to_the_gate_in_order(fleet: Fleet) -> None:
    p = fleet.submit_plan(
        plan(
            shell("schema"),
            shell("backend", "schema"),
            shell("docs", "schema"),  # downstream of the target, but not on the way to the gate
            gate("review", "backend", on_reject="schema"),
            shell("ship", "review"),
        )
    )
    ran = drain(fleet)
    assert ran[0] == "schema" and sorted(ran[1:]) == ["backend", "docs"]
    assert fleet.get_plan(p.id).pending == "review#1"
    fleet.reject(p.id, "rename the table", checkpoint="review#1")
    reworked = fleet.get_plan(p.id)
    assert reworked.status is PlanStatus.RUNNING and reworked.pending is None
    assert {s.name: s.status for s in reworked.jobs} == {
        "schema": JobStatus.QUEUED,
        "backend": JobStatus.WAITING,  # not before schema has run again
        "docs": JobStatus.SUCCEEDED,
        "review": JobStatus.WAITING,
        "ship": JobStatus.WAITING,
    }
    [first] = claim_all(fleet)
    assert first.job is not None and first.job.step == "schema"
    assert first.job.payload["feedback"] == ["rename the table"]
    fleet.complete(first, result={"again": True})
    assert fleet.get_plan(p.id).pending is None  # backend reruns before the gate pauses
    assert drain(fleet) == ["backend"]
    assert fleet.get_plan(p.id).pending == "review#2"
    backend = fleet.get_job(fleet.get_plan(p.id).step("backend").job_id)
    assert "feedback" not in backend.payload and backend.attempts == 1


def test_max_rejections_zero_allows_no_rework(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("build"), gate("review", "build", max_rejections=0)))
    drain(fleet)
    fleet.reject(p.id, "needs work")
    ended = fleet.get_plan(p.id)
    assert ended.status is PlanStatus.CANCELLED
    assert ended.step("build").status is JobStatus.SUCCEEDED  # nothing was sent back
    reasons = [e.data.get("reason") for e in fleet.events() if e.kind == "plan_cancelled"]
    assert reasons == ["too many rejections"]
