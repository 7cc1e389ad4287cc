"""Plan races under true concurrency: resume, cancel, stale snapshots and reconcilers.

UnguardedResume and save_whole_plan are deliberately broken variants kept in the suite:
the same races must catch them, so these tests are shown able to fail.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from agentfleet import Fleet, Job, JobStatus, NotResumable, Plan, PlanStatus
from tests.conftest import StoreEnv
from tests.plans.helpers import claim_all, plan, shell

RESUMERS = 16
ROUNDS = 10


def _together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run every call in its own thread, released at once; results or exceptions."""
    barrier = threading.Barrier(len(calls))
    out: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait(timeout=60)
        try:
            out[i] = calls[i]()
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _paused_plan(fleet: Fleet) -> Plan:
    p = fleet.submit_plan(plan(shell("a"), shell("b", "a")))
    return fleet.update_plan_fields(
        p.id, expected={"status": "running"}, status="paused", checkpoint="pre_merge"
    )


class UnguardedResume:
    """DELIBERATELY BROKEN resume: read the status, check it in Python, then write."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def __call__(self, plan_id: int) -> bool:
        current = self.fleet.get_plan(plan_id)
        if current.status not in (PlanStatus.PAUSED, PlanStatus.FAILED):
            return False
        time.sleep(0.002)
        with self.fleet.store.dialect.tx() as tx:
            tx.q(
                "UPDATE plans SET status = 'running', checkpoint = NULL WHERE id = :id",
                {"id": plan_id},
            )
        return True


def test_16_resumers_exactly_one_wins(env: StoreEnv) -> None:
    fleets = [env.open() for _ in range(RESUMERS)]
    tally: Counter[str] = Counter()
    for _ in range(ROUNDS):
        p = _paused_plan(env.fleet)
        results = _together([lambda f=f, i=p.id: f.resume(i) for f in fleets])
        wins = [r for r in results if isinstance(r, Plan)]
        losses = [r for r in results if isinstance(r, NotResumable)]
        assert len(wins) == 1 and len(losses) == RESUMERS - 1, results
        assert {loss.status for loss in losses} == {"running"}
        tally["wins"] += len(wins)
        tally["not_resumable"] += len(losses)
        resumed = [e for e in env.fleet.events() if e.kind == "plan_resumed" and e.plan_id == p.id]
        assert len(resumed) == 1
    print(f"\n[{env.backend}] {ROUNDS} rounds x {RESUMERS} resumers: {dict(tally)}")


def test_unguarded_resume_lets_two_resumers_win(env: StoreEnv) -> None:
    fleets = [env.open() for _ in range(RESUMERS)]
    most = 0
    for _ in range(5):
        p = _paused_plan(env.fleet)
        results = _together([lambda f=f, i=p.id: UnguardedResume(f)(i) for f in fleets])
        most = max(most, sum(1 for r in results if r is True))
    assert most > 1, "the race failed to expose the unguarded resume"


def test_resume_racing_cancel_ends_consistent(env: StoreEnv) -> None:
    fleets = [env.open() for _ in range(8)]
    for _ in range(ROUNDS):
        p = env.fleet.submit_plan(plan(shell("a"), shell("b"), shell("c", "a"), max_parallel=1))
        [lease] = claim_all(env.fleet)
        env.fleet.update_plan_fields(
            p.id, expected={"status": "running"}, status="paused", checkpoint="pre_merge"
        )
        calls: list[Callable[[], Any]] = []
        for i, f in enumerate(fleets):
            calls.append(
                (lambda f=f, pid=p.id: f.resume(pid))
                if i % 2
                else (lambda f=f, pid=p.id: f.cancel_plan(pid))
            )
        results = _together(calls)
        assert sum(1 for r in results if r is True) == 1  # exactly one cancel took effect
        assert sum(1 for r in results if isinstance(r, Plan)) <= 1
        final = env.fleet.get_plan(p.id)
        assert final.status is PlanStatus.CANCELLED
        for step in final.jobs:
            job = env.fleet.get_job(step.job_id)
            assert job.status in (JobStatus.CANCELLED, JobStatus.RUNNING)
            if job.status is JobStatus.RUNNING:
                assert job.cancel_requested and job.id == lease.job_id
        assert claim_all(env.fleet) == []


def save_whole_plan(fleet: Fleet, snapshot: Plan, **fields: Any) -> None:
    """DELIBERATELY BROKEN: the seed's savePlan(staleSnapshot), writing every job state back."""
    with fleet.store.dialect.tx() as tx:
        tx.q(
            "UPDATE plans SET checkpoint = :checkpoint WHERE id = :id",
            {"checkpoint": fields.get("checkpoint"), "id": snapshot.id},
        )
        for step in snapshot.jobs:
            tx.q(
                "UPDATE jobs SET status = :status WHERE id = :id",
                {"status": step.status.value, "id": step.job_id},
            )


def _stale_snapshot_setup(fleet: Fleet) -> tuple[Plan, int]:
    p = fleet.submit_plan(plan(shell("a"), shell("b"), mode="supervised"))
    leases = {lease.job.step: lease for lease in claim_all(fleet) if lease.job}
    snapshot = fleet.get_plan(p.id)  # read before the sibling finished
    fleet.complete(leases["b"], result={"sibling": "done"})  # the sibling completes
    fleet.fail(leases["a"], "a broke", retry=False)
    return snapshot, snapshot.step("b").job_id


def _rows(fleet: Fleet, snapshot: Plan) -> dict[str, Job]:
    return {step.name: fleet.get_job(step.job_id) for step in snapshot.jobs}


def _disowned(fleet: Fleet, snapshot: Plan) -> dict[str, tuple[str, str]]:
    """Job rows whose status no longer says what their own last attempt ended as."""
    out = {}
    for name, job in _rows(fleet, snapshot).items():
        run = fleet.runs(job.id)[-1]
        if job.status.value != run.status.value:
            out[name] = (job.status.value, run.status.value)
    return out


def test_checkpoint_from_a_stale_snapshot_keeps_the_sibling(env: StoreEnv) -> None:
    snapshot, sibling = _stale_snapshot_setup(env.fleet)
    assert snapshot.step("b").status is JobStatus.RUNNING
    before = _rows(env.fleet, snapshot)
    assert before["b"].status is JobStatus.SUCCEEDED and before["a"].status is JobStatus.FAILED
    env.fleet.update_plan_fields(
        snapshot.id,
        expected={"status": ["running", "paused"]},
        checkpoint="on_error",
        checkpoint_context={"job": "a", "from": "stale snapshot"},
    )
    after = env.fleet.get_plan(snapshot.id)
    assert after.checkpoint == "on_error"  # the row the write was for
    assert after.checkpoint_context == {"job": "a", "from": "stale snapshot"}
    assert _rows(env.fleet, snapshot) == before  # and not one job row touched
    assert _disowned(env.fleet, snapshot) == {}
    assert after.step("b").status is JobStatus.SUCCEEDED
    assert env.fleet.get_job(sibling).result == {"sibling": "done"}


def test_whole_object_save_of_a_stale_snapshot_loses_the_sibling(env: StoreEnv) -> None:
    """The same checks, against the seed's whole-object save: the plan row gets its
    checkpoint, and the sibling's row (and the failed step's) is rolled back with it."""
    snapshot, sibling = _stale_snapshot_setup(env.fleet)
    before = _rows(env.fleet, snapshot)
    save_whole_plan(env.fleet, snapshot, checkpoint="on_error")
    assert env.fleet.get_plan(snapshot.id).checkpoint == "on_error"
    lost = env.fleet.get_job(sibling)
    assert lost.status is JobStatus.RUNNING  # the seed's bug, reproduced ...
    assert lost.result == {"sibling": "done"} and lost.finished_at is not None
    assert lost != before["b"]
    # ... a row that contradicts its own run record, and a failure un-failed as well
    assert _disowned(env.fleet, snapshot) == {
        "a": ("running", "failed"),
        "b": ("running", "succeeded"),
    }


def test_two_reconcilers_repair_each_drift_once(env: StoreEnv) -> None:
    fleet = env.fleet
    drifted = []
    for _ in range(6):
        p = fleet.submit_plan(plan(shell("only")))
        [lease] = claim_all(fleet)
        fleet.store.complete(lease, {"ok": True}, None)  # the plan misses this event
        drifted.append(p.id)
    assert all(fleet.get_plan(i).status is PlanStatus.RUNNING for i in drifted)
    others = [env.open(), env.open()]
    results = _together([others[0].reconcile, others[1].reconcile])
    repairs = [r for result in results if result for r in result]
    assert sorted(r.plan_id for r in repairs if r.plan_id) == sorted(drifted)
    assert all(fleet.get_plan(i).status is PlanStatus.COMPLETED for i in drifted)
    events = [e for e in fleet.events() if e.kind == "repair"]
    assert Counter(e.plan_id for e in events) == Counter(drifted)
    assert fleet.reconcile() == []
