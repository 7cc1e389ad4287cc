"""retry_job puts a failed or cancelled job back in the queue; nothing else is retried, and
a refused retry changes nothing (a succeeded job keeps its result and is never run again)."""

from __future__ import annotations

import pytest

from agentfleet import Fleet, InvalidTransition, Job, JobNotFound, JobStatus
from tests.conftest import StoreEnv
from tests.plans.helpers import drain, plan, shell


def _snapshot(fleet: Fleet, job_id: int) -> tuple[Job, list[object], list[object]]:
    return fleet.get_job(job_id), list(fleet.runs(job_id)), list(fleet.events(job_id))


def test_a_succeeded_job_is_not_retried(env: StoreEnv) -> None:
    fleet = env.fleet
    job = fleet.enqueue("shell", {}, max_attempts=1)
    lease = fleet.claim(job.id, worker="w")
    assert lease is not None
    fleet.complete(lease, result={"artifact": "app.whl"})
    before = _snapshot(fleet, job.id)
    env.move_on()
    with pytest.raises(InvalidTransition) as refused:
        fleet.retry_job(job.id)
    assert (refused.value.current, refused.value.wanted) == ("succeeded", "queued")
    assert _snapshot(fleet, job.id) == before
    assert fleet.claim(job.id, worker="w2") is None
    assert fleet.claim_next(worker="w2", limit=10) == []
    assert fleet.get_job(job.id).result == {"artifact": "app.whl"}


def test_only_failed_and_cancelled_jobs_are_retried(env: StoreEnv) -> None:
    fleet = env.fleet
    succeeded = fleet.enqueue("shell", {"n": "succeeded"})
    failed = fleet.enqueue("shell", {"n": "failed"}, max_attempts=1)
    running = fleet.enqueue("shell", {"n": "running"})
    queued = fleet.enqueue("shell", {"n": "queued"})
    cancelled = fleet.enqueue("shell", {"n": "cancelled"})
    for job, end in ((succeeded, "complete"), (failed, "fail")):
        lease = fleet.claim(job.id, worker="w")
        assert lease is not None
        if end == "complete":
            fleet.complete(lease, result="done")
        else:
            fleet.fail(lease, "boom")
    assert fleet.claim(running.id, worker="w") is not None
    assert fleet.cancel_job(cancelled.id)
    refused = {}
    for job in (succeeded, running, queued):
        before = _snapshot(fleet, job.id)
        with pytest.raises(InvalidTransition) as error:
            fleet.retry_job(job.id)
        refused[job.payload["n"]] = error.value.current
        assert _snapshot(fleet, job.id) == before
    assert refused == {"succeeded": "succeeded", "running": "running", "queued": "queued"}
    for job in (failed, cancelled):
        again = fleet.retry_job(job.id)
        assert (again.status, again.attempts, again.error, again.finished_at) == (
            JobStatus.QUEUED,
            0,
            None,
            None,
        )
    got = sorted(lease.job_id for lease in fleet.claim_next(worker="w", limit=10))
    assert got == sorted([queued.id, failed.id, cancelled.id])
    with pytest.raises(JobNotFound):
        fleet.retry_job(987_654)


def test_a_failed_step_of_a_paused_plan_is_rerun_by_resuming_its_plan(fleet: Fleet) -> None:
    p = fleet.submit_plan(plan(shell("b", max_attempts=1), mode="supervised"))
    drain(fleet, fail={"b"})
    step = fleet.get_plan(p.id).step("b").job_id
    before = _snapshot(fleet, step)
    with pytest.raises(InvalidTransition) as refused:
        fleet.retry_job(step)
    assert (refused.value.what, refused.value.current, refused.value.wanted) == (
        f"job {step}",
        "failed",
        "queued",
    )
    assert str(refused.value) == (
        f"job {step} is a step of plan {p.id}, which is paused: resume the plan to rerun its "
        f"failed steps (agentfleet plan resume {p.id})"
    )
    assert _snapshot(fleet, step) == before


def test_retrying_no_job_names_the_id(fleet: Fleet) -> None:
    with pytest.raises(JobNotFound) as missing:
        fleet.retry_job(987_654)
    assert missing.value.job_id == 987_654


def test_a_retry_is_recorded_on_the_job(fleet: Fleet) -> None:
    job = fleet.enqueue("shell", {}, max_attempts=1)
    lease = fleet.claim(job.id, worker="w")
    assert lease is not None
    fleet.fail(lease, "boom")
    fleet.retry_job(job.id)
    last = fleet.events(job.id)[-1]
    assert (last.job_id, last.kind) == (job.id, "retried")


def test_a_retry_is_refused_while_another_live_job_has_its_dedupe_key(fleet: Fleet) -> None:
    first = fleet.enqueue("shell", {"n": 1}, max_attempts=1, dedupe_key="nightly")
    lease = fleet.claim(first.id, worker="w")
    assert lease is not None
    fleet.fail(lease, "boom")
    twin = fleet.enqueue("shell", {"n": 2}, dedupe_key="nightly")  # the first is not live
    assert twin.id != first.id
    before = _snapshot(fleet, first.id)
    with pytest.raises(InvalidTransition) as refused:
        fleet.retry_job(first.id)
    assert (refused.value.what, refused.value.current, refused.value.wanted) == (
        f"job {first.id} (another live job has its dedupe key)",
        "failed",
        "queued",
    )
    assert _snapshot(fleet, first.id) == before
