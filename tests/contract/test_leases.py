"""Renew, complete, fail, release and fencing: every write names its epoch."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agentfleet import Fleet, JobCancelled, JobStatus, Lease, LeaseLost, RetryPolicy, RunStatus
from agentfleet.models import RunOutput
from tests.conftest import StoreEnv, make_env
from tests.plans.helpers import plan, shell


def test_renew_extends_the_lease(env: StoreEnv) -> None:
    fleet = env.fleet
    job = fleet.enqueue("shell", {})
    lease = fleet.claim(job.id, worker="w", ttl=10)
    assert lease is not None
    env.pass_time(0.05 if env.clock is None else 5)
    renewed = fleet.renew(lease, ttl=60)
    assert renewed.epoch == lease.epoch and renewed.expires_at > lease.expires_at


def test_a_renewed_lease_is_the_same_lease_with_a_new_expiry(fleet: Fleet) -> None:
    job = fleet.enqueue("shell", {"cmd": "true"})
    lease = fleet.claim(job.id, worker="w", ttl=30)
    assert lease is not None
    renewed = fleet.renew(lease, ttl=90)
    assert (renewed.job_id, renewed.epoch, renewed.worker, renewed.attempt, renewed.run_id) == (
        lease.job_id,
        lease.epoch,
        lease.worker,
        lease.attempt,
        lease.run_id,
    )
    assert renewed.ttl == 90.0 and renewed.expires_at > lease.expires_at
    assert renewed.job is not None and renewed.job == lease.job  # the job a worker runs
    fleet.complete(renewed, result="ok")  # the renewed lease still closes the same run
    assert [(r.id, r.status) for r in fleet.runs(job.id)] == [(lease.run_id, RunStatus.SUCCEEDED)]


def test_complete_closes_job_and_run(fleet: Fleet) -> None:
    job = fleet.enqueue("shell", {})
    lease = fleet.claim(job.id, worker="w")
    assert lease is not None
    fleet.complete(lease, result={"ok": True})
    done = fleet.get_job(job.id)
    assert done.status is JobStatus.SUCCEEDED and done.result == {"ok": True}
    assert done.finished_at is not None and done.lease_expires_at is None
    [run] = fleet.runs(job.id)
    assert run.status is RunStatus.SUCCEEDED and run.finished_at is not None
    assert (run.job_id, run.epoch, run.worker, run.attempt) == (job.id, 1, "w", 1)
    logged = fleet.events(job.id)
    assert [e.kind for e in logged] == ["enqueued", "claimed", "succeeded"]
    assert all(e.job_id == job.id and e.at is not None for e in logged)
    assert [e.at for e in logged] == sorted(e.at for e in logged if e.at is not None)
    with pytest.raises(LeaseLost):
        fleet.complete(lease, result={"again": True})
    with pytest.raises(LeaseLost):
        fleet.renew(lease)
    assert fleet.get_job(job.id).result == {"ok": True}


def test_fail_retries_then_fails_for_good(env: StoreEnv) -> None:
    fleet = env.fleet
    job = fleet.enqueue("shell", {}, max_attempts=2)
    first = fleet.claim(job.id, worker="w")
    assert first is not None
    assert fleet.fail(first, "boom", delay=0) is JobStatus.QUEUED
    assert fleet.get_job(job.id).error == "boom"
    second = fleet.claim(job.id, worker="w")
    assert second is not None and second.epoch == 2 and second.attempt == 2
    assert fleet.fail(second, "boom again", delay=0) is JobStatus.FAILED
    final = fleet.get_job(job.id)
    assert final.status is JobStatus.FAILED and final.attempts == 2
    assert [r.status for r in fleet.runs(job.id)] == [RunStatus.FAILED, RunStatus.FAILED]
    kinds = [e.kind for e in fleet.events(job.id)]
    assert kinds == ["enqueued", "claimed", "retry_scheduled", "claimed", "failed"]


def test_fail_without_retry_is_final(fleet: Fleet) -> None:
    job = fleet.enqueue("shell", {}, max_attempts=5)
    lease = fleet.claim(job.id, worker="w")
    assert lease is not None
    assert fleet.fail(lease, "fatal", retry=False) is JobStatus.FAILED


def test_a_permanent_failure_keeps_its_reason_and_output_and_spends_one_attempt(
    fleet: Fleet,
) -> None:
    """How a worker reports an agent that is not logged in: failed at once, attempts left."""
    job = fleet.enqueue("claude", {"prompt": "hi"}, max_attempts=3)
    lease = fleet.claim(job.id, worker="w")
    assert lease is not None
    reason = "engine 'claude' is not logged in: Invalid API key · Please run /login"
    output = RunOutput(exit_code=1, stdout='{"type":"result","is_error":true}\n', stderr="")
    assert fleet.fail(lease, reason, retry=False, output=output) is JobStatus.FAILED
    final = fleet.get_job(job.id)
    assert (final.status, final.attempts, final.error) == (JobStatus.FAILED, 1, reason)
    (run,) = fleet.runs(job.id)
    assert (run.status, run.error, run.exit_code) == (RunStatus.FAILED, reason, 1)
    assert run.stdout == '{"type":"result","is_error":true}\n'
    assert [e.kind for e in fleet.events(job.id)] == ["enqueued", "claimed", "failed"]
    assert fleet.claim_next(worker="w", limit=5) == []


def test_backoff_delays_the_retry(env: StoreEnv, request: pytest.FixtureRequest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    slow = make_env(
        env.backend, tmp_path / "b", request, retry_policy=RetryPolicy(base=30, jitter=0)
    )
    try:
        fleet = slow.fleet
        job = fleet.enqueue("shell", {})
        lease = fleet.claim(job.id, worker="w")
        assert lease is not None
        before = fleet.now()
        assert fleet.fail(lease, "flaky") is JobStatus.QUEUED
        after = fleet.now()
        queued = fleet.get_job(job.id)
        # The store set run_at to its own now (at the fail, between the two readings) + 30 s.
        tick = timedelta(milliseconds=1)  # timestamps round-trip through floats on SQLite
        due = timedelta(seconds=30)
        assert before + due - tick <= queued.run_at <= after + due + tick
        assert fleet.claim(job.id, worker="w") is None
        assert fleet.claim_next(worker="w") == []
        if slow.clock is not None:
            slow.pass_time(31)
            assert [lease.job_id for lease in fleet.claim_next(worker="w")] == [job.id]
    finally:
        slow.close()


def test_retry_policy_grows_exponentially_with_jitter() -> None:
    policy = RetryPolicy(base=1, factor=2, cap=10, jitter=0.5)
    for attempt, raw in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (9, 10)]:
        delays = [policy.delay(attempt) for _ in range(50)]
        assert all(raw * 0.5 <= d <= raw for d in delays)
        assert len(set(delays)) > 1


def test_expired_lease_is_fenced_after_reclaim(env: StoreEnv) -> None:
    fleet = env.fleet
    job = fleet.enqueue("shell", {})
    stale = fleet.claim(job.id, worker="paused", ttl=env.short_ttl)
    assert stale is not None
    env.expire()
    successor = fleet.claim(job.id, worker="fresh", ttl=60)  # no reaper needed
    assert successor is not None and successor.epoch == stale.epoch + 1
    with pytest.raises(LeaseLost) as lost:
        fleet.renew(stale)
    assert lost.value.current_epoch == successor.epoch
    with pytest.raises(LeaseLost):
        fleet.complete(stale, result={"by": "paused"})
    with pytest.raises(LeaseLost):
        fleet.fail(stale, "late")
    fleet.complete(successor, result={"by": "fresh"})
    done = fleet.get_job(job.id)
    assert done.status is JobStatus.SUCCEEDED and done.result == {"by": "fresh"}
    runs = fleet.runs(job.id)
    assert [(r.epoch, r.worker, r.status) for r in runs] == [
        (1, "paused", RunStatus.EXPIRED),
        (2, "fresh", RunStatus.SUCCEEDED),
    ]


def test_lease_still_valid_after_expiry_until_someone_takes_it(env: StoreEnv) -> None:
    fleet = env.fleet
    job = fleet.enqueue("shell", {})
    lease = fleet.claim(job.id, worker="slow", ttl=env.short_ttl)
    assert lease is not None
    env.expire()
    fleet.complete(lease, result="nobody else ran it")
    assert fleet.get_job(job.id).status is JobStatus.SUCCEEDED


def test_reap_expired_requeues_or_fails(env: StoreEnv) -> None:
    fleet = env.fleet
    retryable = fleet.enqueue("shell", {}, max_attempts=2)
    spent = fleet.enqueue("shell", {}, max_attempts=1)
    leases = [fleet.claim(j.id, worker="dead", ttl=env.short_ttl) for j in (retryable, spent)]
    assert all(leases)
    assert fleet.reap_expired() == []
    env.expire()
    reaped = dict(fleet.reap_expired())
    assert reaped == {retryable.id: JobStatus.QUEUED, spent.id: JobStatus.FAILED}
    assert fleet.reap_expired() == []
    assert fleet.runs(retryable.id)[0].status is RunStatus.EXPIRED
    assert fleet.get_job(spent.id).error == "lease expired"
    again = fleet.claim(retryable.id, worker="alive")
    assert again is not None and again.epoch == 2


def test_expired_job_with_no_attempts_left_is_not_reclaimed(env: StoreEnv) -> None:
    fleet = env.fleet
    job = fleet.enqueue("shell", {}, max_attempts=1)
    assert fleet.claim(job.id, worker="dead", ttl=env.short_ttl) is not None
    env.expire()
    assert fleet.claim(job.id, worker="w") is None
    assert dict(fleet.reap_expired()) == {job.id: JobStatus.FAILED}


def test_release_hands_the_job_back_with_its_attempt(fleet: Fleet) -> None:
    job = fleet.enqueue("shell", {}, max_attempts=1)
    lease = fleet.claim(job.id, worker="stopping")
    assert lease is not None
    assert fleet.release(lease) is JobStatus.QUEUED
    back = fleet.get_job(job.id)
    assert back.status is JobStatus.QUEUED and back.attempts == 0
    assert fleet.runs(job.id)[0].status is RunStatus.RELEASED
    again = fleet.claim(job.id, worker="next")
    assert again is not None and again.epoch == 2
    with pytest.raises(LeaseLost):
        fleet.release(lease)


def test_cancel_is_idempotent_and_reaches_running_jobs(fleet: Fleet) -> None:
    queued = fleet.enqueue("shell", {})
    assert fleet.cancel_job(queued.id) is True
    assert fleet.cancel_job(queued.id) is False
    assert fleet.get_job(queued.id).status is JobStatus.CANCELLED
    assert fleet.claim(queued.id, worker="w") is None

    running = fleet.enqueue("shell", {})
    lease = fleet.claim(running.id, worker="w")
    assert lease is not None
    assert fleet.cancel_job(running.id) is True
    assert fleet.cancel_job(running.id) is False
    with pytest.raises(JobCancelled):
        fleet.renew(lease)
    assert fleet.fail(lease, "stopped: cancelled", retry=True) is JobStatus.CANCELLED
    assert fleet.get_job(running.id).status is JobStatus.CANCELLED
    assert fleet.runs(running.id)[0].status is RunStatus.CANCELLED

    done = fleet.enqueue("shell", {})
    done_lease = fleet.claim(done.id, worker="w")
    assert done_lease is not None
    fleet.complete(done_lease)
    finished_at = fleet.get_job(done.id).finished_at
    assert fleet.cancel_job(done.id) is False
    assert fleet.get_job(done.id).status is JobStatus.SUCCEEDED
    assert fleet.get_job(done.id).finished_at == finished_at


def test_cancelled_running_job_whose_worker_died_ends_cancelled(env: StoreEnv) -> None:
    fleet = env.fleet
    job = fleet.enqueue("shell", {})
    assert fleet.claim(job.id, worker="dead", ttl=env.short_ttl) is not None
    assert fleet.cancel_job(job.id)
    env.expire()
    assert fleet.claim(job.id, worker="w") is None
    assert dict(fleet.reap_expired()) == {job.id: JobStatus.CANCELLED}


def test_retry_job_requeues_failed_and_cancelled(fleet: Fleet) -> None:
    job = fleet.enqueue("shell", {}, max_attempts=1)
    lease = fleet.claim(job.id, worker="w")
    assert lease is not None
    fleet.fail(lease, "boom")
    again = fleet.retry_job(job.id)
    assert again.status is JobStatus.QUEUED and again.attempts == 0 and again.error is None
    assert fleet.claim(job.id, worker="w") is not None


def test_renew_many_renews_each_lease_by_its_own_epoch(env: StoreEnv) -> None:
    """A heartbeat renews all of a worker's leases in one statement, and each answer is what
    that lease's own renew would give: renewed, cancelled, or lost to a takeover (whose new
    holder's lease it must leave alone)."""
    fleet = env.fleet
    jobs = [fleet.enqueue("shell", {"cmd": "true"}, queue="beat") for _ in range(3)]
    claimed = fleet.claim_next(worker="w", queues=["beat"], limit=3, ttl=env.short_ttl)
    mine = {lease.job_id: lease for lease in claimed}
    fine, cancelled, stale = (mine[job.id] for job in jobs)
    fine, cancelled = fleet.renew(fine, ttl=600), fleet.renew(cancelled, ttl=600)
    assert fleet.cancel_job(cancelled.job_id)
    env.expire_lease(stale.job_id)
    fleet.reap_expired()
    (taken,) = fleet.claim_next(worker="other", queues=["beat"], ttl=60)
    assert taken.job_id == stale.job_id and taken.epoch > stale.epoch
    holder_expiry = fleet.get_job(stale.job_id).lease_expires_at

    answers = fleet.renew_many([stale, fine, cancelled], ttl=900)

    assert isinstance(answers[0], LeaseLost) and not isinstance(answers[0], JobCancelled)
    assert isinstance(answers[1], Lease) and answers[1].epoch == fine.epoch
    assert answers[1].ttl == 900 and answers[1].expires_at > fine.expires_at
    assert isinstance(answers[2], JobCancelled)
    assert fleet.get_job(fine.job_id).lease_expires_at == answers[1].expires_at
    assert fleet.get_job(stale.job_id).lease_expires_at == holder_expiry  # not ours to extend
    assert fleet.get_job(stale.job_id).lease_epoch == taken.epoch
    assert fleet.renew_many([]) == []


def test_a_claimed_leases_job_is_the_row_as_the_claim_left_it(fleet: Fleet) -> None:
    """What a worker runs is the stored job: every field, on the single and the batch path."""
    again = fleet.enqueue("shell", {"cmd": "a"}, queue="q1", priority=3, max_attempts=4)
    first = fleet.claim(again.id, worker="w", ttl=30)
    assert first is not None
    fleet.fail(first, "broke", delay=0)  # retried at once, its error kept
    fleet.enqueue("shell", {"cmd": "b"}, queue="q2", timeout=30, dedupe_key="b", lock="repo")
    single = fleet.enqueue("shell", {"cmd": "c"}, queue="q3")
    fleet.submit_plan(plan(shell("step")))
    batch = fleet.claim_next(worker="w", queues=["q1", "q2", "default"], limit=3)
    one = fleet.claim(single.id, worker="w", ttl=30)
    assert len(batch) == 3 and one is not None
    assert {lease.job.step for lease in batch if lease.job} == {None, "step"}
    for lease in [*batch, one]:
        stored = fleet.get_job(lease.job_id)
        assert lease.job == stored, lease.job_id
        assert (lease.expires_at, lease.attempt) == (stored.lease_expires_at, stored.attempts)
        assert stored.status is JobStatus.RUNNING and stored.lease_expires_at is not None
    assert fleet.get_job(again.id).error == "broke"
    assert (fleet.get_job(again.id).attempts, fleet.get_job(again.id).lease_epoch) == (2, 2)
