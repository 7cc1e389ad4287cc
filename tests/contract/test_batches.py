"""Batched completion and complete-and-claim: the fast path keeps every fence."""

from __future__ import annotations

from agentfleet import Fleet, JobStatus, NewJob, PlanStatus, RunStatus
from tests.conftest import StoreEnv
from tests.plans.helpers import plan, shell


def test_complete_many_fences_each_row(env: StoreEnv) -> None:
    fleet = env.fleet
    jobs = fleet.enqueue_many(NewJob("shell", {"n": i}) for i in range(4))
    leases = fleet.claim_next(worker="w", limit=4, ttl=env.short_ttl)
    assert [lease.job_id for lease in leases] == [j.id for j in jobs]
    stale = leases[0]
    env.expire_lease(stale.job_id)
    successor = fleet.claim(stale.job_id, worker="w2")
    assert successor is not None
    fresh = [fleet.renew(lease, ttl=60) for lease in leases[1:]]
    completed = fleet.complete_many([(lease, {"n": i}) for i, lease in enumerate(leases)])
    assert sorted(completed) == [j.id for j in jobs[1:]]
    fenced = fleet.get_job(stale.job_id)  # the stale row was fenced: still the successor's
    assert (fenced.status, fenced.worker, fenced.lease_epoch, fenced.result) == (
        JobStatus.RUNNING,
        "w2",
        successor.epoch,
        None,
    )
    for i, lease in enumerate(fresh, start=1):
        job = fleet.get_job(lease.job_id)
        assert job.status is JobStatus.SUCCEEDED and job.result == {"n": i}
        assert fleet.runs(job.id)[-1].status is RunStatus.SUCCEEDED
        assert [e.kind for e in fleet.events(job.id)][-1] == "succeeded"


def test_complete_and_claim_finishes_then_takes_the_next(fleet: Fleet) -> None:
    jobs = fleet.enqueue_many(NewJob("shell", {"n": i}, priority=-i) for i in range(5))
    ids = [j.id for j in jobs]  # claim order: highest priority first
    done, first = fleet.complete_and_claim([], worker="w", limit=2)
    assert done == [] and [lease.job_id for lease in first] == ids[:2]
    done, second = fleet.complete_and_claim([(lease, "ok") for lease in first], worker="w", limit=2)
    assert sorted(done) == ids[:2]
    assert [lease.job_id for lease in second] == ids[2:4]
    done, third = fleet.complete_and_claim([(lease, "ok") for lease in second], worker="w", limit=9)
    assert sorted(done) == ids[2:4] and [lease.job_id for lease in third] == ids[4:]
    done, nothing = fleet.complete_and_claim([(third[0], "ok")], worker="w", limit=9)
    assert done == [ids[4]] and nothing == []
    assert {j.id: (j.status, j.result) for j in fleet.list_jobs()} == {
        i: (JobStatus.SUCCEEDED, "ok") for i in ids
    }


def test_batched_completion_moves_plans_on(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("a"), shell("b", "a")))
    _, [a] = fleet.complete_and_claim([], worker="w", limit=5)
    assert a.job is not None and a.job.step == "a"
    done, none_yet = fleet.complete_and_claim([(a, None)], worker="w", limit=5)
    assert done == [a.job_id] and none_yet == []  # b is promoted once a's batch commits
    _, [b] = fleet.complete_and_claim([], worker="w", limit=5)
    assert b.job is not None and b.job.step == "b"
    assert fleet.complete_many([(b, None)]) == [b.job_id]
    assert fleet.get_plan(p.id).status is PlanStatus.COMPLETED


def test_complete_and_claim_takes_only_the_queues_and_engines_asked_for(fleet: Fleet) -> None:
    wanted = fleet.enqueue("shell", {"n": 1}, queue="gpu")
    fleet.enqueue("shell", {"n": 2}, queue="cpu")  # another queue
    fleet.enqueue("claude", {"prompt": "p"}, queue="gpu")  # another engine
    done, leases = fleet.complete_and_claim(
        [], worker="w", queues=["gpu"], engines=["shell"], limit=10
    )
    assert done == [] and [lease.job_id for lease in leases] == [wanted.id]
    assert {j.id for j in fleet.list_jobs(status=JobStatus.RUNNING)} == {wanted.id}
