"""Approvals answer the pause they were meant for, and no other.

A second approve meant for gate `review` (two people, a double click, a retried request)
must not pass the next checkpoint; an approval of a gate's first pause must not pass the
same gate paused again after rework.
"""

from __future__ import annotations

import threading

import pytest

from agentfleet import CheckpointConflict, Fleet, InvalidArgument, PlanStatus
from tests.conftest import StoreEnv
from tests.plans.helpers import drain, gate, plan, shell


def _at_review(fleet: Fleet) -> int:
    spec = plan(
        shell("build"),
        gate("review", "build", on_reject="build"),
        shell("ship", "review"),
        mode="supervised",
    )
    plan_id = fleet.submit_plan(spec).id
    drain(fleet)
    assert fleet.get_plan(plan_id).pending == "review#1"
    return plan_id


def test_a_second_approve_of_a_gate_does_not_pass_the_next_checkpoint(fleet: Fleet) -> None:
    plan_id = _at_review(fleet)
    fleet.approve(plan_id, "ok", checkpoint="review#1")
    drain(fleet)  # ship runs; the plan stops at pre_pr
    before = fleet.get_plan(plan_id)
    assert before.pending == "pre_pr#2"
    for late in ("review#1", "review"):
        with pytest.raises(CheckpointConflict) as refused:
            fleet.approve(plan_id, "ok again", checkpoint=late)
        assert refused.value.pending == "pre_pr#2"
        assert "pre_pr#2" in str(refused.value)
    after = fleet.get_plan(plan_id)
    assert (after.status, after.pending, after.rev) == (PlanStatus.PAUSED, "pre_pr#2", before.rev)
    fleet.approve(plan_id, checkpoint=after.pending)
    assert fleet.get_plan(plan_id).status is PlanStatus.COMPLETED


def test_an_approval_of_a_gates_first_pause_cannot_pass_its_pause_after_rework(
    fleet: Fleet,
) -> None:
    plan_id = _at_review(fleet)
    fleet.reject(plan_id, "add tests", checkpoint="review#1")
    drain(fleet)  # build reruns; review pauses again
    again = fleet.get_plan(plan_id)
    assert again.pending == "review#2"
    with pytest.raises(CheckpointConflict):
        fleet.approve(plan_id, checkpoint="review#1")
    with pytest.raises(CheckpointConflict):
        fleet.reject(plan_id, "stale feedback", checkpoint="review#1")
    assert fleet.get_plan(plan_id).rev == again.rev  # nothing changed
    fleet.approve(plan_id, checkpoint="review#2")
    assert fleet.get_plan(plan_id).step("review").status.value == "succeeded"


def test_a_checkpoint_by_name_alone_matches_any_pause_of_it(fleet: Fleet) -> None:
    plan_id = _at_review(fleet)
    fleet.approve(plan_id, checkpoint="review")
    assert fleet.get_plan(plan_id).step("review").status.value == "succeeded"


def test_answering_a_plan_that_waits_at_nothing_says_so(fleet: Fleet) -> None:
    plan_id = fleet.submit_plan(plan(shell("a"))).id
    with pytest.raises(CheckpointConflict, match="waits at nothing"):
        fleet.approve(plan_id, checkpoint="review#1")


@pytest.mark.parametrize("bad", ["", "review#", "review#two", "#3", 7])
def test_a_malformed_checkpoint_is_refused(fleet: Fleet, bad: object) -> None:
    plan_id = _at_review(fleet)
    with pytest.raises(InvalidArgument, match="checkpoint"):
        fleet.approve(plan_id, checkpoint=bad)  # type: ignore[arg-type]
    assert fleet.get_plan(plan_id).pending == "review#1"


def test_racing_approvals_of_one_pause_have_exactly_one_winner(env: StoreEnv) -> None:
    plan_id = _at_review(env.fleet)
    fleets = [env.open() for _ in range(8)]
    barrier = threading.Barrier(len(fleets))
    outcomes: list[str] = []

    def approve(fleet: Fleet) -> None:
        barrier.wait()
        try:
            fleet.approve(plan_id, "ok", checkpoint="review#1")
            outcomes.append("won")
        except CheckpointConflict:
            outcomes.append("refused")

    threads = [threading.Thread(target=approve, args=(f,)) for f in fleets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused"] * (len(fleets) - 1) + ["won"]
    approved = [e for e in env.fleet.events() if e.kind == "approved" and e.plan_id == plan_id]
    assert len(approved) == 1
