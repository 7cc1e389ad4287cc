"""A step's writes about its plan are fenced by its lease, and every plan write's values
are checked, with the same answers on every store."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from agentfleet import (
    Fleet,
    InvalidArgument,
    JobStatus,
    LeaseLost,
    PlanConflict,
    PlanNotFound,
    PlanStatus,
)
from tests.conftest import StoreEnv
from tests.plans.helpers import plan, shell


def test_a_step_writes_about_its_plan_while_its_lease_holds(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("pr")))
    [lease] = fleet.claim_next(worker="w")
    done = fleet.update_plan_fields(p.id, lease=lease, pr_url="https://example.test/pr/1")
    assert done.pr_url == "https://example.test/pr/1"


def test_a_taken_over_step_can_no_longer_write_about_its_plan(env: StoreEnv) -> None:
    fleet = env.fleet
    p = fleet.submit_plan(plan(shell("pr")))
    [stale] = fleet.claim_next(worker="paused", ttl=env.short_ttl)
    env.expire()
    fresh = fleet.claim(stale.job_id, worker="successor")  # takes the step over
    assert fresh is not None and fresh.epoch == stale.epoch + 1
    before = fleet.get_plan(p.id)
    for fields in (
        {"pr_url": "https://example.test/stale"},
        {"metadata": {"by": "stale"}},
        {"checkpoint_context": {"kind": "stale"}},
    ):
        with pytest.raises(LeaseLost) as lost:
            fleet.update_plan_fields(p.id, lease=stale, **fields)
        assert lost.value.current_epoch == fresh.epoch
    after = fleet.get_plan(p.id)
    assert (after.rev, after.pr_url, after.metadata) == (before.rev, None, before.metadata)
    assert fleet.update_plan_fields(p.id, lease=fresh, pr_url="https://example.test/pr/2").rev


def test_a_lease_of_another_plans_step_is_refused(fleet: Fleet) -> None:
    mine = fleet.submit_plan(plan(shell("a")))
    other = fleet.submit_plan(plan(shell("b")))
    leases = {
        lease.job.plan_id: lease for lease in fleet.claim_next(worker="w", limit=5) if lease.job
    }
    with pytest.raises(LeaseLost):
        fleet.update_plan_fields(mine.id, lease=leases[other.id], pr_url="https://x.test/1")
    assert fleet.get_plan(mine.id).pr_url is None


def test_a_holding_step_whose_guard_is_stale_gets_a_conflict_not_a_lost_lease(
    fleet: Fleet,
) -> None:
    p = fleet.submit_plan(plan(shell("pr")))
    [lease] = fleet.claim_next(worker="w")
    before = fleet.get_plan(p.id)
    first = fleet.update_plan_fields(p.id, lease=lease, pr_url="https://example.test/pr/1")
    with pytest.raises(PlanConflict) as conflict:
        fleet.update_plan_fields(
            p.id, expected={"rev": before.rev}, lease=lease, pr_url="https://example.test/pr/2"
        )
    assert (conflict.value.plan_id, conflict.value.status, conflict.value.rev) == (
        p.id,
        "running",
        first.rev,
    )
    assert f"found status 'running' at rev {first.rev}" in str(conflict.value)
    assert fleet.get_plan(p.id).pr_url == "https://example.test/pr/1"


def test_a_finished_steps_lease_is_lost_and_says_what_the_step_is_now(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("pr"), shell("after", "pr")))
    [lease] = fleet.claim_next(worker="w")
    fleet.complete(lease)
    with pytest.raises(LeaseLost) as lost:
        fleet.update_plan_fields(p.id, lease=lease, pr_url="https://example.test/late")
    found = lost.value
    assert (found.job_id, found.epoch, found.current_epoch, found.status) == (
        lease.job_id,
        lease.epoch,
        lease.epoch,
        JobStatus.SUCCEEDED.value,
    )
    assert fleet.get_plan(p.id).pr_url is None


def test_a_lease_of_no_job_is_lost(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("pr")))
    [lease] = fleet.claim_next(worker="w")
    forged = replace(lease, job_id=lease.job_id + 1000)
    with pytest.raises(LeaseLost) as lost:
        fleet.update_plan_fields(p.id, lease=forged, pr_url="https://example.test/forged")
    found = lost.value
    assert (found.job_id, found.epoch, found.current_epoch, found.status) == (
        forged.job_id,
        lease.epoch,
        None,
        None,
    )
    assert fleet.get_plan(p.id).pr_url is None


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"status": "exploded"}, "not a plan status"),
        ({"status": 3}, "not a plan status"),
        ({"checkpoint": 7}, "checkpoint must be a string"),
        ({"checkpoint": "a\nb"}, "single line"),
        ({"completed_at": "2026-12-01T00:00:00Z"}, "completed_at must be a timezone-aware"),
        ({"completed_at": datetime(2026, 12, 1)}, "completed_at must be a timezone-aware"),
        ({"pr_url": ["x"]}, "pr_url must be a string"),
        ({"metadata": [1, 2]}, "metadata"),
        ({"checkpoint_context": "text"}, "checkpoint_context"),
        ({"mode": "auto"}, "not a plan-level field"),
    ],
)
def test_plan_field_values_are_checked_the_same_on_every_store(
    fleet: Fleet, fields: dict[str, Any], problem: str
) -> None:
    p = fleet.submit_plan(plan(shell("a")))
    with pytest.raises(InvalidArgument, match=problem):
        fleet.update_plan_fields(p.id, **fields)
    assert fleet.get_plan(p.id).rev == p.rev


@pytest.mark.parametrize(
    "expected",
    [{"status": "nope"}, {"rev": "1"}, {"pauses": 1.5}, {"checkpoint": 3}, {"name": "x"}],
)
def test_plan_guards_are_checked(fleet: Fleet, expected: dict[str, Any]) -> None:
    p = fleet.submit_plan(plan(shell("a")))
    with pytest.raises(InvalidArgument):
        fleet.update_plan_fields(p.id, expected=expected, pr_url="https://x.test")
    assert fleet.get_plan(p.id).pr_url is None


def test_completed_at_takes_an_aware_datetime_on_every_store(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a")))
    when = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)
    done = fleet.update_plan_fields(p.id, status="completed", completed_at=when)
    assert done.status is PlanStatus.COMPLETED and done.completed_at == when


def test_a_plan_field_write_is_logged_with_the_fields_it_changed(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a")))
    fleet.update_plan_fields(p.id, pr_url="https://x.test/1", metadata={"k": 1})
    [logged] = [e.data for e in fleet.events() if e.plan_id == p.id and e.kind == "plan_updated"]
    assert logged == {"fields": ["metadata", "pr_url"]}


def test_a_plan_field_write_needs_a_field_and_a_plan(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a")))
    with pytest.raises(InvalidArgument, match=r"^update_plan_fields needs at least one field"):
        fleet.update_plan_fields(p.id)
    with pytest.raises(PlanNotFound) as missing:
        fleet.update_plan_fields(987_654, pr_url="https://x.test/1")
    assert missing.value.plan_id == 987_654
