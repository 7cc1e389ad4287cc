"""What an approve or a reject leaves behind, exactly: the gate's result, the reworked
step's payload, the plan's checkpoint, the events; and what each refuses, and how."""

from __future__ import annotations

from typing import Any

import pytest

from agentfleet import CheckpointConflict, Fleet, InvalidTransition, JobStatus, PlanStatus
from tests.plans.helpers import drain, gate, plan, shell


def _plan_events(fleet: Fleet, plan_id: int) -> list[tuple[str, dict[str, Any]]]:
    return [(e.kind, e.data) for e in fleet.events() if e.plan_id == plan_id]


def _reviewed(fleet: Fleet) -> int:
    """A plan paused at its review gate, whose rejections send `code` back."""
    p = fleet.submit_plan(
        plan(
            {"name": "code", "engine": "claude", "prompt": "write it"},
            gate("review", "code", on_reject="code", max_rejections=2),
            shell("ship", "review"),
        )
    )
    drain(fleet)
    assert fleet.get_plan(p.id).checkpoint == "review"
    return p.id


def test_an_approved_gate_keeps_every_round_of_feedback_beside_the_response(
    fleet: Fleet,
) -> None:
    plan_id = _reviewed(fleet)
    fleet.reject(plan_id, "add tests")
    drain(fleet)
    fleet.reject(plan_id, "and docs")
    drain(fleet)
    approved = fleet.approve(plan_id, response="ship it")
    assert approved.step("review").status is JobStatus.SUCCEEDED
    assert approved.step("review").result == {
        "rejections": 2,
        "feedback": ["add tests", "and docs"],
        "approved": True,
        "response": "ship it",
    }
    code = fleet.get_job(approved.step("code").job_id)
    assert code.payload["feedback"] == ["add tests", "and docs"]
    assert code.payload["prompt"] == (
        "write it\n\nReviewer feedback (round 1): add tests"
        "\n\nReviewer feedback (round 2): and docs"
    )


def test_approve_and_reject_are_recorded_on_the_plan_with_what_was_said(fleet: Fleet) -> None:
    plan_id = _reviewed(fleet)
    seen = len(_plan_events(fleet, plan_id))
    fleet.reject(plan_id, "add tests")
    drain(fleet)
    fleet.approve(plan_id, response="ship it")
    events = _plan_events(fleet, plan_id)[seen:]
    answers = [(k, d) for k, d in events if k in ("rejected", "approved")]
    assert answers == [
        ("rejected", {"gate": "review", "feedback": "add tests"}),
        ("approved", {"checkpoint": "review", "response": "ship it"}),
    ]


def test_approving_at_pre_pr_completes_the_plan_and_records_both(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("build"), mode="supervised"))
    drain(fleet)
    assert fleet.get_plan(p.id).checkpoint == "pre_pr"
    seen = len(_plan_events(fleet, p.id))
    done = fleet.approve(p.id, response="open it")
    assert (done.status, done.checkpoint) == (PlanStatus.COMPLETED, None)
    assert _plan_events(fleet, p.id)[seen:] == [
        ("approved", {"checkpoint": "pre_pr", "response": "open it"}),
        ("plan_completed", {}),
    ]


def test_an_approval_gate_named_pre_pr_is_passed_and_the_plan_runs_on(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("build"), gate("pre_pr", "build"), shell("land", "pre_pr")))
    drain(fleet)
    assert fleet.get_plan(p.id).checkpoint == "pre_pr"
    approved = fleet.approve(p.id, response="go")
    assert approved.status is PlanStatus.RUNNING
    assert approved.step("pre_pr").result == {"approved": True, "response": "go"}
    assert approved.step("land").status is JobStatus.QUEUED
    assert drain(fleet) == ["land"]
    assert fleet.get_plan(p.id).status is PlanStatus.COMPLETED


@pytest.mark.parametrize("answer", ["approve", "reject"])
def test_leaving_a_gate_clears_its_checkpoint_and_context(fleet: Fleet, answer: str) -> None:
    plan_id = _reviewed(fleet)
    if answer == "approve":
        after = fleet.approve(plan_id, response="ship it")
    else:
        after = fleet.reject(plan_id, "add tests")
    assert after.status is PlanStatus.RUNNING
    assert (after.checkpoint, after.checkpoint_context, after.pending) == (None, None, None)


def test_reject_without_feedback_cancels_the_plan_as_rejected(fleet: Fleet) -> None:
    plan_id = _reviewed(fleet)
    assert fleet.reject(plan_id, None).status is PlanStatus.CANCELLED
    reasons = [d.get("reason") for k, d in _plan_events(fleet, plan_id) if k == "plan_cancelled"]
    assert reasons == ["rejected"]


def test_rejecting_a_gate_with_nothing_before_it_cancels_the_plan(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(gate("review"), shell("ship", "review")))
    assert fleet.get_plan(p.id).checkpoint == "review"
    ended = fleet.reject(p.id, "no")
    assert ended.status is PlanStatus.CANCELLED
    assert ended.step("ship").status is JobStatus.CANCELLED


def test_reject_refuses_a_pause_that_is_no_approval_gate(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("build"), mode="supervised"))
    drain(fleet)
    before = fleet.get_plan(p.id)
    assert before.checkpoint == "pre_pr"
    with pytest.raises(InvalidTransition) as refused:
        fleet.reject(p.id, "no")
    assert str(refused.value) == (
        f"plan {p.id} is paused and waits at pre_pr: only an approval gate can be rejected"
    )
    assert (refused.value.what, refused.value.current, refused.value.wanted) == (
        f"plan {p.id}",
        "paused",
        "running",
    )
    after = fleet.get_plan(p.id)
    assert (after.status, after.checkpoint, after.rev) == (PlanStatus.PAUSED, "pre_pr", before.rev)


def test_approve_refuses_a_plan_paused_at_no_checkpoint(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("build"), shell("ship", "build")))
    fleet.update_plan_fields(p.id, expected={"status": "running"}, status="paused")
    before = fleet.get_plan(p.id)
    with pytest.raises(InvalidTransition) as refused:
        fleet.approve(p.id, response="go")
    assert (refused.value.what, refused.value.current, refused.value.wanted) == (
        f"plan {p.id}",
        "paused",
        "running",
    )
    assert "it waits at no checkpoint, so there is nothing to approve" in str(refused.value)
    after = fleet.get_plan(p.id)
    assert (after.status, after.rev) == (PlanStatus.PAUSED, before.rev)


def test_approve_at_an_error_says_it_stopped_on_an_error(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("b", max_attempts=1), mode="supervised"))
    drain(fleet, fail={"b"})
    before = fleet.get_plan(p.id)
    assert before.checkpoint == "on_error"
    with pytest.raises(InvalidTransition) as refused:
        fleet.approve(p.id)
    assert (refused.value.what, refused.value.current, refused.value.wanted) == (
        f"plan {p.id}",
        "on_error",
        "running",
    )
    assert fleet.get_plan(p.id).rev == before.rev


def test_approving_a_pause_made_by_hand_passes_no_gate(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("build"), gate("review", "build"), shell("ship", "review")))
    review = p.step("review").job_id
    fleet.update_plan_fields(
        p.id,
        expected={"status": "running"},
        status="paused",
        checkpoint="hold",
        checkpoint_context={"job_id": review, "note": "paused by hand"},
    )
    resumed = fleet.approve(p.id, response="go on")
    assert resumed.status is PlanStatus.RUNNING
    assert {s.name: s.status for s in resumed.jobs} == {
        "build": JobStatus.QUEUED,
        "review": JobStatus.WAITING,  # still waits for build, and then for a person
        "ship": JobStatus.WAITING,
    }
    assert resumed.step("review").result is None


def test_a_late_answer_names_the_plan_and_the_pause_it_was_meant_for(fleet: Fleet) -> None:
    plan_id = _reviewed(fleet)
    first = fleet.get_plan(plan_id).pending
    assert first == "review#1"
    fleet.reject(plan_id, "add tests", checkpoint=first)
    drain(fleet)
    with pytest.raises(CheckpointConflict) as refused:
        fleet.approve(plan_id, response="late", checkpoint=first)
    found = refused.value
    assert (found.plan_id, found.asked, found.pending, found.status) == (
        plan_id,
        "review#1",
        "review#2",
        "paused",
    )
