"""Every plan ends, and so does every step: abandon, cancel, a plan set to an end by hand,
a cancelled waiting step, a retry of a stopped plan's step. No path leaves a step waiting
or queued for ever, and a plan that has ended offers no action."""

from __future__ import annotations

import pytest

from agentfleet import Fleet, InvalidTransition, JobStatus, NotResumable, PlanNotFound, PlanStatus
from tests.plans.helpers import claim_all, drain, gate, plan, shell

UNSTARTED = (JobStatus.WAITING, JobStatus.QUEUED)


def _failed(fleet: Fleet) -> int:
    p = fleet.submit_plan(plan(shell("a", max_attempts=1), shell("b", "a")))
    drain(fleet, fail={"a"})
    assert fleet.get_plan(p.id).status is PlanStatus.FAILED
    return p.id


def _at_gate(fleet: Fleet) -> int:
    p = fleet.submit_plan(
        plan(shell("build"), gate("review", "build"), shell("ship", "review"), mode="supervised")
    )
    drain(fleet)
    assert fleet.get_plan(p.id).pending == "review#1"
    return p.id


def _no_step_left_to_run(fleet: Fleet, plan_id: int) -> None:
    assert [s.name for s in fleet.get_plan(plan_id).jobs if s.status in UNSTARTED] == []
    assert claim_all(fleet) == []


def test_abandon_gives_up_a_failed_plan_for_good(fleet: Fleet) -> None:
    plan_id = _failed(fleet)
    assert fleet.abandon_plan(plan_id) is True
    gone = fleet.get_plan(plan_id)
    assert (gone.status, gone.checkpoint, gone.pending) == (PlanStatus.ABANDONED, None, None)
    _no_step_left_to_run(fleet, plan_id)
    with pytest.raises(NotResumable) as refused:
        fleet.resume(plan_id)
    assert (refused.value.plan_id, refused.value.status) == (plan_id, "abandoned")
    assert plan_id not in fleet.find_resumable_plans()
    assert fleet.abandon_plan(plan_id) is False  # idempotent
    assert fleet.cancel_plan(plan_id) is False
    assert [e.kind for e in fleet.events() if e.plan_id == plan_id].count("plan_abandoned") == 1


def test_abandon_gives_up_a_paused_plan_and_ends_its_steps(fleet: Fleet) -> None:
    plan_id = _at_gate(fleet)
    assert fleet.abandon_plan(plan_id) is True
    gone = fleet.get_plan(plan_id)
    assert gone.status is PlanStatus.ABANDONED and gone.pending is None
    assert {s.name: s.status for s in gone.jobs} == {
        "build": JobStatus.SUCCEEDED,
        "review": JobStatus.CANCELLED,
        "ship": JobStatus.CANCELLED,
    }
    assert gone.step("ship").error == "not run: the plan was abandoned"


def test_abandon_refuses_a_running_plan_and_points_to_cancel(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a")))
    with pytest.raises(InvalidTransition, match=r"cancel it \(agentfleet plan cancel"):
        fleet.abandon_plan(p.id)
    assert fleet.get_plan(p.id).status is PlanStatus.RUNNING
    assert fleet.get_plan(p.id).rev == p.rev


def test_abandon_of_a_plan_that_ended_changes_nothing(fleet: Fleet) -> None:
    done = fleet.submit_plan(plan(shell("a")))
    drain(fleet)
    cancelled = fleet.submit_plan(plan(shell("b")))
    fleet.cancel_plan(cancelled.id)
    for plan_id in (done.id, cancelled.id):
        before = fleet.get_plan(plan_id)
        assert fleet.abandon_plan(plan_id) is False
        assert fleet.get_plan(plan_id).rev == before.rev


def test_cancel_clears_the_checkpoint_so_nothing_offers_an_approval(fleet: Fleet) -> None:
    plan_id = _at_gate(fleet)
    assert fleet.cancel_plan(plan_id)
    gone = fleet.get_plan(plan_id)
    assert (gone.status, gone.checkpoint, gone.pending) == (PlanStatus.CANCELLED, None, None)
    _no_step_left_to_run(fleet, plan_id)


def test_a_plan_set_completed_by_hand_ends_its_unstarted_steps(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a"), shell("b", "a"), shell("c")))
    leases = {lease.job.step: lease for lease in claim_all(fleet) if lease.job}
    fleet.update_plan_fields(p.id, expected={"status": "running"}, status="completed")
    ended = fleet.get_plan(p.id)
    assert ended.step("b").status is JobStatus.CANCELLED
    assert ended.step("b").error == "not run: the plan was set completed"
    for name in ("a", "c"):  # running when it ended: asked to stop
        assert fleet.get_job(leases[name].job_id).cancel_requested
    _no_step_left_to_run(fleet, p.id)


def test_a_waiting_step_can_be_cancelled_and_its_plan_stops(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a"), shell("b", "a")))
    b = p.step("b").job_id
    assert fleet.cancel_job(b) is True
    assert fleet.get_job(b).status is JobStatus.CANCELLED
    stopped = fleet.get_plan(p.id)
    assert stopped.status is PlanStatus.FAILED  # an auto plan with a broken step fails
    assert (stopped.checkpoint_context or {}).get("job") == "b"
    _no_step_left_to_run(fleet, p.id)
    assert fleet.cancel_job(b) is False


def test_a_step_of_a_stopped_plan_is_not_retried_into_a_queue_it_never_leaves(
    fleet: Fleet,
) -> None:
    plan_id = _failed(fleet)
    a = fleet.get_plan(plan_id).step("a").job_id
    with pytest.raises(InvalidTransition, match=f"agentfleet plan resume {plan_id}"):
        fleet.retry_job(a)
    assert fleet.get_job(a).status is JobStatus.FAILED
    fleet.cancel_plan(plan_id)
    with pytest.raises(InvalidTransition, match="plan that has ended do not run again"):
        fleet.retry_job(a)
    _no_step_left_to_run(fleet, plan_id)


def test_retry_says_in_words_why_a_job_cannot_be_retried(fleet: Fleet) -> None:
    queued = fleet.enqueue("shell", {"cmd": "true"})
    with pytest.raises(InvalidTransition, match="is queued: it has not run yet") as refused:
        fleet.retry_job(queued.id)
    assert "cannot go from" not in str(refused.value)


def test_approve_and_reject_say_in_words_why_they_cannot(fleet: Fleet) -> None:
    done = fleet.submit_plan(plan(shell("a")))
    drain(fleet)
    with pytest.raises(InvalidTransition) as approving:
        fleet.approve(done.id)
    assert str(approving.value) == (
        f"plan {done.id} is completed: it waits at no checkpoint, so there is nothing to approve"
    )
    with pytest.raises(InvalidTransition) as rejecting:
        fleet.reject(done.id, "no")
    assert str(rejecting.value) == (
        f"plan {done.id} is completed and waits at nothing: only an approval gate can be rejected"
    )
    broken = fleet.submit_plan(plan(shell("b", max_attempts=1), mode="supervised"))
    drain(fleet, fail={"b"})
    with pytest.raises(InvalidTransition, match=f"agentfleet plan resume {broken.id}") as err:
        fleet.approve(broken.id)
    assert "job 'b' failed" in str(err.value) and "cannot go from" not in str(err.value)


def test_a_cancel_is_recorded_with_its_reason_and_the_steps_it_stopped(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a"), shell("b"), shell("c", "a")))
    [running] = fleet.claim_next(worker="w", limit=1)
    assert running.job is not None and running.job.step == "a"  # claimed in id order
    ids = {s.name: s.job_id for s in p.jobs}
    assert fleet.cancel_plan(p.id) is True
    [ended] = [e.data for e in fleet.events() if e.plan_id == p.id and e.kind == "plan_cancelled"]
    assert ended == {
        "reason": "cancelled",
        "cancelled": sorted([ids["b"], ids["c"]]),
        "asked_to_stop": [running.job_id],
    }


def test_an_abandon_is_recorded_as_abandoned(fleet: Fleet) -> None:
    plan_id = _at_gate(fleet)
    ids = {s.name: s.job_id for s in fleet.get_plan(plan_id).jobs}
    assert fleet.abandon_plan(plan_id) is True
    [ended] = [
        e.data for e in fleet.events() if e.plan_id == plan_id and e.kind == "plan_abandoned"
    ]
    assert ended == {
        "reason": "abandoned",
        "cancelled": sorted([ids["review"], ids["ship"]]),
        "asked_to_stop": [],
    }


def test_abandon_of_a_running_plan_names_the_move_it_refused(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a")))
    with pytest.raises(InvalidTransition) as refused:
        fleet.abandon_plan(p.id)
    assert (refused.value.what, refused.value.current, refused.value.wanted) == (
        f"plan {p.id}",
        "running",
        "abandoned",
    )


@pytest.mark.parametrize("verb", ["cancel_plan", "abandon_plan", "resume"])
def test_cancelling_abandoning_or_resuming_no_plan_names_the_missing_plan(
    fleet: Fleet, verb: str
) -> None:
    with pytest.raises(PlanNotFound) as missing:
        getattr(fleet, verb)(987_654)
    assert missing.value.plan_id == 987_654
    assert str(missing.value) == "plan 987654 not found"
