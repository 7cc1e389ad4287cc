"""Scheduling, checkpoints, approval gates, resume and cancel on every store."""

from __future__ import annotations

import pytest

from agentfleet import (
    Fleet,
    InvalidTransition,
    JobCancelled,
    JobStatus,
    NotResumable,
    PlanConflict,
    PlanNotFound,
    PlanStatus,
)
from tests.conftest import StoreEnv
from tests.plans.helpers import STALE, claim_all, drain, gate, plan, shell, stale_at, still_fresh


def test_jobs_start_only_when_dependencies_succeed(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a"), shell("b", "a"), shell("c", "a"), shell("d", "b", "c")))
    first = claim_all(fleet)
    assert [lease.job.step for lease in first if lease.job] == ["a"]
    assert claim_all(fleet) == []
    fleet.complete(first[0])
    second = claim_all(fleet)
    assert sorted(lease.job.step for lease in second if lease.job) == ["b", "c"]
    fleet.complete(second[0])
    assert claim_all(fleet) == []  # d still waits for the other
    fleet.complete(second[1])
    [last] = claim_all(fleet)
    assert last.job is not None and last.job.step == "d"
    fleet.complete(last)
    done = fleet.get_plan(p.id)
    assert done.status is PlanStatus.COMPLETED and done.completed_at is not None
    promoted = [(e.job_id, e.plan_id, e.data) for e in fleet.events(limit=1000)
                if e.kind == "promoted"]  # fmt: skip
    assert sorted(promoted) == sorted((s.job_id, p.id, {"step": s.name}) for s in done.jobs)


def test_max_parallel_caps_running_jobs(fleet: Fleet) -> None:
    fleet.submit_plan(plan(*[shell(f"s{i}") for i in range(5)], max_parallel=2))
    first = claim_all(fleet)
    assert [lease.job.step for lease in first if lease.job] == ["s0", "s1"]
    assert claim_all(fleet) == []
    fleet.complete(first[0])
    assert [lease.job.step for lease in claim_all(fleet) if lease.job] == ["s2"]
    assert claim_all(fleet) == []
    fleet.complete(first[1])
    assert [lease.job.step for lease in claim_all(fleet) if lease.job] == ["s3"]


def test_dependents_read_results_and_output(fleet: Fleet) -> None:
    from agentfleet import RunOutput

    p = fleet.submit_plan(plan(shell("build"), shell("test", "build")))
    [build] = claim_all(fleet)
    fleet.complete(build, result={"artifact": "app.whl"}, output=RunOutput(0, "built\n", ""))
    test_job = fleet.get_plan(p.id).step("test").job_id
    assert fleet.plan_inputs(test_job) == {
        "build": {"status": "succeeded", "result": {"artifact": "app.whl"}, "stdout": "built\n"}
    }


def test_auto_plan_fails_when_a_job_fails_for_good(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a"), shell("b", "a")))
    drain(fleet, fail={"a"})
    failed = fleet.get_plan(p.id)
    assert failed.status is PlanStatus.FAILED
    assert failed.checkpoint_context == {
        "job": "a",
        "job_id": failed.step("a").job_id,
        "kind": "failed",
        "error": "a broke",
    }
    # "b" will not run unless the plan is resumed: it ends, saying why, instead of waiting
    assert (failed.step("b").status, failed.step("b").error) == (
        JobStatus.CANCELLED,
        "not run: the plan failed",
    )
    resumed = fleet.resume(p.id)
    assert [s.status for s in resumed.jobs] == [JobStatus.QUEUED, JobStatus.WAITING]
    assert drain(fleet) == ["a", "b"]


def test_supervised_plan_pauses_on_error_then_resumes(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a"), shell("b"), shell("c", "a", "b"), mode="supervised"))
    drain(fleet, fail={"a"})
    paused = fleet.get_plan(p.id)
    assert (paused.status, paused.checkpoint) == (PlanStatus.PAUSED, "on_error")
    assert paused.checkpoint_context is not None and paused.checkpoint_context["job"] == "a"
    assert paused.step("b").status is JobStatus.SUCCEEDED
    with pytest.raises(InvalidTransition):
        fleet.approve(p.id)
    resumed = fleet.resume(p.id)
    assert resumed.status is PlanStatus.RUNNING and resumed.checkpoint is None
    assert resumed.step("a").status is JobStatus.QUEUED and resumed.step("a").attempts == 0
    drain(fleet)
    finished = fleet.get_plan(p.id)
    assert (finished.status, finished.checkpoint) == (PlanStatus.PAUSED, "pre_pr")
    assert fleet.approve(p.id).status is PlanStatus.COMPLETED


def test_approval_gate_approve_passes_response_on(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a"), gate("review", "a"), shell("b", "review")))
    drain(fleet)
    waiting = fleet.get_plan(p.id)
    assert (waiting.status, waiting.checkpoint) == (PlanStatus.PAUSED, "review")
    assert waiting.checkpoint_context is not None
    assert waiting.checkpoint_context["message"] == "approve review?"
    approved = fleet.approve(p.id, response="ship it")
    assert approved.status is PlanStatus.RUNNING
    assert approved.step("review").result["response"] == "ship it"
    b_id = approved.step("b").job_id
    assert fleet.plan_inputs(b_id)["review"]["result"]["response"] == "ship it"
    drain(fleet)
    assert fleet.get_plan(p.id).status is PlanStatus.COMPLETED


def test_reject_with_feedback_reruns_the_named_job(fleet: Fleet) -> None:
    p = fleet.submit_plan(
        plan(
            {"name": "code", "engine": "claude", "prompt": "write it"},
            gate("review", "code", on_reject="code", max_rejections=2),
        )
    )
    drain(fleet)
    again = fleet.reject(p.id, "add tests")
    assert again.status is PlanStatus.RUNNING
    code = fleet.get_job(again.step("code").job_id)
    assert code.status is JobStatus.QUEUED and code.payload["feedback"] == ["add tests"]
    assert "Reviewer feedback (round 1): add tests" in code.payload["prompt"]
    drain(fleet)
    fleet.reject(p.id, "still no tests")
    drain(fleet)
    cancelled = fleet.reject(p.id, "third time")
    assert cancelled.status is PlanStatus.CANCELLED


def test_reject_without_feedback_cancels(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a"), gate("review", "a"), shell("b", "review")))
    drain(fleet)
    done = fleet.reject(p.id)
    assert done.status is PlanStatus.CANCELLED
    assert done.step("b").status is JobStatus.CANCELLED


def test_cancel_twice_cancels_nothing_the_second_time(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a"), shell("b"), shell("c", "a"), max_parallel=1))
    [running] = claim_all(fleet)
    assert fleet.cancel_plan(p.id) is True
    assert fleet.cancel_plan(p.id) is False
    after = fleet.get_plan(p.id)
    assert after.status is PlanStatus.CANCELLED
    assert after.step("b").status is JobStatus.CANCELLED
    assert fleet.get_job(running.job_id).cancel_requested
    assert claim_all(fleet) == []
    with pytest.raises(JobCancelled):  # a job that finishes anyway is refused ...
        fleet.complete(running)
    fleet.fail(running, "cancelled", retry=False)  # ... and ends cancelled
    assert fleet.get_job(running.job_id).status is JobStatus.CANCELLED
    assert fleet.get_plan(p.id).status is PlanStatus.CANCELLED
    assert claim_all(fleet) == []


def test_cancel_never_touches_a_completed_plan(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a")))
    drain(fleet)
    before = fleet.get_plan(p.id)
    assert fleet.cancel_plan(p.id) is False
    after = fleet.get_plan(p.id)
    assert (after.status, after.rev, after.updated_at) == (
        before.status,
        before.rev,
        before.updated_at,
    )


def test_resume_refuses_with_the_current_status(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a")))
    with pytest.raises(NotResumable) as refused:
        fleet.resume(p.id)
    assert refused.value.status == "running"
    with pytest.raises(PlanNotFound):
        fleet.resume(987654)
    drain(fleet)
    with pytest.raises(NotResumable, match="completed"):
        fleet.resume(p.id)


@pytest.mark.fleet_options(stale_window=STALE)
def test_stale_running_plan_becomes_resumable(env: StoreEnv) -> None:
    fleet = env.fleet
    p = fleet.submit_plan(plan(shell("a")))
    found = fleet.find_resumable_plans()
    if still_fresh(fleet, p.id):
        assert found == []
        with pytest.raises(NotResumable, match="running"):
            fleet.resume(p.id)
    env.move_past(stale_at(fleet, p.id))
    assert fleet.find_resumable_plans() == [p.id]
    resumed = fleet.resume(p.id)
    assert resumed.status is PlanStatus.RUNNING and resumed.rev > p.rev
    found = fleet.find_resumable_plans()
    if still_fresh(fleet, p.id):
        assert found == []


def test_update_plan_fields_is_scoped_and_guarded(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a")))
    updated = fleet.update_plan_fields(
        p.id, expected={"rev": p.rev}, pr_url="https://example.invalid/pr/1"
    )
    assert updated.pr_url == "https://example.invalid/pr/1" and updated.rev == p.rev + 1
    with pytest.raises(PlanConflict):
        fleet.update_plan_fields(p.id, expected={"rev": p.rev}, pr_url="stale")
    with pytest.raises(InvalidTransition) as refused:
        fleet.update_plan_fields(p.id, status="pending")
    assert (refused.value.what, refused.value.current, refused.value.wanted) == (
        "plan",
        "running",
        "pending",
    )
    assert fleet.get_plan(p.id).pr_url == "https://example.invalid/pr/1"


def test_a_plan_has_no_step_by_another_name(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a")))
    assert p.step("a").name == "a"
    with pytest.raises(KeyError) as missing:
        p.step("nope")
    assert missing.value.args == ("nope",)


def test_plans_are_listed_newest_first_by_status_and_page(fleet: Fleet) -> None:
    done = fleet.submit_plan(plan(shell("a")))
    drain(fleet)
    first = fleet.submit_plan(plan(shell("b")))
    second = fleet.submit_plan(plan(shell("c")))
    assert [p.id for p in fleet.list_plans()] == [second.id, first.id, done.id]
    assert [p.id for p in fleet.list_plans(status="running")] == [second.id, first.id]
    assert [p.id for p in fleet.list_plans(status=PlanStatus.COMPLETED)] == [done.id]
    assert [p.id for p in fleet.list_plans(limit=1, offset=1)] == [first.id]
    [listed] = fleet.list_plans(status="completed")
    assert listed == fleet.get_plan(done.id)
