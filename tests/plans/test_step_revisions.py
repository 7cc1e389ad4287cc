"""Every write a plan makes to a step's job row bumps its rev (the If-Match contract).

A snapshot of a step taken before a plan verb moved it must not be writable afterwards:
`update_if_match` with the old rev answers `conflict` and changes nothing.
"""

from __future__ import annotations

from agentfleet import Fleet
from agentfleet.models import Job
from agentfleet.plans.model import Plan
from tests.plans.helpers import claim_all, drain, gate, plan, shell


def _revs(fleet: Fleet, p: Plan) -> dict[str, Job]:
    return {step.name: fleet.get_job(step.job_id) for step in fleet.get_plan(p.id).jobs}


def _assert_stale(fleet: Fleet, before: dict[str, Job], names: list[str]) -> None:
    for name in names:
        old = before[name]
        now = fleet.get_job(old.id)
        assert now.rev > old.rev, f"{name}: rev did not move ({old.rev})"
        result = fleet.update_if_match("jobs", old.id, old.rev, {"priority": 99})
        assert result.status == "conflict", name
        assert fleet.get_job(old.id).priority == now.priority


def test_an_if_match_from_before_a_reject_is_a_conflict(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("build"), gate("review", "build"), mode="supervised"))
    drain(fleet)
    assert fleet.get_plan(p.id).checkpoint == "review"
    before = _revs(fleet, p)
    fleet.reject(p.id, "add tests")
    _assert_stale(fleet, before, ["build", "review"])


def test_an_if_match_from_before_an_approve_is_a_conflict(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("build"), gate("review", "build"), shell("ship", "review")))
    drain(fleet)
    before = _revs(fleet, p)
    fleet.approve(p.id, "ok")
    _assert_stale(fleet, before, ["review", "ship"])


def test_cancel_bumps_the_rev_of_the_running_and_the_unstarted_steps(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a"), shell("b"), shell("c", "a"), max_parallel=4))
    leases = {lease.job.step: lease for lease in claim_all(fleet) if lease.job}
    fleet.complete(leases["a"], result={"ok": True})  # "c" is promoted
    before = _revs(fleet, p)
    assert fleet.cancel_plan(p.id)
    _assert_stale(fleet, before, ["b", "c"])  # "b" asked to stop, "c" ended unstarted


def test_resume_bumps_the_rev_of_the_steps_it_restarts(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a"), shell("b", "a"), mode="supervised"))
    drain(fleet, fail={"a"})
    assert fleet.get_plan(p.id).checkpoint == "on_error"
    before = _revs(fleet, p)
    fleet.resume(p.id)
    _assert_stale(fleet, before, ["a"])
