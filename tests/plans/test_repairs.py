"""Every repair is an event with its reason: a plan that missed its step's event is moved
on by the reconciler, which says which drift it repaired, in the repair and in the log."""

from __future__ import annotations

from typing import Any

import pytest

from agentfleet import Fleet, PlanStatus
from tests.plans.helpers import claim_all, gate, plan, shell

DRIFTS = {
    "complete": (
        [shell("only")],
        "complete",
        "all jobs done but plan still running",
        PlanStatus.COMPLETED,
    ),
    "fail": (
        [shell("only")],
        "fail",
        "a job failed for good but the plan was still running",
        PlanStatus.FAILED,
    ),
    "promote": (
        [shell("a"), shell("b", "a")],
        "complete",
        "ready jobs were not promoted",
        PlanStatus.RUNNING,
    ),
    "pause": (
        [shell("a"), gate("review", "a")],
        "complete",
        "plan should have stopped at review",
        PlanStatus.PAUSED,
    ),
}


@pytest.mark.parametrize("drift", sorted(DRIFTS))
def test_a_repair_says_which_drift_it_repaired(fleet: Fleet, drift: str) -> None:
    jobs, end, reason, status = DRIFTS[drift]
    busy = fleet.submit_plan(plan(shell("slow")))  # looked at first: nothing to repair there
    p = fleet.submit_plan(plan(*jobs))
    [lease] = [lease for lease in claim_all(fleet) if lease.job and lease.job.plan_id == p.id]
    if end == "complete":  # the store's own write: the plan misses the event
        fleet.store.complete(lease, {"ok": True}, None)
    else:
        fleet.store.fail(lease, "broke", None, None)
    repairs = fleet.reconcile()
    assert repairs is not None
    assert [(r.kind, r.reason, r.plan_id) for r in repairs] == [("plan_advanced", reason, p.id)]
    logged: list[dict[str, Any]] = [
        e.data for e in fleet.events() if e.plan_id == p.id and e.kind == "repair"
    ]
    assert logged == [{"reason": reason}]
    assert fleet.get_plan(p.id).status is status
    assert fleet.get_plan(busy.id).status is PlanStatus.RUNNING  # left as it was


def test_only_a_landing_step_gives_its_plan_a_pull_request(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("build"), shell("ship", "build")))
    [build] = claim_all(fleet)
    fleet.complete(build, result={"pr_url": "https://example.test/not-a-landing"})
    [ship] = claim_all(fleet)
    fleet.complete(ship, result={"ok": True})
    done = fleet.get_plan(p.id)
    assert (done.status, done.pr_url) == (PlanStatus.COMPLETED, None)
