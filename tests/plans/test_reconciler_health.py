"""The reconciler never fails a healthy plan.

"Orphaned" means nothing can make progress: no step queued, none running under a live
lease, none waiting with its dependencies done. A plan whose steps wait for a worker, for
capacity or behind a named lock is healthy however long they wait; a dead worker's step
goes back to the queue. On memory and SQLite the store's clock passes the default
15-minute window; on PostgreSQL, whose clock is the server's, the window is one second
and the test waits it out.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import agentfleet
from agentfleet import Fleet, JobStatus, PlanStatus
from tests.conftest import FAST_RETRY, StoreEnv
from tests.plans.helpers import drain, plan, shell


@dataclass
class Windowed:
    fleet: Fleet
    env: StoreEnv
    window: float

    def pass_window(self) -> None:
        """Let the stale window, and any lease as short as the env's, run out."""
        self.env.pass_time(max(self.window, self.env.short_ttl) * 1.1 + 0.2)


@pytest.fixture
def clocked(env: StoreEnv) -> Windowed:
    if env.clock is not None:
        return Windowed(env.fleet, env, 15 * 60.0)
    fleet = agentfleet.open(env.url, retry_policy=FAST_RETRY, stale_window=1.0)
    env._opened.append(fleet)
    return Windowed(fleet, env, 1.0)


def _no_plan_repairs(fleet: Fleet) -> None:
    repairs = fleet.reconcile()
    assert repairs is not None
    assert [r for r in repairs if r.kind == "plan_failed"] == []


def test_a_step_waiting_in_the_queue_past_the_window_keeps_its_plan_running(
    clocked: Windowed,
) -> None:
    fleet = clocked.fleet
    p = fleet.submit_plan(plan(shell("a"), shell("b", "a")))  # no worker takes "a" for ages
    clocked.pass_window()
    _no_plan_repairs(fleet)
    after = fleet.get_plan(p.id)
    assert after.status is PlanStatus.RUNNING
    assert [(s.name, s.status) for s in after.jobs] == [
        ("a", JobStatus.QUEUED),
        ("b", JobStatus.WAITING),
    ]
    assert drain(fleet) == ["a", "b"]
    assert fleet.get_plan(p.id).status is PlanStatus.COMPLETED


def test_a_step_behind_a_held_lock_past_the_window_keeps_its_plan_running(
    clocked: Windowed,
) -> None:
    fleet = clocked.fleet
    holder = fleet.enqueue("shell", {"cmd": "hold"}, lock="repo")
    [held] = fleet.claim_next(worker="other", limit=1, ttl=3600)  # a long-lived holder
    assert held.job_id == holder.id
    p = fleet.submit_plan(plan(shell("edit", lock="repo")))
    assert fleet.claim_next(worker="w", limit=5) == []  # the lock is held
    clocked.pass_window()
    fleet.renew(held, ttl=3600)  # the other job is alive and well
    _no_plan_repairs(fleet)
    assert fleet.get_plan(p.id).status is PlanStatus.RUNNING
    assert fleet.get_plan(p.id).step("edit").status is JobStatus.QUEUED
    fleet.complete(held, result=None)
    assert drain(fleet) == ["edit"]


def test_a_dead_workers_step_goes_back_to_the_queue_and_the_plan_lives(
    clocked: Windowed,
) -> None:
    fleet = clocked.fleet
    p = fleet.submit_plan(plan(shell("a"), shell("b", "a")))
    [lease] = fleet.claim_next(worker="w", ttl=clocked.env.short_ttl)  # and the worker dies
    clocked.pass_window()
    repairs = fleet.reconcile()
    assert repairs is not None
    assert [(r.kind, r.job_id) for r in repairs] == [("lease_expired", lease.job_id)]
    assert fleet.get_plan(p.id).status is PlanStatus.RUNNING
    assert drain(fleet) == ["a", "b"]
    assert fleet.get_plan(p.id).status is PlanStatus.COMPLETED


def test_a_plan_that_cannot_move_is_failed_as_orphaned_and_can_be_resumed(
    clocked: Windowed,
) -> None:
    fleet = clocked.fleet
    p = fleet.submit_plan(plan(shell("a"), shell("b", "a"), max_parallel=1))
    a, b = (step.job_id for step in p.jobs)
    with fleet.store.dialect.tx() as tx:  # damage: "a" now also waits for "b", a cycle
        tx.q("UPDATE jobs SET status = 'waiting' WHERE id = :a", {"a": a})
        tx.q(
            "INSERT INTO plan_deps (plan_id, job_id, depends_on) VALUES (:p, :a, :b)",
            {"p": p.id, "a": a, "b": b},
        )
    clocked.pass_window()
    repairs = fleet.reconcile()
    assert repairs is not None
    assert [(r.kind, r.reason, r.plan_id) for r in repairs] == [("plan_failed", "orphaned", p.id)]
    logged = [e.data for e in fleet.events() if e.plan_id == p.id and e.kind == "repair"]
    assert logged == [{"reason": "orphaned"}]
    failed = fleet.get_plan(p.id)
    assert (failed.status, failed.checkpoint_context) == (PlanStatus.FAILED, {"kind": "orphaned"})
    assert fleet.resume(p.id).status is PlanStatus.RUNNING
