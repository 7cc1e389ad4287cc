"""A plan's jobs run only while their plan runs, and its finished steps stay finished.

The claim query itself checks that a job's plan is running (the database says so, not the
caller): a queued step of a paused, failed or cancelled plan is never claimed, by id, by
claim_next or by the batched fast path, until the plan runs again.
"""

from __future__ import annotations

import pytest

from agentfleet import Fleet, InvalidTransition, JobStatus, Plan, PlanStatus
from tests.conftest import StoreEnv
from tests.plans.helpers import claim_all, drain, plan, shell


def _assert_not_claimable(fleet: Fleet, job_id: int) -> None:
    before, runs = fleet.get_job(job_id), fleet.runs(job_id)
    assert before.status is JobStatus.QUEUED
    assert fleet.claim(job_id, worker="intruder") is None
    assert fleet.claim_next(worker="intruder", limit=10) == []
    assert fleet.complete_and_claim([], worker="intruder", limit=10) == ([], [])
    assert fleet.get_job(job_id) == before
    assert fleet.runs(job_id) == runs


def _paused_with_a_queued_step(fleet: Fleet) -> tuple[Plan, int]:
    """A paused plan whose step is queued anyway. Every path of the coordinator holds a
    stopped plan's queued steps back; the claim query's own plan check is the last line of
    defence, so the step is put back in the queue by hand (drift) to prove that check."""
    p = fleet.submit_plan(plan(shell("a"), shell("b")))
    queued = p.step("a").job_id
    assert fleet.get_job(queued).status is JobStatus.QUEUED
    paused = fleet.update_plan_fields(
        p.id, expected={"status": "running"}, status="paused", checkpoint="pre_merge"
    )
    assert paused.status is PlanStatus.PAUSED
    assert fleet.get_job(queued).status is JobStatus.WAITING  # held back by the pause
    with fleet.store.dialect.tx() as tx:
        tx.q("UPDATE jobs SET status = 'queued' WHERE id = :id", {"id": queued})
    return paused, queued


def test_a_paused_plan_holds_its_queued_job(fleet: Fleet) -> None:
    p, queued = _paused_with_a_queued_step(fleet)
    _assert_not_claimable(fleet, queued)
    assert fleet.resume(p.id).status is PlanStatus.RUNNING
    got = sorted(lease.job.step for lease in claim_all(fleet) if lease.job)
    assert got == ["a", "b"]


def test_the_fast_path_skips_a_paused_plan(fleet: Fleet) -> None:
    _, queued = _paused_with_a_queued_step(fleet)
    loose = fleet.enqueue("shell", {"n": "not in a plan"})
    done, claimed = fleet.complete_and_claim([], worker="w", limit=10)
    assert done == [] and [lease.job_id for lease in claimed] == [loose.id]
    assert fleet.get_job(queued).status is JobStatus.QUEUED
    assert [lease.job_id for lease in fleet.claim_next(worker="w", limit=10)] == []


def test_a_retried_step_of_a_failed_plan_waits_for_resume(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a", max_attempts=1), shell("b", "a")))
    drain(fleet, fail={"a"})
    assert fleet.get_plan(p.id).status is PlanStatus.FAILED
    step = p.step("a").job_id
    with pytest.raises(InvalidTransition, match="resume the plan"):  # it would never run
        fleet.retry_job(step)
    assert fleet.get_job(step).status is JobStatus.FAILED
    assert fleet.claim(step, worker="intruder") is None
    assert fleet.resume(p.id).status is PlanStatus.RUNNING
    assert drain(fleet) == ["a", "b"]
    assert fleet.get_plan(p.id).status is PlanStatus.COMPLETED


def test_a_retried_step_of_a_cancelled_plan_never_runs(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a"), shell("b", "a")))
    assert fleet.cancel_plan(p.id) is True
    step = p.step("a").job_id
    assert fleet.get_job(step).status is JobStatus.CANCELLED
    with pytest.raises(InvalidTransition, match="plan that has ended do not run again"):
        fleet.retry_job(step)
    assert fleet.claim(step, worker="intruder") is None
    assert fleet.get_plan(p.id).status is PlanStatus.CANCELLED


def test_a_completed_plans_step_is_not_retried(env: StoreEnv) -> None:
    fleet = env.fleet
    p = fleet.submit_plan(plan(shell("a"), shell("b", "a")))
    assert drain(fleet) == ["a", "b"]
    done = fleet.get_plan(p.id)
    assert done.status is PlanStatus.COMPLETED
    env.move_on()
    for name in ("a", "b"):
        job_id = done.step(name).job_id
        before = fleet.get_job(job_id)
        with pytest.raises(InvalidTransition):
            fleet.retry_job(job_id)
        assert fleet.get_job(job_id) == before
    assert fleet.get_plan(p.id) == done
    assert claim_all(fleet) == []


def test_a_finished_step_is_not_rerun_under_its_dependents(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("build"), shell("test", "build")))
    [build] = claim_all(fleet)
    fleet.complete(build, result={"artifact": "app.whl"})
    test_id = fleet.get_plan(p.id).step("test").job_id
    with pytest.raises(InvalidTransition):
        fleet.retry_job(build.job_id)
    assert fleet.plan_inputs(test_id)["build"]["result"] == {"artifact": "app.whl"}
    [test_step] = claim_all(fleet)
    assert test_step.job_id == test_id
    assert fleet.get_job(build.job_id).status is JobStatus.SUCCEEDED
    assert len(fleet.runs(build.job_id)) == 1


def test_cancel_job_of_a_completed_plans_step_changes_nothing(env: StoreEnv) -> None:
    fleet = env.fleet
    p = fleet.submit_plan(plan(shell("a"), shell("b", "a")))
    drain(fleet)
    done = fleet.get_plan(p.id)
    steps = {s.name: fleet.get_job(s.job_id) for s in done.jobs}
    env.move_on()
    for job in steps.values():
        assert fleet.cancel_job(job.id) is False
    assert {s.name: fleet.get_job(s.job_id) for s in done.jobs} == steps
    assert fleet.get_plan(p.id) == done


@pytest.mark.fleet_options(reap_interval=0)
def test_claim_next_reaps_a_dead_step_and_the_plan_moves_on(env: StoreEnv) -> None:
    """A step whose worker died is reaped by the next claim_next (no reaper needed), and
    its plan follows: here its last attempt is spent, so the plan fails."""
    fleet = env.fleet
    p = fleet.submit_plan(plan(shell("a", max_attempts=1), shell("b", "a")))
    [dead] = fleet.claim_next(worker="dead", limit=5, ttl=env.short_ttl)
    env.expire_lease(dead.job_id)
    assert fleet.claim_next(worker="alive", limit=5) == []
    step = fleet.get_job(dead.job_id)
    assert (step.status, step.error) == (JobStatus.FAILED, "lease expired")
    failed = fleet.get_plan(p.id)
    assert failed.status is PlanStatus.FAILED
    assert failed.checkpoint_context is not None and failed.checkpoint_context["job"] == "a"
    # "b" will not run unless the plan is resumed: it ends, saying why
    assert (failed.step("b").status, failed.step("b").error) == (
        JobStatus.CANCELLED,
        "not run: the plan failed",
    )


def test_a_paused_plans_step_does_not_hold_up_its_lock(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("edit", lock="repo")))
    paused = fleet.update_plan_fields(
        p.id, expected={"status": "running"}, status="paused", checkpoint="hold"
    )
    assert paused.step("edit").status is JobStatus.WAITING  # held back, as a pause does
    other = fleet.enqueue("shell", {"cmd": "other"}, lock="repo")
    assert [lease.job_id for lease in fleet.claim_next(worker="w", limit=5)] == [other.id]


def test_a_stopped_plans_queued_step_never_blocks_the_first_of_its_lock(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("edit", lock="repo")))
    fleet.update_plan_fields(p.id, expected={"status": "running"}, status="paused", checkpoint="x")
    with fleet.store.dialect.tx() as tx:  # drift: the step queued again while paused
        tx.q("UPDATE jobs SET status = 'queued' WHERE id = :id", {"id": p.step("edit").job_id})
    other = fleet.enqueue("shell", {"cmd": "other"}, lock="repo", priority=-5)
    assert [lease.job_id for lease in fleet.claim_next(worker="w", limit=5)] == [other.id]
