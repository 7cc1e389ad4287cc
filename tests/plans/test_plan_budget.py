"""A plan's `budget_usd`: once its runs have cost more, it starts no further step.

Runs on every store: the cost is what a run's `agent` record says (as a worker writes it
from the agent CLI's own report), summed over all of the plan's runs.
"""

from __future__ import annotations

import pytest

from agentfleet import Fleet, InvalidArgument, JobStatus, PlanStatus
from agentfleet.models import RunOutput
from tests.plans.helpers import claim_all, plan, shell


def _spend(fleet: Fleet, costs: dict[str, float]) -> list[str]:
    """Finish what is queued, each step's run reporting its cost; the steps that ran."""
    ran = []
    while leases := claim_all(fleet):
        for lease in leases:
            step = lease.job.step if lease.job else ""
            ran.append(step or "")
            agent = {"engine": "claude", "cost_usd": costs.get(step or "", 0.0)}
            fleet.complete(lease, result={}, output=RunOutput(exit_code=0, agent=agent))
    return ran


def test_a_plan_over_its_budget_fails_before_its_next_step(fleet: Fleet) -> None:
    spec = {**plan(shell("a"), shell("b"), shell("c", "a", "b")), "budget_usd": 1.0}
    p = fleet.submit_plan(spec)
    assert _spend(fleet, {"a": 0.75, "b": 0.5}) == ["a", "b"]  # together they pass $1
    done = fleet.get_plan(p.id)
    reason = f"budget exceeded: plan {p.id} cost $1.2500, over its $1"
    assert done.status is PlanStatus.FAILED
    assert done.checkpoint_context == {"kind": "budget", "error": reason}
    c = fleet.get_job(done.step("c").job_id)
    assert (c.status, c.error, c.attempts) == (JobStatus.CANCELLED, f"not run: {reason}", 0)
    usage = fleet.plan_usage(p.id)
    assert {step: usage[done.step(step).job_id].cost_usd for step in "ab"} == {
        "a": 0.75,
        "b": 0.5,
    }


def test_a_plan_within_its_budget_completes(fleet: Fleet) -> None:
    spec = {**plan(shell("a"), shell("b", "a")), "budget_usd": 1.0}
    p = fleet.submit_plan(spec)
    assert _spend(fleet, {"a": 0.5, "b": 0.75}) == ["a", "b"]  # the last step may pass it
    done = fleet.get_plan(p.id)
    assert done.status is PlanStatus.COMPLETED
    assert fleet.usage(plan_id=p.id).cost_usd == 1.25
    a, b = (done.step(step).job_id for step in "ab")
    assert (fleet.usage(job_id=a).cost_usd, fleet.usage(job_id=b).cost_usd) == (0.5, 0.75)
    [run] = fleet.runs(a)
    assert fleet.usage(job_id=a, except_run=run.id).runs == 0  # a running job's own left out


@pytest.mark.parametrize("budget", [0, -1, "5", True, float("inf")])
def test_a_budget_must_be_a_positive_number_of_dollars(fleet: Fleet, budget: object) -> None:
    with pytest.raises(InvalidArgument, match="budget_usd"):
        fleet.submit_plan({**plan(shell("a")), "budget_usd": budget})


def test_a_plan_stopped_by_its_budget_resumes_once_the_budget_is_raised(fleet: Fleet) -> None:
    spec = {**plan(shell("a"), shell("b", "a")), "budget_usd": 1.0}
    p = fleet.submit_plan(spec)
    _spend(fleet, {"a": 1.5})
    stopped = fleet.get_plan(p.id)
    assert stopped.status is PlanStatus.FAILED
    with pytest.raises(InvalidArgument) as refused:  # resumed, it would fail again at once
        fleet.resume(p.id)
    assert str(refused.value) == (
        f"plan {p.id} cannot resume: budget exceeded: plan {p.id} cost $1.5000, over its $1; "
        f"raise its budget first (agentfleet plan budget {p.id} USD)"
    )
    assert fleet.get_plan(p.id).rev == stopped.rev  # and nothing changed
    with pytest.raises(InvalidArgument, match="budget_usd"):
        fleet.update_plan_fields(p.id, expected={"rev": stopped.rev}, budget_usd=-3)
    raised = fleet.update_plan_fields(p.id, expected={"rev": stopped.rev}, budget_usd=5)
    assert raised.budget_usd == 5.0
    fleet.resume(p.id)
    [resumed] = [e for e in fleet.events(limit=1000) if e.kind == "plan_resumed"]
    assert resumed.plan_id == p.id and resumed.data == {"requeued": [stopped.step("b").job_id]}
    assert _spend(fleet, {"b": 0.5}) == ["b"]
    assert fleet.get_plan(p.id).status is PlanStatus.COMPLETED
