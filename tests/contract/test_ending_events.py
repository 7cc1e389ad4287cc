"""Each way an attempt ends is logged on its job with the lease's epoch and worker and what
the worker said: a scheduled retry with its delay, a failure for good, a release, a cancel
asked for. The run it closes says how it ended."""

from __future__ import annotations

import pytest

from agentfleet import Fleet, JobNotFound, JobStatus, Lease, RunOutput, RunStatus


def _claimed(fleet: Fleet) -> Lease:
    job = fleet.enqueue("shell", {"cmd": "true"}, max_attempts=3)
    lease = fleet.claim(job.id, worker="w1")
    assert lease is not None
    return lease


def _last(fleet: Fleet, lease: Lease) -> tuple[object, ...]:
    event = fleet.events(lease.job_id)[-1]
    return (event.job_id, event.kind, event.epoch, event.worker, event.data)


def test_a_completion_is_logged_and_its_run_keeps_the_output(fleet: Fleet) -> None:
    lease = _claimed(fleet)
    fleet.complete(lease, result="ok", output=RunOutput(exit_code=0, stdout="built\n"))
    assert _last(fleet, lease) == (lease.job_id, "succeeded", lease.epoch, "w1", {})
    [run] = fleet.runs(lease.job_id)
    assert (run.status, run.exit_code, run.stdout) == (RunStatus.SUCCEEDED, 0, "built\n")


def test_a_retried_failure_is_logged_with_its_delay(fleet: Fleet) -> None:
    lease = _claimed(fleet)
    assert fleet.fail(lease, "flaky", delay=1.23456) is JobStatus.QUEUED
    assert _last(fleet, lease) == (
        lease.job_id,
        "retry_scheduled",
        lease.epoch,
        "w1",
        {"error": "flaky", "retry_in": 1.235},
    )


def test_a_failure_for_good_is_logged_with_its_error_alone(fleet: Fleet) -> None:
    lease = _claimed(fleet)
    assert fleet.fail(lease, "broke", retry=False) is JobStatus.FAILED
    assert _last(fleet, lease) == (lease.job_id, "failed", lease.epoch, "w1", {"error": "broke"})


def test_a_release_is_logged_with_its_reason(fleet: Fleet) -> None:
    lease = _claimed(fleet)
    assert fleet.release(lease, reason="shutting down") is JobStatus.QUEUED
    assert _last(fleet, lease) == (
        lease.job_id,
        "released",
        lease.epoch,
        "w1",
        {"reason": "shutting down"},
    )
    assert fleet.runs(lease.job_id)[-1].status is RunStatus.RELEASED


def test_releasing_a_job_asked_to_stop_cancels_it_and_its_run(fleet: Fleet) -> None:
    lease = _claimed(fleet)
    assert fleet.cancel_job(lease.job_id) is True
    assert _last(fleet, lease) == (lease.job_id, "cancel_requested", lease.epoch, None, {})
    assert fleet.release(lease, reason="stopping") is JobStatus.CANCELLED
    assert fleet.runs(lease.job_id)[-1].status is RunStatus.CANCELLED


def test_cancelling_no_job_names_the_id(fleet: Fleet) -> None:
    with pytest.raises(JobNotFound) as missing:
        fleet.cancel_job(987_654)
    assert missing.value.job_id == 987_654
