"""A plan step's stale holder cannot end the step, nor move its plan."""

from __future__ import annotations

import pytest

from agentfleet import JobStatus, PlanStatus
from tests.conftest import StoreEnv
from tests.contract.test_fencing import VERBS, assert_refused
from tests.plans.helpers import plan, shell


@pytest.mark.parametrize("verb", VERBS)
def test_a_stale_write_leaves_the_plan_step_alone(env: StoreEnv, verb: str) -> None:
    fleet = env.fleet
    p = fleet.submit_plan(plan(shell("build", max_attempts=5), shell("ship", "build")))
    [stale] = fleet.claim_next(worker="stale", limit=5, ttl=env.short_ttl)
    assert stale.job is not None and stale.job.step == "build"
    env.expire_lease(stale.job_id)
    successor = fleet.claim(stale.job_id, worker="successor", ttl=600)
    assert successor is not None
    before = fleet.get_plan(p.id)
    assert_refused(fleet, verb, stale, successor)  # ... which ends with the successor's complete
    after = fleet.get_plan(p.id)
    assert after.status is PlanStatus.RUNNING
    assert after.step("build").status is JobStatus.SUCCEEDED
    assert after.step("build").result == {"by": "successor"}
    assert after.step("ship").status is JobStatus.QUEUED  # promoted by the successor's complete
    assert before.step("ship").status is JobStatus.WAITING
    [ship] = fleet.claim_next(worker="w", limit=5)
    assert fleet.plan_inputs(ship.job_id)["build"]["result"] == {"by": "successor"}
