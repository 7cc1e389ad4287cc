"""Once a cancel is recorded, a completion is refused and the job ends cancelled: the person
who cancelled a running job is never told "cancelled" while it ends "succeeded"."""

from __future__ import annotations

import pytest

from agentfleet import Fleet, JobCancelled, JobStatus, RunStatus


def test_a_completion_after_a_cancel_is_refused_and_the_job_ends_cancelled(fleet: Fleet) -> None:
    job = fleet.enqueue("shell", {"cmd": "work"})
    lease = fleet.claim(job.id, worker="w")
    assert lease is not None
    assert fleet.cancel_job(job.id) is True  # the worker has not heard yet
    with pytest.raises(JobCancelled):
        fleet.complete(lease, result={"done": True})
    assert fleet.get_job(job.id).result is None
    assert fleet.fail(lease, "cancelled", retry=False) is JobStatus.CANCELLED
    ended = fleet.get_job(job.id)
    assert (ended.status, ended.result) == (JobStatus.CANCELLED, None)
    assert [run.status for run in fleet.runs(job.id)] == [RunStatus.CANCELLED]


def test_a_batch_completion_leaves_out_a_cancelled_job(fleet: Fleet) -> None:
    kept = fleet.enqueue("shell", {"cmd": "a"})
    cancelled = fleet.enqueue("shell", {"cmd": "b"})
    leases = fleet.claim_next(worker="w", limit=2)
    assert {lease.job_id for lease in leases} == {kept.id, cancelled.id}
    fleet.cancel_job(cancelled.id)
    done = fleet.complete_many([(lease, None) for lease in leases])
    assert done == [kept.id]
    assert fleet.get_job(cancelled.id).status is JobStatus.RUNNING  # its worker ends it
    assert fleet.get_job(cancelled.id).cancel_requested
    completed, _ = fleet.complete_and_claim(
        [(lease, None) for lease in leases if lease.job_id == cancelled.id], worker="w"
    )
    assert completed == []
